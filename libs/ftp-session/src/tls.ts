import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext, type Server as TlsServer } from 'node:tls';
import type { Logger } from '@ftp/telemetry';
import { renewTicketsOnResumption } from './tlsTickets';

/** What the session needs to speak TLS; the edge owns certificates, their reload and the session cache. */
export interface TlsProvider {
  /**
   * The current certificate (swapped when the files change). It should refuse client-initiated renegotiation
   * (`secureOptions: SSL_OP_NO_RENEGOTIATION`); `startTls` closes a connection that tries it either way.
   */
  context(): SecureContext;
  /** Holds the TLS session cache and ticket keys, so data connections can resume the control connection's session. */
  server: TlsServer;
  /** A protected data connection must resume a session (as vsftpd's require_ssl_reuse). */
  requireReuse: boolean;
  /** A resumed TLS 1.3 handshake issues a fresh ticket (FTP_TLS_RENEW_TICKETS, see tlsTickets.ts). */
  renewTickets?: boolean;
  handshakeTimeoutMs: number;
  /** Where TLS events of connections started without a logger of their own go (a refused renegotiation). */
  log?: Logger;
}

export class TlsHandshakeError extends Error {
  override name = 'TlsHandshakeError';
}

/**
 * Makes `socket` the server side of a TLS connection and waits for the handshake, bounded in time. The raw socket
 * must not have been read from since the peer was told to start TLS: no plaintext may slip past the handshake.
 * A later attempt of the client to renegotiate closes the connection (logged on `log`).
 */
export function startTls(socket: Socket, tls: TlsProvider, log: Logger | undefined = tls.log): Promise<TLSSocket> {
  const secureContext = tls.context();
  // A resumed handshake must end with a message of ours (a fresh ticket), or a client with Nagle's algorithm holds
  // its first upload bytes until our delayed ACK, ~40 ms later (see tlsTickets.ts).
  if (tls.renewTickets && !renewTicketsOnResumption(secureContext)) warnNoRenewal(log);
  const secure = new TLSSocket(socket, { isServer: true, secureContext, server: tls.server });
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
      secure.once('secure', () => refuseRenegotiation(secure, log));
      resolve(secure);
    });
  });
}

/**
 * Every handshake after the first is one the client started: a TLS 1.2 renegotiation (TLS 1.3 has none; its key
 * updates do not count as handshakes). The edge's SecureContext refuses it (SSL_OP_NO_RENEGOTIATION: a
 * no_renegotiation alert instead of a new key exchange, so it costs no CPU), and OpenSSL and Node clients give up the
 * connection on that alert. Closing it here as well makes the outcome the same for every client and every context:
 * a TLSSocket made with `new TLSSocket(raw, { isServer: true })` gets neither Node's renegotiation limit
 * (tls.CLIENT_RENEG_LIMIT) nor `disableRenegotiation()`, whose errors are dropped when no tls.Server owns the socket.
 */
function refuseRenegotiation(secure: TLSSocket, log: Logger | undefined) {
  if (secure.getProtocol() === 'TLSv1.3') return;
  log?.warn({ client: secure.remoteAddress, protocol: secure.getProtocol() }, 'TLS renegotiation refused: closing the connection');
  // On the next turn, so that the refusal alert written during this handshake step goes out first.
  setImmediate(() => secure.destroy());
}

let warnedNoRenewal = false;

function warnNoRenewal(log: Logger | undefined) {
  if (warnedNoRenewal) return;
  warnedNoRenewal = true;
  log?.warn('TLS session tickets cannot be renewed on resumption with this Node.js: small FTPS uploads from clients with Nagle on (ftplib) wait ~40 ms each');
}
