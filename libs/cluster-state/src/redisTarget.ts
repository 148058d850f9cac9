import { Redis, type RedisOptions } from 'ioredis';

/**
 * REDIS_URL, in one of two documented forms:
 * - `redis://[[user]:password@]host:port[/db]` (or `rediss://` for TLS): one Redis server.
 * - `redis+sentinel://[[user]:password@]host:port[,host:port…]/<master name>[/db][?sentinelPassword=…]`: Redis
 *   Sentinel. The addresses are sentinels; the password (and user) is the primary's, `sentinelPassword` the
 *   sentinels' own when they have one. Every process asks the sentinels which server is the primary, follows a
 *   failover (ioredis's failover detector subscribes to `+switch-master`) and checks the role of the server it reached,
 *   so it never writes to a demoted primary.
 * Redis Cluster is not supported: the Lua scripts of the cluster state touch keys of several sessions, users and
 * addresses at once, and BullMQ needs every queue key in one hash slot (a `{…}` hash-tag prefix); both would have to
 * be redesigned around hash tags first.
 */
export type RedisTarget =
  /** One server: the URL goes to ioredis as it is (its own parsing: db, TLS, query options). */
  | { kind: 'single'; url: string; shown: string }
  /** Sentinel: ioredis options with the sentinels and the master name. `shown`: for logs, without passwords. */
  | { kind: 'sentinel'; options: RedisOptions; shown: string };

const SENTINEL_SCHEME = 'redis+sentinel:';

/** Parses REDIS_URL; throws an Error naming what is wrong (config loading turns it into a ConfigError). */
export function parseRedisUrl(url: string): RedisTarget {
  const shown = url.replace(/\/\/([^@/]*)@/, '//***@').replace(/([?&]sentinelPassword=)[^&]*/, '$1***');
  if (!url.startsWith(`${SENTINEL_SCHEME}//`)) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new Error(`expected redis://, rediss:// or redis+sentinel://, got ${shown}`);
    return { kind: 'single', url, shown };
  }
  // URL() cannot take a list of hosts: take the authority apart by hand.
  const rest = url.slice(`${SENTINEL_SCHEME}//`.length);
  const [beforeQuery, query = ''] = rest.split('?', 2);
  const slash = beforeQuery.indexOf('/');
  const authority = slash < 0 ? beforeQuery : beforeQuery.slice(0, slash);
  const path = slash < 0 ? '' : beforeQuery.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  const credentials = at < 0 ? '' : authority.slice(0, at);
  const hosts = at < 0 ? authority : authority.slice(at + 1);
  const sentinels = hosts.split(',').map((hostPort) => {
    const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hostPort);
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) throw new Error(`sentinel address "${hostPort}" is not host:port (${shown})`);
    return { host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) };
  });
  const [name, db = '0', ...extra] = path.split('/').filter((s) => s !== '');
  if (!name || extra.length > 0 || !/^\d+$/.test(db)) throw new Error(`expected redis+sentinel://host:port[,host:port…]/<master name>[/db], got ${shown}`);
  const [username, password] = credentials ? splitCredentials(credentials) : [undefined, undefined];
  const params = new URLSearchParams(query);
  return {
    kind: 'sentinel',
    options: {
      sentinels,
      name: decodeURIComponent(name),
      db: Number(db),
      username,
      password,
      sentinelPassword: params.get('sentinelPassword') ?? undefined,
      // Reconnect to the new primary as soon as the sentinels announce it, not at the next failed command.
      failoverDetector: true,
    },
    shown,
  };
}

/** A new ioredis connection to REDIS_URL (either form) with `options` on top (timeouts, retry strategy…). */
export function connectRedis(url: string, options: RedisOptions = {}): Redis {
  const target = parseRedisUrl(url);
  return target.kind === 'single' ? new Redis(url, options) : new SentinelRedis({ ...target.options, ...options } as LegacyOptions);
}

const CONNECTION_CLOSED = 'Connection is closed.';
/** The options of a connection with ioredis's default (RESP2) replies, which is what every caller here uses. */
type LegacyOptions = RedisOptions & { replyMapping?: 'legacy' };

/**
 * An ioredis Sentinel connection that never gives up by itself. ioredis's failover detector disconnects the connector
 * when the sentinels announce a new primary; if that lands while the connection is reconnecting (asking a sentinel
 * where the primary is), the connect fails as "Connection is closed." and ioredis ends the connection for good, as if
 * it had been closed on purpose: every later command fails at once (the chaos run saw an edge refuse every login
 * for 8 s after a failover). A close asked for by the caller (disconnect, quit) emits no such error. Connections
 * made from this one (duplicate(), as BullMQ makes its blocking connection) behave the same.
 */
class SentinelRedis extends Redis {
  constructor(options: LegacyOptions) {
    super(options);
    this.on('error', (err: Error) => {
      if (err.message !== CONNECTION_CLOSED || this.status === 'end') return;
      // ioredis sets 'end' right after emitting this error: connect again then, as its retry strategy would have.
      this.once('end', () => this.connect().catch(() => {}));
    });
  }

  override duplicate(override?: Partial<RedisOptions>): Redis {
    return new SentinelRedis({ ...this.options, ...override } as LegacyOptions);
  }
}

function splitCredentials(credentials: string): [string | undefined, string | undefined] {
  const colon = credentials.indexOf(':');
  if (colon < 0) return [undefined, decodeURIComponent(credentials)];
  const user = credentials.slice(0, colon);
  return [user ? decodeURIComponent(user) : undefined, decodeURIComponent(credentials.slice(colon + 1))];
}
