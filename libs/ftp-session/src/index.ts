export { runSession } from './session';
export type { Session } from './state';
export { createPassiveListeners, type PassiveListeners } from './passiveListeners';
export { FtpError, toFtpError } from './errors';
export type { SessionDeps, SessionSettings } from './types';
export { startTls, TlsHandshakeError, type TlsProvider } from './tls';
export { relayToOwner } from './relay';
export { retryReleases } from './heartbeat';
