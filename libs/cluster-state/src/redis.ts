import type { Redis } from 'ioredis';
import {
  applyUsageScript,
  bindUserScript,
  closeScript,
  findScript,
  inUseScript,
  activeBansScript,
  leaseScript,
  liftBanScript,
  listBansScript,
  listScript,
  openScript,
  recordFailureScript,
  redisKeys,
  releaseReservationScript,
  releaseScript,
  refundBytesScript,
  reserveScript,
  setUsageScript,
  takeBytesScript,
  unbindUserScript,
  updateScript,
  untilReady,
  waitForFailover,
} from './redisScripts';
import { connectRedis, parseRedisUrl } from './redisTarget';
import type {
  Admission,
  AdmissionLimits,
  Ban,
  BanList,
  KickChannel,
  BanPolicy,
  Binding,
  ByteBudgets,
  ByteGrant,
  ClusterState,
  LeaseRequest,
  PassiveLease,
  PassivePortPool,
  SessionKick,
  SessionRecord,
  SessionRegistry,
  UsageLedger,
} from './types';
import { DAY_COUNTER_TTL_MS, utcDay } from './windows';

export interface RedisClusterStateOptions {
  /** Where Redis answers; ignored when `redis` is given. Default redis://127.0.0.1:6379. */
  url?: string;
  /** A connection the caller owns (and closes). It should fail fast too: see README. */
  redis?: Redis;
  /** Every key starts with it. Default 'ftp:'. Put a hash tag in it (`ftp:{prod}:`) on a Redis Cluster. */
  prefix?: string;
  pasvRange: { min: number; max: number };
  /** The clock behind every expiry decision (passed to the scripts). Default Date.now. */
  now?: () => number;
  /** A session not heard of (open, bindUser, unbindUser, update) for this long no longer counts. Default 60 s. */
  sessionTtlMs?: number;
  /** How long past its logical expiry a key may linger before Redis drops it (garbage collection only). Default 10 min. */
  gcGraceMs?: number;
  /**
   * A user's usage record not written (set, apply, reserve) for this long is dropped; the next upload scans again.
   * Garbage collection of users that left. Default 7 days.
   */
  usageTtlMs?: number;
  /** A command not answered within this rejects (own connection only). Default 5 s. */
  commandTimeoutMs?: number;
  /**
   * With a Sentinel REDIS_URL (own connection only): a call made while no primary is reachable waits up to this long
   * for one (a failover) instead of failing at once, and `available()` stays true that long after the connection is
   * lost, so that no replica goes unready for a failover. Default 10 s; one Redis server: 0 (fail at once).
   */
  failoverWaitMs?: number;
  /** How long creation waits for the first connection before handing back a state whose calls reject. Default 5 s. */
  readyTimeoutMs?: number;
  /**
   * Connection errors of the own connection (each failed reconnect attempt, and the connection lost), e.g. for a log
   * line. A Redis that shuts down cleanly and is back within the first reconnect delay shows only the loss.
   */
  onError?: (err: Error) => void;
}

const STRING_FIELDS = new Set(['id', 'replicaId', 'clientAddress', 'protocol', 'user', 'command']);
/** Fields that key the address and user indexes: only open, bindUser and unbindUser change them. */
const INDEXED_FIELDS = new Set(['id', 'clientAddress', 'user']);

/** Session records are hashes: string fields raw (the scripts read clientAddress and user), the rest JSON. */
const encodeField = (name: string, value: unknown) => (STRING_FIELDS.has(name) ? String(value) : JSON.stringify(value));

function decodeRecord(flat: string[]): SessionRecord {
  const record: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i];
    record[name] = STRING_FIELDS.has(name) ? flat[i + 1] : JSON.parse(flat[i + 1]);
  }
  return record as unknown as SessionRecord;
}

/**
 * Cluster state shared by replicas through Redis. Each method is one Lua script (or one plain command), so it is
 * atomic across replicas; every expiry decision uses `now`, and key TTLs only collect garbage. Methods reject when
 * Redis is unreachable, at once rather than after a queue: the caller answers 421.
 */
/** An ioredis connection that fails fast while Redis is away and reconnects in the background. */
export function createRedisConnection(url: string, commandTimeoutMs = 5000, failoverWaitMs?: number): Redis {
  const redis = connectRedis(url, {
    // A command issued while disconnected rejects at once instead of waiting in an offline queue...
    enableOfflineQueue: false,
    // ...and one in flight when the connection drops rejects then, instead of being sent again after a
    // reconnect (a second `lease` or `open` would not be idempotent).
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // A server that accepted the command but never answers (paused, partitioned) must not hang a login.
    commandTimeout: commandTimeoutMs,
    connectTimeout: 5000,
    // Reconnect in the background forever, backing off to one attempt every 2 s (asking the sentinels each time).
    retryStrategy: (times: number) => Math.min(times * 100, 2000),
  });
  waitForFailover(redis, failoverWaitOf(url, failoverWaitMs));
  return redis;
}

/** The wait given, else 10 s for Sentinel (a promotion with down-after-milliseconds up to ~5 s) and 0 for one server. */
const failoverWaitOf = (url: string, given?: number) => given ?? (parseRedisUrl(url).kind === 'sentinel' ? 10_000 : 0);

export async function createRedisClusterState(options: RedisClusterStateOptions): Promise<ClusterState> {
  const { min, max } = options.pasvRange;
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max) {
    throw new Error(`invalid passive port range ${min}-${max}`);
  }
  const now = options.now ?? Date.now;
  const prefix = options.prefix ?? 'ftp:';
  const sessionTtlMs = options.sessionTtlMs ?? 60_000;
  const gcGraceMs = Math.max(options.gcGraceMs ?? 10 * 60_000, 1000);
  const own = !options.redis;
  const url = options.url ?? 'redis://127.0.0.1:6379';
  const redis = options.redis ?? createRedisConnection(url, options.commandTimeoutMs, options.failoverWaitMs);
  const failoverWaitMs = own ? failoverWaitOf(url, options.failoverWaitMs) : 0;
  let closed = false;
  let connectedOnce = false;
  /** When the connection was last lost (0 while it is up): a failover within failoverWaitMs keeps the state available. */
  let lostAt = 0;
  redis.once('ready', () => (connectedOnce = true));
  redis.on('ready', () => (lostAt = 0));
  redis.on('close', () => (lostAt ||= Date.now()));
  if (own) {
    redis.on('error', (err: Error) => options.onError?.(err));
    // A lost connection after the first one was made, not our own close().
    redis.on('close', () => {
      if (!closed && connectedOnce) options.onError?.(new Error('connection lost'));
    });
  }
  await firstConnection(redis, options.readyTimeoutMs ?? 5000);

  const keys = redisKeys(prefix);
  const ports = redisPorts(redis, keys, prefix, { min, max }, now, gcGraceMs);
  const kicks = redisKicks(redis, keys, options.readyTimeoutMs ?? 5000);
  return {
    kind: 'redis',
    available: () => redis.status === 'ready' || (connectedOnce && lostAt > 0 && Date.now() - lostAt < failoverWaitMs),
    sessions: redisSessions(redis, keys, prefix, now, sessionTtlMs, gcGraceMs),
    ports,
    bans: redisBans(redis, keys, now, gcGraceMs),
    kicks,
    usage: redisUsage(redis, keys, now, Math.ceil(options.usageTtlMs ?? 7 * 86_400_000), gcGraceMs),
    budgets: redisBudgets(redis, keys, now, gcGraceMs),
    close: async () => {
      // The subscriber connections are always this state's own, whoever owns the main one.
      await kicks.closeAll();
      // Only the connection made here; once (ioredis arms a 2 s timer when an ended connection is disconnected again).
      if (!own || closed) return;
      closed = true;
      if (redis.status === 'end') return;
      if (redis.status === 'ready') {
        try {
          await ports.drainReleases();
          await redis.quit();
          return;
        } catch {
          // fall through: drop the socket
        }
      }
      redis.disconnect();
    },
  };
}

/**
 * Waits until the connection is ready, its first attempt failed, or `timeoutMs` passed. It never rejects: while Redis
 * is down the state's calls reject (callers answer 421) and the connection keeps trying in the background.
 */
function firstConnection(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  if (redis.status === 'wait') redis.connect().catch(() => {});
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('error', done);
      redis.off('end', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    redis.once('ready', done);
    redis.once('error', done);
    redis.once('end', done);
  });
}

type Keys = ReturnType<typeof redisKeys>;

const ADMISSION_REFUSALS = new Set(['banned', 'max-sessions', 'max-per-address', 'max-unauthenticated', 'address-rate']);
const BINDING_REFUSALS = new Set(['max-per-user', 'user-rate', 'gone']);

function redisSessions(
  redis: Redis,
  keys: Keys,
  prefix: string,
  now: () => number,
  ttlMs: number,
  gcGraceMs: number,
): SessionRegistry {
  /** ARGV[1..4] of every session script. */
  const head = () => {
    const t = now();
    return [prefix, t, t + ttlMs, Math.ceil(ttlMs + gcGraceMs)];
  };
  return {
    async open(record: SessionRecord, limits: AdmissionLimits): Promise<Admission> {
      const fields: string[] = [];
      for (const [name, value] of Object.entries(record)) if (value !== undefined) fields.push(name, encodeField(name, value));
      const result = await openScript.run(
        redis,
        [
          keys.sessions,
          keys.sessionsByAddress(record.clientAddress),
          keys.session(record.id),
          keys.sessionsPreLogin(record.clientAddress),
          keys.ban(record.clientAddress),
          keys.opensByAddress(record.clientAddress),
        ],
        [
          ...head(),
          limits.maxSessions,
          limits.maxPerAddress,
          record.id,
          record.user ?? '',
          limits.maxUnauthenticatedPerAddress ?? 0,
          limits.sessionsPerMinutePerAddress ?? 0,
          ...fields,
        ],
      );
      if (result === 'ok') return { ok: true };
      if (ADMISSION_REFUSALS.has(result as string)) return { ok: false, reason: result as Extract<Admission, { ok: false }>['reason'] };
      throw new Error(`unexpected reply from the open script: ${String(result)}`);
    },
    async bindUser(id, user, limits): Promise<Binding> {
      const result = await bindUserScript.run(
        redis,
        [keys.sessions, keys.session(id), keys.sessionsByUser(user), keys.bindsByUser(user)],
        [...head(), id, user, limits.maxPerUser, limits.sessionsPerMinute ?? 0],
      );
      if (result === 'ok') return { ok: true };
      if (BINDING_REFUSALS.has(result as string)) return { ok: false, reason: result as Extract<Binding, { ok: false }>['reason'] };
      throw new Error(`unexpected reply from the bindUser script: ${String(result)}`);
    },
    async unbindUser(id) {
      await unbindUserScript.run(redis, [keys.sessions, keys.session(id)], [...head(), id]);
    },
    async update(id, patch) {
      const set: string[] = [];
      const unset: string[] = [];
      for (const [name, value] of Object.entries(patch)) {
        if (INDEXED_FIELDS.has(name)) continue;
        if (value === undefined) unset.push(name);
        else set.push(name, encodeField(name, value));
      }
      return (await updateScript.run(redis, [keys.sessions, keys.session(id)], [...head(), id, set.length / 2, ...set, ...unset])) === 1;
    },
    async close(id) {
      await closeScript.run(redis, [keys.sessions, keys.session(id)], [...head(), id]);
    },
    async list() {
      const result = (await listScript.run(redis, [keys.sessions], head())) as string[][];
      return result.map(decodeRecord);
    },
  };
}

/**
 * Releases are on no client's path (the data connection has arrived, or the session is gone), so they are gathered for
 * a few milliseconds and sent as one script call: a busy replica pays one round trip for many transfers, and the port
 * is free again a few milliseconds later, which the moving lease cursor never notices.
 */
const RELEASE_BATCH_MS = 10;
const RELEASE_BATCH_MAX = 100;

/** Gathers items for up to `ms` (or `max` items) and hands them to `send` at once; each add settles with its batch. */
function batcher<T>(ms: number, max: number, send: (batch: T[]) => Promise<void>) {
  let pending: Array<{ item: T; resolve: () => void; reject: (err: unknown) => void }> = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return Promise.resolve();
    return send(batch.map((p) => p.item)).then(
      () => batch.forEach((p) => p.resolve()),
      (err) => batch.forEach((p) => p.reject(err)),
    );
  };
  return {
    /** Sends what is gathered now (at close). */
    drain: flush,
    add: (item: T) =>
      new Promise<void>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        if (pending.length >= max) flush();
        else timer ??= setTimeout(flush, ms);
      }),
  };
}

function redisPorts(
  redis: Redis,
  keys: Keys,
  prefix: string,
  range: { min: number; max: number },
  now: () => number,
  gcGraceMs: number,
): PassivePortPool & { drainReleases(): Promise<void> } {
  const parse = (port: number, json: unknown): PassiveLease | null => {
    if (typeof json !== 'string') return null;
    const stored = JSON.parse(json) as Omit<PassiveLease, 'port'>;
    return {
      port,
      clientAddress: stored.clientAddress,
      sessionId: stored.sessionId,
      replicaId: stored.replicaId,
      relayAddress: stored.relayAddress ?? '',
      relayToken: stored.relayToken ?? '',
      expiresAt: stored.expiresAt,
    };
  };
  const releases = batcher<PassiveLease>(RELEASE_BATCH_MS, RELEASE_BATCH_MAX, async (batch) => {
    const args: string[] = [];
    for (const lease of batch) args.push(lease.clientAddress, lease.sessionId);
    await releaseScript.run(redis, batch.map((lease) => keys.port(lease.port)), args);
  });
  return {
    async lease(request: LeaseRequest) {
      const t = now();
      const stored = {
        clientAddress: request.clientAddress,
        sessionId: request.sessionId,
        replicaId: request.replicaId,
        relayAddress: request.relayAddress,
        relayToken: request.relayToken ?? '',
        expiresAt: t + request.ttlMs,
      };
      const port = await leaseScript.run(redis, [keys.portCursor], [
        prefix,
        t,
        range.min,
        range.max,
        request.clientAddress,
        JSON.stringify(stored),
        Math.ceil(Math.max(request.ttlMs, 0) + gcGraceMs),
      ]);
      return typeof port === 'number' ? { port, ...stored } : null;
    },
    release(lease) {
      return releases.add(lease);
    },
    drainReleases: releases.drain,
    async find(port, clientAddress) {
      return parse(port, await findScript.run(redis, [keys.port(port)], [prefix, now(), clientAddress]));
    },
    async inUse() {
      return Number(await inUseScript.run(redis, [keys.portCursor], [prefix, now(), range.min, range.max]));
    },
    async markRelayEnded(relayId) {
      const failover = untilReady(redis);
      if (failover) await failover;
      await redis.set(keys.relayEnd(relayId), '1', 'PX', RELAY_END_TTL_MS);
    },
    async relayEnded(relayId) {
      const failover = untilReady(redis);
      if (failover) await failover;
      return (await redis.exists(keys.relayEnd(relayId))) === 1;
    },
  };
}

/** How long a relayed connection's clean end is kept: the owner asks as soon as it reads the EOF. */
const RELAY_END_TTL_MS = 5 * 60_000;

function redisBans(redis: Redis, keys: Keys, now: () => number, gcGraceMs: number): BanList {
  return {
    async isBanned(address) {
      const failover = untilReady(redis);
      if (failover) await failover;
      const until = await redis.get(keys.ban(address));
      return until !== null && Number(until) > now();
    },
    async recordFailure(address: string, user: string, policy: BanPolicy) {
      const t = now();
      const banMs = policy.banSeconds * 1000;
      const [banned, failures] = (await recordFailureScript.run(redis, [keys.failures(address), keys.ban(address), keys.bans], [
        t,
        policy.threshold,
        t + banMs,
        Math.ceil(Math.max(banMs, 0) + gcGraceMs),
        address,
        user,
      ])) as [number, number];
      return { banned: banned === 1, failures };
    },
    async active() {
      return Number(await activeBansScript.run(redis, [keys.bans], [now()]));
    },
    async list() {
      const flat = (await listBansScript.run(redis, [keys.bans], [now()])) as string[];
      const bans: Ban[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) bans.push({ address: flat[i], until: Number(flat[i + 1]) });
      return bans;
    },
    async lift(address) {
      return (await liftBanScript.run(redis, [keys.ban(address), keys.failures(address), keys.bans], [now(), address])) === 1;
    },
  };
}

/** Usage and reservations (see the usage scripts): one round trip per call, `get` a plain HMGET. */
function redisUsage(redis: Redis, keys: Keys, now: () => number, usageTtlMs: number, gcGraceMs: number): UsageLedger {
  const usagePx = usageTtlMs + gcGraceMs;
  const whole = (n: number) => Math.max(0, Math.floor(n));
  return {
    async get(user) {
      const [bytes, files] = await redis.hmget(keys.usage(user), 'bytes', 'files');
      return bytes === null ? null : { bytes: Number(bytes), files: Number(files ?? 0) };
    },
    async set(user, usage, options) {
      await setUsageScript.run(redis, [keys.usage(user)], [whole(usage.bytes), whole(usage.files), options?.ifAbsent ? '1' : '0', usagePx]);
    },
    async reserve(user, uploadId, want, quota, ttlMs) {
      const t = now();
      const granted = await reserveScript.run(redis, [keys.usage(user), keys.reserved(user), keys.reservedUntil(user)], [
        t,
        uploadId,
        whole(want),
        whole(quota.bytes),
        whole(quota.credit ?? 0),
        t + ttlMs,
        Math.ceil(Math.max(ttlMs, 0) + gcGraceMs),
        usagePx,
      ]);
      return Number(granted);
    },
    async apply(user, delta, uploadId) {
      await applyUsageScript.run(redis, [keys.usage(user), keys.reserved(user), keys.reservedUntil(user)], [
        Math.trunc(delta.bytes),
        Math.trunc(delta.files),
        uploadId ?? '',
        usagePx,
      ]);
    },
    async release(user, uploadId) {
      await releaseReservationScript.run(redis, [keys.reserved(user), keys.reservedUntil(user)], [uploadId]);
    },
  };
}

/** Byte budgets (see the take and refund scripts): one round trip per call, `today` a plain MGET. */
function redisBudgets(redis: Redis, keys: Keys, now: () => number, gcGraceMs: number): ByteBudgets {
  return {
    async take(request) {
      const t = now();
      const { user, direction } = request;
      const [granted, limitedBy, retryAfterMs, replicas] = (await takeBytesScript.run(
        redis,
        [keys.takers(direction, user), keys.bucket(direction, user), keys.daily(utcDay(t), direction, user)],
        [
          t,
          request.replicaId,
          Math.max(0, Math.floor(request.want)),
          Math.max(0, request.bytesPerSecond),
          Math.max(0, request.burstMs),
          Math.max(0, Math.floor(request.dailyBytes)),
          // The bucket refills in one burst: kept that long plus the grace.
          Math.ceil(Math.max(request.burstMs, 1000) + gcGraceMs),
          DAY_COUNTER_TTL_MS,
        ],
      )) as [number, string, number, number];
      const grant: ByteGrant = { granted, replicas };
      if (limitedBy === 'daily' || limitedBy === 'bandwidth') grant.limitedBy = limitedBy;
      if (limitedBy === 'bandwidth') grant.retryAfterMs = retryAfterMs;
      return grant;
    },
    async refund(user, direction, bytes, day) {
      await refundBytesScript.run(redis, [keys.bucket(direction, user), keys.daily(day, direction, user)], [Math.max(0, Math.floor(bytes))]);
    },
    async today(user) {
      const day = utcDay(now());
      const [upload, download] = await redis.mget(keys.daily(day, 'upload', user), keys.daily(day, 'download', user));
      return { upload: Number(upload ?? 0), download: Number(download ?? 0) };
    },
  };
}

/** A kick as it travels: JSON of SessionKick. Anything else on the channel is ignored. */
function decodeKick(message: string): SessionKick | undefined {
  try {
    const kick = JSON.parse(message) as Partial<SessionKick>;
    if (typeof kick.reason !== 'string' || (typeof kick.sessionId !== 'string' && typeof kick.user !== 'string')) return undefined;
    return { sessionId: kick.sessionId, user: kick.user, reason: kick.reason, by: typeof kick.by === 'string' ? kick.by : undefined };
  } catch {
    return undefined;
  }
}

/**
 * Kicks over Redis pub/sub: PUBLISH on the main connection (its reply counts the subscribers that got the message),
 * and per listener a subscriber connection of its own (a subscribed connection can do nothing else), which ioredis
 * subscribes again after every reconnect. A kick sent while a replica is cut off is lost for it: kicks are for live
 * sessions, and a replica cut off from Redis refuses new logins anyway.
 */
function redisKicks(redis: Redis, keys: Keys, readyTimeoutMs: number): KickChannel & { closeAll(): Promise<void> } {
  const subscribers = new Set<Redis>();
  const stop = async (subscriber: Redis) => {
    if (!subscribers.delete(subscriber)) return;
    if (subscriber.status === 'ready') await subscriber.quit().catch(() => subscriber.disconnect());
    else subscriber.disconnect();
  };
  return {
    async send(replicaId, kick) {
      const failover = untilReady(redis);
      if (failover) await failover;
      return redis.publish(replicaId === '*' ? keys.kicksAll : keys.kicksTo(replicaId), JSON.stringify(kick));
    },
    async listen(replicaId, onKick) {
      // The subscription waits in the offline queue while Redis is away (however long), and ioredis subscribes again
      // after each reconnect.
      const subscriber = redis.duplicate({
        enableOfflineQueue: true,
        maxRetriesPerRequest: null,
        autoResubscribe: true,
        commandTimeout: undefined,
        lazyConnect: false,
      });
      subscriber.on('error', () => {}); // the main connection reports outages; this one retries with it
      subscribers.add(subscriber);
      subscriber.on('message', (_channel: string, message: string) => {
        const kick = decodeKick(message);
        if (kick) onKick(kick);
      });
      const subscribed = subscriber.subscribe(keys.kicksTo(replicaId), keys.kicksAll).catch(() => undefined);
      // With Redis there, kicks are heard once this resolves; with Redis away, the subscription waits in the queue
      // and a start-up is not held up by it.
      if (redis.status === 'ready') {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([subscribed, new Promise((resolve) => (timer = setTimeout(resolve, readyTimeoutMs)))]);
        clearTimeout(timer);
      }
      return () => stop(subscriber);
    },
    async closeAll() {
      await Promise.all([...subscribers].map(stop));
    },
  };
}
