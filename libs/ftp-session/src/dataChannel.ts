import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { normalizeAddress } from '@ftp/protocol';
import { FtpError } from './errors';
import { withContext, type Session } from './state';
import { startTls } from './tls';
import type { DataMode } from './types';

/** Forgets a prepared data channel, releasing its lease and closing an unused connection. */
export function disposeData(session: Session) {
  if (session.data?.kind === 'passive') session.data.dispose();
  session.data = undefined;
}

/**
 * Leases a passive port for this client and starts expecting its data connection. Returns the port.
 * The lease is released as soon as the connection arrives: from then on the socket is ours and the port can serve
 * another client, and a crashed replica leaves nothing behind but a short-lived lease.
 * Each lease gets a random relay token: a peer that received the data connection must present it to hand the
 * connection over (the session id alone is in every log line). It is never logged.
 */
export async function preparePassive(session: Session): Promise<number> {
  disposeData(session);
  const { cluster, passive, settings, metrics } = session.deps;
  const clientAddress = settings.allowForeignData ? '*' : session.clientAddress;
  // 122 random bits from Node's pooled CSPRNG: randomBytes per lease cost a CSPRNG call of its own per transfer.
  const relayToken = randomUUID();
  const lease = await cluster.ports.lease({
    sessionId: session.id,
    replicaId: settings.replicaId,
    relayAddress: settings.relayAddress,
    relayToken,
    clientAddress,
    ttlMs: (settings.dataConnectTimeout + settings.idleTimeout) * 1000,
  });
  if (!lease) {
    session.log.warn('no passive port free for this client');
    throw new FtpError(425, 'No passive port available, try again later');
  }
  metrics.passiveLeases.inc();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    metrics.passiveLeases.dec();
    withContext(session, () => cluster.ports.release(lease)).catch(() => {
      metrics.clusterStateErrors.inc();
      session.deps.unreleased.add(lease);
    });
  };
  const expectation = passive.expect(lease.port, clientAddress, session.id, relayToken);
  session.data = {
    kind: 'passive',
    port: lease.port,
    connect: async (timeoutMs) => {
      try {
        return await expectation.connect(timeoutMs);
      } finally {
        release();
      }
    },
    dispose: () => {
      release();
      expectation.dispose();
    },
    relayed: () => expectation.relayed,
    relayEnd: () => expectation.relayEnd,
  };
  return lease.port;
}

/** Checks an active-mode target: only the client's own address and an unprivileged port (bounce/FXP protection). */
export function prepareActive(session: Session, host: string, port: number) {
  const { allowForeignActive } = session.deps.settings;
  if (!allowForeignActive && host !== session.clientAddress) {
    session.log.warn({ target: host }, 'active data connection to a foreign address refused');
    throw new FtpError(504, 'Data connections to a foreign address are not allowed');
  }
  if (!allowForeignActive && port < 1024) throw new FtpError(504, 'Data connections to privileged ports are not allowed');
  disposeData(session);
  session.data = { kind: 'active', host, port };
}

/** An open data connection and how it was made. */
export interface DataConnection {
  socket: Socket;
  mode: DataMode;
  /** A relayed connection's relay id: its EOF counts only once the relaying peer recorded it as clean (relay.ts). */
  relayEnd?: string;
}

/** Opens the prepared data connection, with TLS under PROT P. */
export async function openDataConnection(session: Session, signal: AbortSignal): Promise<DataConnection> {
  const { socket, mode, relayEnd } = await openRawDataConnection(session, signal);
  session.deps.metrics.dataConnectionsTotal.inc({ mode });
  return { socket: session.protection === 'P' ? await protect(session, socket) : socket, mode, relayEnd };
}

/**
 * TLS on a data connection; the server is the TLS server in passive and active mode alike (RFC 4217). With reuse
 * required, only a client that resumes a session of ours gets through: a stranger who grabbed the port cannot.
 */
async function protect(session: Session, socket: Socket): Promise<Socket> {
  const tls = session.deps.tls!;
  let secure: TLSSocket;
  try {
    secure = await startTls(socket, tls, session.log);
  } catch (err) {
    session.log.warn({ err: (err as Error).message }, 'TLS handshake on the data connection failed');
    throw new FtpError(522, 'TLS handshake on the data connection failed');
  }
  const resumed = secure.isSessionReused();
  session.deps.metrics.tlsDataConnections.inc({ resumed: String(resumed) });
  if (tls.requireReuse && !resumed) {
    session.log.warn('data connection refused: it did not resume the TLS session');
    secure.destroy();
    throw new FtpError(522, 'TLS session reuse required on the data connection');
  }
  return secure;
}

/** Opens the prepared data connection (waits for the passive one, or dials the active one). */
async function openRawDataConnection(session: Session, signal: AbortSignal): Promise<DataConnection> {
  const data = session.data;
  if (!data) throw new FtpError(425, 'Use PASV, EPSV, PORT or EPRT first');
  session.data = undefined; // one data connection per transfer
  const timeoutMs = session.deps.settings.dataConnectTimeout * 1000;
  try {
    if (data.kind === 'passive') {
      const socket = await abortable(data.connect(timeoutMs), signal, (s) => s.destroy());
      return { socket, mode: data.relayed() ? 'relayed' : 'passive', relayEnd: data.relayEnd() };
    }
    // From this replica's own address (not the balancer's the client reached), as the control connection's replies come.
    return { socket: await dial(data.host, data.port, normalizeAddress(session.socket.localAddress ?? ''), timeoutMs, signal), mode: 'active' };
  } catch (err) {
    if (data.kind === 'passive') data.dispose();
    if (signal.aborted) throw err;
    session.log.warn({ err: (err as Error).message, mode: data.kind }, 'data connection failed');
    throw new FtpError(425, "Can't open data connection");
  }
}

function dial(host: string, port: number, localAddress: string, timeoutMs: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localAddress, noDelay: true });
    const fail = (err: Error) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    };
    const onAbort = () => fail(new Error('aborted'));
    const timer = setTimeout(() => fail(new Error('connect timed out')), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('error', fail);
      resolve(socket);
    });
  });
}

/** Rejects when `signal` aborts; a value that arrives after that is cleaned up. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, cleanup: (value: T) => void): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) cleanup(value);
        else resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
