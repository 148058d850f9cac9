import { createServer, type Server, type Socket } from 'node:net';
import { normalizeAddress } from '@ftp/protocol';
import type { Logger } from '@ftp/telemetry';

interface Waiter {
  socket?: Socket;
  resolve?: (socket: Socket) => void;
}

/** A data connection expected on `port` from `address` ('*' = any). */
export interface PassiveExpectation {
  /** Resolves with the connection (even if it arrived before the call). Rejects after timeoutMs. */
  connect(timeoutMs: number): Promise<Socket>;
  /** Stops expecting and closes the connection (a finished transfer has flushed it by then). */
  dispose(): void;
}

export interface PassiveListeners {
  start(): Promise<void>;
  expect(port: number, address: string): PassiveExpectation;
  close(): Promise<void>;
  /** Data connections that reached a port nobody expected them on. */
  readonly strays: number;
}

/**
 * Listens on every port of the passive range at once and routes each data connection by (port, client address)
 * to the session that leased it. Routing by address is what lets one port serve many clients, and it refuses a
 * connection from anyone but the client the port was leased to (data-port theft).
 */
export function createPassiveListeners(options: { host: string; range: { min: number; max: number }; log: Logger }): PassiveListeners {
  const waiters = new Map<string, Waiter>();
  const servers: Server[] = [];
  let strays = 0;

  const route = (port: number, socket: Socket) => {
    socket.on('error', () => {}); // errors surface through the transfer that owns the socket
    const address = normalizeAddress(socket.remoteAddress ?? '');
    const key = waiters.has(`${port}|${address}`) ? `${port}|${address}` : `${port}|*`;
    const waiter = waiters.get(key);
    if (!waiter || waiter.socket) {
      strays++;
      options.log.warn({ port, client: address }, 'data connection refused: no session expects it on this port');
      socket.destroy();
      return;
    }
    waiter.socket = socket;
    waiter.resolve?.(socket);
  };

  return {
    get strays() {
      return strays;
    },
    async start() {
      for (let port = options.range.min; port <= options.range.max; port++) {
        const server = createServer({ noDelay: true }, (socket) => route(port, socket));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: options.host, port, backlog: 511 }, () => resolve());
        });
        server.on('error', (err) => options.log.error({ err, port }, 'passive listener error'));
        servers.push(server);
      }
    },
    expect(port, address) {
      const key = `${port}|${address}`;
      const waiter: Waiter = {};
      waiters.set(key, waiter);
      const dispose = () => {
        if (waiters.get(key) === waiter) waiters.delete(key);
        waiter.socket?.destroy();
      };
      return {
        dispose,
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
    async close() {
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
      servers.length = 0;
      for (const waiter of waiters.values()) waiter.socket?.destroy();
      waiters.clear();
    },
  };
}
