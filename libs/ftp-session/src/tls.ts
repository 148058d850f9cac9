import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext, type Server as TlsServer } from 'node:tls';

/** What the session needs to speak TLS; the edge owns certificates, their reload and the session cache. */
export interface TlsProvider {
  /** The current certificate (swapped when the files change). */
  context(): SecureContext;
  /** Holds the TLS session cache and ticket keys, so data connections can resume the control connection's session. */
  server: TlsServer;
  /** A protected data connection must resume a session (as vsftpd's require_ssl_reuse). */
  requireReuse: boolean;
  handshakeTimeoutMs: number;
}

export class TlsHandshakeError extends Error {
  override name = 'TlsHandshakeError';
}

/**
 * Makes `socket` the server side of a TLS connection and waits for the handshake, bounded in time. The raw socket
 * must not have been read from since the peer was told to start TLS: no plaintext may slip past the handshake.
 */
export function startTls(socket: Socket, tls: TlsProvider): Promise<TLSSocket> {
  const secure = new TLSSocket(socket, { isServer: true, secureContext: tls.context(), server: tls.server });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      secure.destroy();
      reject(new TlsHandshakeError(err.message));
    };
    const timer = setTimeout(() => fail(new Error('TLS handshake timed out')), tls.handshakeTimeoutMs);
    // A peer that hangs up mid-handshake ends the socket without an error: without this, only the timer would notice.
    const onClose = () => fail(new Error('connection closed during the TLS handshake'));
    secure.once('error', fail);
    secure.once('close', onClose);
    secure.once('secure', () => {
      clearTimeout(timer);
      secure.removeListener('error', fail);
      secure.removeListener('close', onClose);
      resolve(secure);
    });
  });
}
