import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { normalizeAddress } from '@ftp/protocol';
import type { Logger } from '@ftp/telemetry';
import { resolvePeer, type Peer } from '@ftp/session-core';
import { readProxyHeader } from '@ftp/session-core';
import { RELAY_END_TLV, RELAY_SESSION_TLV, RELAY_TOKEN_TLV } from './relay';
import { resetOrDestroy } from './zeroCopyIo';

interface Waiter {
  key: string;
  sessionId: string;
  /** The lease's relay token: what a peer handing the connection over must present ('' = no relay accepted). */
  relayToken: string;
  socket?: Socket;
  /** The connection was handed over by a peer replica (it reached the peer first). */
  relayed?: boolean;
  /** Its relay id, under which the relaying peer records the client's clean end (RELAY_END_TLV). */
  relayEnd?: string;
  resolve?: (socket: Socket) => void;
}

/** A data connection expected on `port` from `address` ('*' = any). */
export interface PassiveExpectation {
  /** Resolves with the connection (even if it arrived before the call). Rejects after timeoutMs. */
  connect(timeoutMs: number): Promise<Socket>;
  /** Stops expecting and closes the connection (a finished transfer has flushed it by then). */
  dispose(): void;
  /** Whether the connection came through a peer's relay rather than straight from the client. */
  readonly relayed: boolean;
  /** A relayed connection's relay id (see RELAY_END_TLV); undefined for a direct one, or a peer that sends none. */
  readonly relayEnd: string | undefined;
}

export interface PassiveListeners {
  start(): Promise<void>;
  /** `relayToken`: the lease's, which a peer relaying the connection must present; '' or absent = no relay accepted. */
  expect(port: number, address: string, sessionId: string, relayToken?: string): PassiveExpectation;
  /**
   * Stops listening and waits for the connections still open (data connections this replica relays for another
   * one's sessions) to end, at most `graceMs`; those left then are reset.
   */
  close(graceMs?: number): Promise<void>;
  /** Data connections that reached a port nobody expected them on. */
  readonly strays: number;
}

export interface PassiveListenerOptions {
  host: string;
  range: { min: number; max: number };
  log: Logger;
  /** Balancers whose connections start with a PROXY header carrying the real client. */
  trustsProxy?: (address: string) => boolean;
  /** Hands a connection nobody here expects to the replica that leased its port; false when none did. */
  relay?: (socket: Socket, port: number, peer: Peer) => Promise<boolean>;
  /** Where peers hand over connections for this replica's leases; 0 or absent = no relay listener. */
  relayPort?: number;
  /** The address the relay listener binds to: the one peers dial (a pod IP), not a wildcard. Default `host`. */
  relayHost?: string;
  /** Counts connections a peer handed over. */
  onRelayReceived?: () => void;
  /** Told the client of every data connection, as read from the socket or a trusted balancer's PROXY header. */
  onPeer?: (socket: Socket, peer: Peer) => void;
}

/** How long a peer has to send the relay header. */
const RELAY_HEADER_TIMEOUT_MS = 5000;

/**
 * Listens on every port of the passive range at once and routes each data connection by (port, client address)
 * to the session that leased it. Routing by address is what lets one port serve many clients, and it refuses a
 * connection from anyone but the client the port was leased to (data-port theft). A connection for a port another
 * replica leased is relayed to it; connections relayed by peers arrive on the relay port.
 */
export function createPassiveListeners(options: PassiveListenerOptions): PassiveListeners {
  const waiters = new Map<string, Waiter>();
  const servers: Server[] = [];
  /** Every accepted connection until it closes: close() must not wait for them longer than its grace. */
  const open = new Set<Socket>();
  let strays = 0;

  const waiterFor = (port: number, address: string) => waiters.get(`${port}|${address}`) ?? waiters.get(`${port}|*`);

  const refuse = (socket: Socket, port: number, address: string, why: string) => {
    strays++;
    options.log.warn({ port, client: address }, `data connection refused: ${why}`);
    socket.destroy();
  };

  const route = async (port: number, socket: Socket) => {
    socket.on('error', () => {}); // errors surface through the transfer that owns the socket
    const peer = await resolvePeer(socket, options.trustsProxy ?? (() => false), options.log);
    if (!peer) return;
    options.onPeer?.(socket, peer);
    const waiter = waiterFor(port, peer.address);
    if (waiter) return deliver(waiter, socket);
    if (!waiter && options.relay && (await options.relay(socket, port, peer))) return;
    refuse(socket, port, peer.address, 'no session expects it on this port');
  };

  /**
   * A connection a peer relayed: the header names the client, the port and the lease's session, and carries the
   * lease's relay token, which only a replica that read the lease from the cluster state knows (the session id is in
   * every log line, so it proves nothing). Without the right token the connection is refused and the waiter stays
   * for the real client.
   */
  const routeRelayed = async (socket: Socket) => {
    socket.on('error', () => {});
    const from = normalizeAddress(socket.remoteAddress ?? '');
    try {
      const header = await readProxyHeader(socket, RELAY_HEADER_TIMEOUT_MS);
      const sessionId = header.tlvs.get(RELAY_SESSION_TLV)?.toString();
      if (!header.source || !header.destination || !sessionId) throw new Error('relay header lacks the client, port or session');
      const address = normalizeAddress(header.source.address);
      const waiter = waiterFor(header.destination.port, address);
      if (!waiter || waiter.sessionId !== sessionId) {
        return refuse(socket, header.destination.port, address, `relayed by ${from} for a lease this replica does not hold`);
      }
      if (!sameToken(waiter.relayToken, header.tlvs.get(RELAY_TOKEN_TLV))) {
        return refuse(socket, header.destination.port, address, `relayed by ${from} without the lease's relay token`);
      }
      options.onRelayReceived?.();
      deliver(waiter, socket, header.tlvs.get(RELAY_END_TLV)?.toString() ?? '');
    } catch (err) {
      options.log.warn({ peer: from, err: (err as Error).message }, 'relayed data connection refused: bad relay header');
      socket.destroy();
    }
  };

  /**
   * Only waiters without a connection stay routable: a second connection is refused (data-port theft), and once the
   * lease is released another session (here or on a peer) may lease the same port for the same address.
   */
  /** `relayEnd`: for a connection a peer relayed, its relay id ('' from a peer that sends none). */
  const deliver = (waiter: Waiter, socket: Socket, relayEnd?: string) => {
    if (waiters.get(waiter.key) === waiter) waiters.delete(waiter.key);
    waiter.socket = socket;
    waiter.relayed = relayEnd !== undefined;
    waiter.relayEnd = relayEnd || undefined;
    waiter.resolve?.(socket);
  };

  const listenOn = async (port: number, onConnection: (socket: Socket) => void, host = options.host) => {
    const server = createServer({ noDelay: true }, (socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      onConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, backlog: 511 }, () => resolve());
    });
    server.on('error', (err) => options.log.error({ err, port }, 'passive listener error'));
    servers.push(server);
  };

  return {
    get strays() {
      return strays;
    },
    async start() {
      for (let port = options.range.min; port <= options.range.max; port++) {
        await listenOn(port, (socket) => void route(port, socket));
      }
      if (options.relayPort) await listenOn(options.relayPort, (socket) => void routeRelayed(socket), options.relayHost);
    },
    expect(port, address, sessionId, relayToken) {
      const key = `${port}|${address}`;
      const waiter: Waiter = { key, sessionId, relayToken: relayToken ?? '' };
      waiters.set(key, waiter);
      const dispose = () => {
        if (waiters.get(key) === waiter) waiters.delete(key);
        waiter.socket?.destroy();
      };
      return {
        dispose,
        get relayed() {
          return Boolean(waiter.relayed);
        },
        get relayEnd() {
          return waiter.relayEnd;
        },
        connect(timeoutMs) {
          if (waiter.socket) return Promise.resolve(waiter.socket);
          return new Promise<Socket>((resolve, reject) => {
            const timer = setTimeout(() => {
              waiter.resolve = undefined;
              reject(new Error('data connection timed out'));
            }, timeoutMs);
            waiter.resolve = (socket) => {
              clearTimeout(timer);
              resolve(socket);
            };
          });
        },
      };
    },
    async close(graceMs = 30_000) {
      const closed = Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
      clearTimeout(timer);
      if (late) {
        options.log.warn({ connections: open.size }, 'data connections still open at the end of the drain: reset');
        for (const socket of open) resetOrDestroy(socket);
        await closed;
      }
      servers.length = 0;
      for (const waiter of waiters.values()) waiter.socket?.destroy();
      waiters.clear();
    },
  };
}

/** Whether a presented relay token is the expected one, in constant time; an empty expected token matches nothing. */
function sameToken(expected: string, presented: Buffer | undefined): boolean {
  if (!expected || !presented) return false;
  const wanted = Buffer.from(expected);
  return wanted.length === presented.length && timingSafeEqual(wanted, presented);
}
