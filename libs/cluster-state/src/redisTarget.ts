import { Redis, type RedisOptions } from 'ioredis';

/**
 * REDIS_URL, in one of two documented forms:
 * - `redis://[[user]:password@]host:port[/db]` (or `rediss://` for TLS): one Redis server.
 * - `redis+sentinel://[[user]:password@]host:port[,host:port…]/<master name>[/db][?sentinelPassword=…]`: Redis
 *   Sentinel. The addresses are sentinels; the password (and user) is the primary's, `sentinelPassword` the
 *   sentinels' own when they have one. Every process asks the sentinels which server is the primary at each
 *   (re)connection, and checks the role of the server it reached, so it never writes to a demoted primary.
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
      // No failover detector: ioredis's (6.0) disconnects the connector when the sentinels announce a new primary,
      // and landing while the connection reconnects, that ended the connection for good ("Connection is closed." on
      // every call: an edge refused all logins for 8 s in the chaos run); overlapping re-subscriptions also leaked
      // its sentinel subscriber connections. A dead primary closes the connection anyway, a demoted one is closed by
      // Sentinel's CLIENT KILL, and the retry asks the sentinels again and checks the server's role.
      failoverDetector: false,
    },
    shown,
  };
}

/** A new ioredis connection to REDIS_URL (either form) with `options` on top (timeouts, retry strategy…). */
export function connectRedis(url: string, options: RedisOptions = {}): Redis {
  const target = parseRedisUrl(url);
  return target.kind === 'single' ? new Redis(url, options) : new Redis({ ...target.options, ...options });
}

function splitCredentials(credentials: string): [string | undefined, string | undefined] {
  const colon = credentials.indexOf(':');
  if (colon < 0) return [undefined, decodeURIComponent(credentials)];
  const user = credentials.slice(0, colon);
  return [user ? decodeURIComponent(user) : undefined, decodeURIComponent(credentials.slice(colon + 1))];
}
