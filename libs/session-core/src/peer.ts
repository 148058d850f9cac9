import type { Socket } from 'node:net';
import { normalizeAddress } from './address';
import type { Logger } from '@ftp/telemetry';
import { readProxyHeader } from './proxyHeader';

/** Who is really at the other end of a connection, and which server address they reached. */
export interface Peer {
  address: string;
  port: number;
  serverAddress: string;
  /** The server port the client dialled (the balancer's, behind PROXY protocol). */
  serverPort: number;
}

/** How long a trusted balancer has to send its PROXY header. */
const PROXY_HEADER_TIMEOUT_MS = 5000;

/**
 * The real client of a connection: from its PROXY header when it comes from a trusted balancer, else the socket's
 * own peer. Null means the connection is finished: a balancer's health check (PROXY LOCAL) or a broken header.
 */
export async function resolvePeer(socket: Socket, trustsProxy: (address: string) => boolean, log: Logger): Promise<Peer | null> {
  const own: Peer = {
    address: normalizeAddress(socket.remoteAddress ?? ''),
    port: socket.remotePort ?? 0,
    serverAddress: normalizeAddress(socket.localAddress ?? ''),
    serverPort: socket.localPort ?? 0,
  };
  if (!trustsProxy(own.address)) return own;
  try {
    const header = await readProxyHeader(socket, PROXY_HEADER_TIMEOUT_MS);
    if (header.command === 'local') {
      socket.destroy();
      return null;
    }
    if (!header.source || !header.destination) return own; // PROXY UNKNOWN: the balancer does not know either
    return {
      address: normalizeAddress(header.source.address),
      port: header.source.port,
      serverAddress: normalizeAddress(header.destination.address),
      serverPort: header.destination.port,
    };
  } catch (err) {
    log.warn({ balancer: own.address, err: (err as Error).message }, 'connection from a trusted balancer without a valid PROXY header: closing');
    socket.destroy();
    return null;
  }
}
