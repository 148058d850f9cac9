export { runSession, type Session } from './session';
export { createPassiveListeners, type PassiveListeners } from './passiveListeners';
export { FtpError, toFtpError } from './errors';
export type { SessionDeps, SessionSettings } from './types';
export { startTls, TlsHandshakeError, type TlsProvider } from './tls';
export { resolvePeer, type Peer } from './peer';
export { relayToOwner } from './relay';
export { retryReleases, startHeartbeat } from './heartbeat';
export { createProxyTrust, ProxyHeaderError, readProxyHeader } from './proxyHeader';
