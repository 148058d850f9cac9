import pg from 'pg';

/** The channel the user store's triggers notify (see migrations/001.do.user-store.sql). */
export const CHANGE_CHANNEL = 'ftp_user_store';

export interface ChangeFeedOptions {
  /** How to connect (a dedicated connection: LISTEN holds it). */
  client: pg.ClientConfig;
  /** Each notification's payload, in the order PostgreSQL sends them. */
  onNotification(payload: string): void;
  /**
   * After every (re)connection, once LISTEN is in place: load everything, since notifications sent while this
   * replica was not listening are lost. A throw counts as a failed connection (retried).
   */
  onListening(): Promise<void>;
  /** The connection is gone (PostgreSQL restarted or unreachable); reconnection attempts follow. */
  onLost(err: Error): void;
  /** Liveness query on the listening connection (default every 5000 ms, answer within 3000 ms). */
  pingMs?: number;
  pingTimeoutMs?: number;
  /** Reconnection backoff: first wait, doubled up to the max (default 100 → 5000 ms). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface ChangeFeed {
  /** Connects, listens and runs onListening once; throws if that fails (no retry for the first one). */
  start(): Promise<void>;
  /** Whether the feed is connected and listening now. */
  readonly listening: boolean;
  close(): Promise<void>;
}

/**
 * A LISTEN connection that stays up: on an error, an end, or a liveness query that does not answer (a silently dead
 * TCP connection sends no error), it is dropped and reconnected with backoff; each reconnection LISTENs again and then
 * calls onListening, which reloads what was missed.
 */
export function createChangeFeed(options: ChangeFeedOptions): ChangeFeed {
  const pingMs = options.pingMs ?? 5000;
  const pingTimeoutMs = options.pingTimeoutMs ?? 3000;
  const retryMinMs = options.retryMinMs ?? 100;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  let client: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let retryMs = retryMinMs;
  let retryTimer: NodeJS.Timeout | undefined;
  let pingTimer: NodeJS.Timeout | undefined;

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionTimeoutMillis: 3000, keepAlive: true, application_name: 'ftp-user-store-listen', ...options.client });
    client = next;
    next.on('error', (err) => lost(next, err));
    next.on('end', () => lost(next, new Error('connection to PostgreSQL ended')));
    next.on('notification', (message) => {
      if (message.channel === CHANGE_CHANNEL && message.payload !== undefined) options.onNotification(message.payload);
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${CHANGE_CHANNEL}`);
      await options.onListening();
    } catch (err) {
      if (client === next) client = undefined;
      next.removeAllListeners('end');
      await next.end().catch(() => {});
      throw err;
    }
    if (closed || client !== next) return;
    listening = true;
    retryMs = retryMinMs;
    pingTimer = setInterval(() => void ping(next), pingMs);
    pingTimer.unref();
  };

  const ping = async (target: pg.Client) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`PostgreSQL did not answer a liveness query within ${pingTimeoutMs} ms`)), pingTimeoutMs);
    });
    try {
      await Promise.race([target.query('SELECT 1'), timeout]);
    } catch (err) {
      lost(target, err as Error);
    } finally {
      clearTimeout(timer);
    }
  };

  // Once per connection: the first of error/end/failed ping wins.
  const lost = (target: pg.Client, err: Error) => {
    if (closed || client !== target) return;
    client = undefined;
    const wasListening = listening;
    listening = false;
    clearInterval(pingTimer);
    target.removeAllListeners('end');
    target.end().catch(() => {});
    if (wasListening) options.onLost(err);
    scheduleRetry();
  };

  const scheduleRetry = () => {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect().catch(() => {
        retryMs = Math.min(retryMs * 2, retryMaxMs);
        scheduleRetry();
      });
    }, retryMs);
    retryTimer.unref();
  };

  return {
    start: connect,
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      listening = false;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      const last = client;
      client = undefined;
      if (last) {
        last.removeAllListeners('end');
        await last.end().catch(() => {});
      }
    },
  };
}
