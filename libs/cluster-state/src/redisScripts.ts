import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RATE_WINDOW_MS, REPLICA_WINDOW_MS } from './windows';

/**
 * The Lua scripts behind the Redis cluster state, one per method that touches more than one key or must decide and
 * write in one step. Redis runs a script without interleaving any other command, so each method is atomic across
 * replicas. Every time decision compares against `now` passed in ARGV (the caller's clock), never Redis' TIME; key
 * expiries (PEXPIRE) are only a garbage-collection backstop set well past the logical expiry.
 *
 * Key names are built in two places: `redisKeys` below (for KEYS) and the Lua helpers (for keys a script discovers,
 * such as the address index of a session it prunes). The literal segments must match; redis.test.ts checks the layout.
 */

export function redisKeys(prefix: string) {
  return {
    sessions: `${prefix}sessions`,
    sessionsByAddress: (address: string) => `${prefix}sessions:addr:${address}`,
    sessionsByUser: (user: string) => `${prefix}sessions:user:${user}`,
    sessionsPreLogin: (address: string) => `${prefix}sessions:prelogin:${address}`,
    session: (id: string) => `${prefix}session:${id}`,
    port: (port: number) => `${prefix}port:${port}`,
    relayEnd: (relayId: string) => `${prefix}relay-end:${relayId}`,
    portCursor: `${prefix}ports:cursor`,
    failures: (address: string) => `${prefix}fail:${address}`,
    ban: (address: string) => `${prefix}ban:${address}`,
    bans: `${prefix}bans`,
    /** Admissions per address and logins per user within the last minute (zset session id → when), for the rates. */
    opensByAddress: (address: string) => `${prefix}opens:addr:${address}`,
    bindsByUser: (user: string) => `${prefix}binds:user:${user}`,
    /** Storage usage (hash bytes, files) and the live upload reservations (hash upload id → bytes, zset id → expiry). */
    usage: (user: string) => `${prefix}usage:${user}`,
    reserved: (user: string) => `${prefix}reserved:${user}`,
    reservedUntil: (user: string) => `${prefix}reserved-until:${user}`,
    /** Byte budgets per direction: replicas taking (zset id → last take), the bucket (hash), the day's counter. */
    takers: (direction: string, user: string) => `${prefix}takers:${direction}:${user}`,
    bucket: (direction: string, user: string) => `${prefix}bucket:${direction}:${user}`,
    daily: (day: string, direction: string, user: string) => `${prefix}daily:${day}:${direction}:${user}`,
    /** Pub/sub channels (no keys): kicks for one replica, and for every replica. */
    kicksTo: (replicaId: string) => `${prefix}kicks:to:${replicaId}`,
    kicksAll: `${prefix}kicks:all`,
  };
}

const failoverWaits = new WeakMap<Redis, { ms: number; ready?: Promise<void> }>();

/**
 * Makes calls on `redis` made while it has no server wait up to `ms` for one (a Sentinel failover promoting a new
 * primary) before they are sent, and so fail, instead of failing at once. Only commands not yet sent wait: one in
 * flight when the primary died has failed already (sending it again could apply it twice).
 */
export function waitForFailover(redis: Redis, ms: number): void {
  if (ms > 0) failoverWaits.set(redis, { ms });
}

/**
 * Nothing (undefined) when `redis` is ready or has no failover wait, so that the caller issues its command in the same
 * turn: the edge's Redis spans find their parent through the context active at the call, which an await would lose.
 * Else a promise that resolves when it is ready or the wait is over.
 */
export function untilReady(redis: Redis): Promise<void> | undefined {
  const wait = failoverWaits.get(redis);
  // 'ready' with a stream that no longer writes: the server closed the connection (Sentinel's CLIENT KILL at a
  // promotion) and ioredis has not noticed yet; a command sent now would fail at once ("Stream isn't writeable").
  if (!wait || (redis.status === 'ready' && redis.stream?.writable) || redis.status === 'end') return undefined;
  // One 'ready' listener however many calls wait; each call has its own deadline.
  wait.ready ??= new Promise<void>((resolve) =>
    redis.once('ready', () => {
      wait.ready = undefined;
      resolve();
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([wait.ready, new Promise<void>((resolve) => (timer = setTimeout(resolve, wait.ms)))]).finally(() => clearTimeout(timer));
}

/** A script run by EVALSHA, falling back to EVAL (which caches it) when the server does not know it yet. */
export class LuaScript {
  readonly sha: string;
  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    const failover = untilReady(redis);
    if (failover) await failover;
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return redis.eval(this.source, keys.length, ...keys, ...args);
      throw err;
    }
  }
}

const COMMON = `
local function extend(key, ms)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or (ttl >= 0 and ttl < ms) then redis.call('PEXPIRE', key, ms) end
end

-- A login of user forgets that user's failures in the failure hash (and takes them off the address's count).
local function forgive(failKey, user)
  local own = tonumber(redis.call('HGET', failKey, 'u:' .. user))
  if not own then return 0 end
  redis.call('HDEL', failKey, 'u:' .. user)
  if redis.call('HINCRBY', failKey, 'count', -own) <= 0 then redis.call('DEL', failKey) end
  return own
end
`;

/**
 * Sessions. ARGV[1] prefix, ARGV[2] now, ARGV[3] expiry (now + session TTL), ARGV[4] backstop PX; KEYS[1] the
 * sessions zset. A session is live while its score in the sessions zset is above now; the address and user zsets
 * carry the same score so that they can be counted after pruning them alone.
 */
const SESSIONS = `${COMMON}
local prefix = ARGV[1]
local nowArg = ARGV[2]
local now = tonumber(nowArg)
local expiry = ARGV[3]
local px = tonumber(ARGV[4])
local function sessionKey(id) return prefix .. 'session:' .. id end
local function addrKey(a) return prefix .. 'sessions:addr:' .. a end
local function userKey(u) return prefix .. 'sessions:user:' .. u end
local function preLoginKey(a) return prefix .. 'sessions:prelogin:' .. a end
local function failKey(a) return prefix .. 'fail:' .. a end

-- Forget sessions whose heartbeat stopped (a crashed replica's): their record and index entries go too.
local function prune(sessions)
  local dead = redis.call('ZRANGEBYSCORE', sessions, '-inf', nowArg, 'LIMIT', 0, 1000)
  for _, id in ipairs(dead) do
    local f = redis.call('HMGET', sessionKey(id), 'clientAddress', 'user')
    if f[1] then
      redis.call('ZREM', addrKey(f[1]), id)
      redis.call('ZREM', preLoginKey(f[1]), id)
    end
    if f[2] then redis.call('ZREM', userKey(f[2]), id) end
    redis.call('DEL', sessionKey(id))
  end
  -- More than the batch above: the rest only leave the count; their leftovers are pruned per index or expire.
  redis.call('ZREMRANGEBYSCORE', sessions, '-inf', nowArg)
end

local function isLive(sessions, id)
  local score = redis.call('ZSCORE', sessions, id)
  return score and tonumber(score) > now
end

-- Heartbeat: move the expiry of the session and its index entries forward.
local function touch(sessions, id, addr, user)
  redis.call('ZADD', sessions, expiry, id)
  extend(sessions, px)
  if addr then
    redis.call('ZADD', addrKey(addr), expiry, id)
    extend(addrKey(addr), px)
    -- XX: only a session still waiting for its login is in the pre-login index.
    if not user then redis.call('ZADD', preLoginKey(addr), 'XX', expiry, id) end
  end
  if user then
    redis.call('ZADD', userKey(user), expiry, id)
    extend(userKey(user), px)
  end
  redis.call('PEXPIRE', sessionKey(id), px)
end

-- The per-minute rates: sessions admitted (or bound) within the window, by id, so that one session noted again (a
-- re-registration, a second login in the same session) counts once and never against itself.
local function recentOthers(key, id)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ${RATE_WINDOW_MS})
  local n = redis.call('ZCARD', key)
  if redis.call('ZSCORE', key, id) then n = n - 1 end
  return n
end

local function noteRecent(key, id)
  redis.call('ZADD', key, nowArg, id)
  extend(key, ${RATE_WINDOW_MS} + px)
end
`;

/**
 * KEYS: sessions, address zset, record, address pre-login zset, the address's ban key, the address's recent admissions.
 * ARGV[5] maxSessions, [6] maxPerAddress, [7] id, [8] user or '', [9] maxUnauthenticatedPerAddress,
 * [10] sessionsPerMinutePerAddress, [11..] record fields.
 * A banned address is refused before any limit is looked at (the ban check of a new connection, in the same call).
 */
export const openScript = new LuaScript(
  'open',
  `${SESSIONS}
local id = ARGV[7]
local bannedUntil = redis.call('GET', KEYS[5])
if bannedUntil and tonumber(bannedUntil) > now then return 'banned' end
prune(KEYS[1])
local maxSessions = tonumber(ARGV[5])
local maxPerAddress = tonumber(ARGV[6])
if maxSessions > 0 and redis.call('ZCARD', KEYS[1]) >= maxSessions then return 'max-sessions' end
if maxPerAddress > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', nowArg)
  if redis.call('ZCARD', KEYS[2]) >= maxPerAddress then return 'max-per-address' end
end
local maxUnauthenticated = tonumber(ARGV[9])
if maxUnauthenticated > 0 and ARGV[8] == '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', nowArg)
  if redis.call('ZCARD', KEYS[4]) >= maxUnauthenticated then return 'max-unauthenticated' end
end
-- Only admitted sessions enter the window: a client refused for its rate does not lengthen its own wait.
local perMinute = tonumber(ARGV[10])
if perMinute > 0 and recentOthers(KEYS[6], id) >= perMinute then return 'address-rate' end
-- Opening an id again replaces the old record and its index entries.
local old = redis.call('HMGET', KEYS[3], 'clientAddress', 'user')
if old[1] then
  redis.call('ZREM', addrKey(old[1]), id)
  redis.call('ZREM', preLoginKey(old[1]), id)
end
if old[2] then redis.call('ZREM', userKey(old[2]), id) end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], unpack(ARGV, 11))
local user = false
if ARGV[8] ~= '' then user = ARGV[8] end
redis.call('ZADD', KEYS[2], expiry, id)
extend(KEYS[2], px)
if not user then
  redis.call('ZADD', KEYS[4], expiry, id)
  extend(KEYS[4], px)
end
if perMinute > 0 then noteRecent(KEYS[6], id) end
touch(KEYS[1], id, false, user)
return 'ok'
`,
);

/**
 * KEYS: sessions, record, user zset, the user's recent logins. ARGV[5] id, [6] user, [7] maxPerUser,
 * [8] sessionsPerMinute. Returns 'ok' or the refusal. Binding is the login's success: it forgives that user's failures
 * from the session's address (no other user's), in the same call.
 */
export const bindUserScript = new LuaScript(
  'bindUser',
  `${SESSIONS}
local id = ARGV[5]
local user = ARGV[6]
prune(KEYS[1])
if not isLive(KEYS[1], id) then return 'gone' end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', nowArg)
local maxPerUser = tonumber(ARGV[7])
if maxPerUser > 0 then
  local n = redis.call('ZCARD', KEYS[3])
  if redis.call('ZSCORE', KEYS[3], id) then n = n - 1 end
  if n >= maxPerUser then return 'max-per-user' end
end
local perMinute = tonumber(ARGV[8])
if perMinute > 0 and recentOthers(KEYS[4], id) >= perMinute then return 'user-rate' end
if perMinute > 0 then noteRecent(KEYS[4], id) end
local f = redis.call('HMGET', KEYS[2], 'clientAddress', 'user')
if f[2] and f[2] ~= user then redis.call('ZREM', userKey(f[2]), id) end
if f[1] then redis.call('ZREM', preLoginKey(f[1]), id) end
redis.call('HSET', KEYS[2], 'user', user)
touch(KEYS[1], id, f[1], user)
if f[1] then forgive(failKey(f[1]), user) end
return 'ok'
`,
);

/** KEYS: sessions, record. ARGV[5] id. */
export const unbindUserScript = new LuaScript(
  'unbindUser',
  `${SESSIONS}
local id = ARGV[5]
prune(KEYS[1])
if not isLive(KEYS[1], id) then return 0 end
local f = redis.call('HMGET', KEYS[2], 'clientAddress', 'user')
if f[2] then
  redis.call('ZREM', userKey(f[2]), id)
  redis.call('HDEL', KEYS[2], 'user')
end
touch(KEYS[1], id, f[1], false)
return 1
`,
);

/** KEYS: sessions, record. ARGV[5] id, [6] n, then n field/value pairs to set, then fields to delete. */
export const updateScript = new LuaScript(
  'update',
  `${SESSIONS}
local id = ARGV[5]
prune(KEYS[1])
if not isLive(KEYS[1], id) then return 0 end
local n = tonumber(ARGV[6])
if n > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, 7, 6 + 2 * n)) end
if #ARGV > 6 + 2 * n then redis.call('HDEL', KEYS[2], unpack(ARGV, 7 + 2 * n)) end
local f = redis.call('HMGET', KEYS[2], 'clientAddress', 'user')
touch(KEYS[1], id, f[1], f[2])
return 1
`,
);

/** KEYS: sessions, record. ARGV[5] id. */
export const closeScript = new LuaScript(
  'close',
  `${SESSIONS}
local id = ARGV[5]
local f = redis.call('HMGET', KEYS[2], 'clientAddress', 'user')
redis.call('ZREM', KEYS[1], id)
if f[1] then
  redis.call('ZREM', addrKey(f[1]), id)
  redis.call('ZREM', preLoginKey(f[1]), id)
end
if f[2] then redis.call('ZREM', userKey(f[2]), id) end
redis.call('DEL', KEYS[2])
prune(KEYS[1])
return 1
`,
);

/** KEYS: sessions. Returns each live record as a flat field/value list. */
export const listScript = new LuaScript(
  'list',
  `${SESSIONS}
prune(KEYS[1])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HGETALL', sessionKey(id))
  if #h > 0 then out[#out + 1] = h end
end
return out
`,
);

/**
 * Passive ports. ARGV[1] prefix, ARGV[2] now. A port's hash maps a client address (or '*') to the lease JSON
 * {sessionId, replicaId, clientAddress, relayAddress, relayToken, expiresAt}; expired fields are deleted whenever a
 * script meets them. The scripts read only sessionId and expiresAt.
 */
const PORTS = `${COMMON}
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local function portKey(port) return prefix .. 'port:' .. port end

local function liveLease(key, field)
  local v = redis.call('HGET', key, field)
  if not v then return false end
  if tonumber(cjson.decode(v).expiresAt) > now then return v end
  redis.call('HDEL', key, field)
  return false
end

-- Number of live leases on a port (dropping expired ones).
local function liveCount(key)
  local h = redis.call('HGETALL', key)
  local n = 0
  for i = 1, #h, 2 do
    if tonumber(cjson.decode(h[i + 1]).expiresAt) > now then n = n + 1 else redis.call('HDEL', key, h[i]) end
  end
  return n
end
`;

/**
 * KEYS: cursor. ARGV[3] min, [4] max, [5] client address, [6] lease JSON, [7] backstop PX. Returns the port or nil.
 * A lease for (port, addr) is impossible while (port, addr) or (port, '*') is live; a '*' lease needs an idle port.
 */
export const leaseScript = new LuaScript(
  'lease',
  `${PORTS}
local min = tonumber(ARGV[3])
local size = tonumber(ARGV[4]) - min + 1
local addr = ARGV[5]
local px = tonumber(ARGV[7])
local cursor = (tonumber(redis.call('GET', KEYS[1])) or 0) % size
for i = 0, size - 1 do
  local port = min + ((cursor + i) % size)
  local key = portKey(port)
  local taken
  if addr == '*' then
    taken = liveCount(key) > 0
  else
    taken = liveLease(key, addr) or liveLease(key, '*')
  end
  if not taken then
    -- Round-robin from a moving cursor so that a just-released port is not handed out again at once.
    redis.call('SET', KEYS[1], tostring((cursor + i + 1) % size), 'PX', px)
    redis.call('HSET', key, addr, ARGV[6])
    extend(key, px)
    return port
  end
end
return false
`,
);

/**
 * KEYS: one port hash per lease. ARGV: client address and session id per lease, in the same order: a late release
 * must not free a new owner's lease. Returns how many were released.
 */
export const releaseScript = new LuaScript(
  'release',
  `
local n = 0
for i, key in ipairs(KEYS) do
  local v = redis.call('HGET', key, ARGV[2 * i - 1])
  if v and cjson.decode(v).sessionId == ARGV[2 * i] then
    redis.call('HDEL', key, ARGV[2 * i - 1])
    n = n + 1
  end
end
return n
`,
);

/** KEYS: port hash. ARGV[3] client address. Returns the lease JSON for that address or '*', or nil. */
export const findScript = new LuaScript(
  'find',
  `${PORTS}
return liveLease(KEYS[1], ARGV[3]) or liveLease(KEYS[1], '*')
`,
);

/** KEYS: cursor (only so that a cluster routes the script to the prefix's slot). ARGV[3] min, [4] max. */
export const inUseScript = new LuaScript(
  'inUse',
  `${PORTS}
local n = 0
for port = tonumber(ARGV[3]), tonumber(ARGV[4]) do n = n + liveCount(portKey(port)) end
return n
`,
);

/**
 * KEYS: failure hash {count, windowEnds, u:<user> → count}, ban key (value: banned-until ms), bans index (zset
 * address → banned-until). ARGV[1] now, [2] threshold, [3] now + ban length, [4] backstop PX, [5] address, [6] user.
 * Failures count within one ban-length window, in all and per target user; reaching the threshold bans the address
 * until now + ban length and indexes the ban (so that the bans in force can be counted without scanning keys; expired
 * entries are pruned here and when counting). The count is kept after a ban: only a success of the same user lowers
 * it. Returns {banned 0/1, failures}.
 */
export const recordFailureScript = new LuaScript(
  'recordFailure',
  `${COMMON}
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local windowEnds = redis.call('HGET', KEYS[1], 'windowEnds')
if not windowEnds or tonumber(windowEnds) <= now then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'windowEnds', ARGV[3])
end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HINCRBY', KEYS[1], 'u:' .. ARGV[6], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if threshold > 0 and count >= threshold then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
  extend(KEYS[3], tonumber(ARGV[4]))
  return {1, count}
end
return {0, count}
`,
);

/** KEYS: bans index. ARGV[1] now. Prunes bans that ended, returns how many are in force. */
export const activeBansScript = new LuaScript(
  'activeBans',
  `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
`,
);

/** KEYS: bans index. ARGV[1] now. Prunes bans that ended, returns the others as a flat address/until list. */
export const listBansScript = new LuaScript(
  'listBans',
  `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
`,
);

/**
 * KEYS: ban key, failure hash, bans index. ARGV[1] now, [2] address. Ends the ban and forgets the failures (the count
 * outlives a ban, so keeping it would ban the address again at its next failure). Returns 1 if a ban was in force.
 */
export const liftBanScript = new LuaScript(
  'liftBan',
  `
local bannedUntil = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if bannedUntil and tonumber(bannedUntil) > tonumber(ARGV[1]) then return 1 end
return 0
`,
);

/**
 * Storage usage. Reservations live in two keys per user: a hash upload id → bytes and a zset upload id → expiry (ms).
 * A reservation whose upload stopped renewing it (its replica died) is pruned by every script that reads them.
 */
const RESERVATIONS = `${COMMON}
local function pruneReservations(amounts, expiries, now)
  local dead = redis.call('ZRANGEBYSCORE', expiries, '-inf', now)
  for _, id in ipairs(dead) do redis.call('HDEL', amounts, id) end
  redis.call('ZREMRANGEBYSCORE', expiries, '-inf', now)
end
`;

/**
 * KEYS: usage, reserved, reserved-until. ARGV[1] now, [2] upload id, [3] want, [4] quota bytes (0 = none), [5] credit,
 * [6] expiry (now + TTL), [7] reservation backstop PX, [8] usage backstop PX. Returns the bytes granted.
 */
export const reserveScript = new LuaScript(
  'reserve',
  `${RESERVATIONS}
-- Unknown usage grants nothing: a quota is only as good as the scan behind it.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
pruneReservations(KEYS[2], KEYS[3], ARGV[1])
local id = ARGV[2]
local grant = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
if quota > 0 then
  local used = tonumber(redis.call('HGET', KEYS[1], 'bytes')) or 0
  local reserved = 0
  local h = redis.call('HGETALL', KEYS[2])
  for i = 2, #h, 2 do reserved = reserved + tonumber(h[i]) end -- this upload's own included
  grant = math.max(0, math.min(grant, quota + tonumber(ARGV[5]) - used - reserved))
end
local mine = tonumber(redis.call('HGET', KEYS[2], id)) or 0
if grant > 0 then redis.call('HINCRBY', KEYS[2], id, grant) end
if mine + grant > 0 then
  redis.call('ZADD', KEYS[3], ARGV[6], id)
  extend(KEYS[2], tonumber(ARGV[7]))
  extend(KEYS[3], tonumber(ARGV[7]))
  -- A user uploading keeps the record: losing it mid-upload would mean a scan.
  extend(KEYS[1], tonumber(ARGV[8]))
end
return grant
`,
);

/**
 * KEYS: usage, reserved, reserved-until. ARGV[1] bytes delta, [2] files delta, [3] upload id or '', [4] usage backstop PX.
 * The reservation goes even without a record (nothing else would drop it); the record is never created here: a
 * delta on an unknown total would be a wrong total.
 */
export const applyUsageScript = new LuaScript(
  'applyUsage',
  `
if ARGV[3] ~= '' then
  redis.call('HDEL', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
-- Floored at 0: a delete of a file the scan missed must not leave a negative total.
if redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[1]) < 0 then redis.call('HSET', KEYS[1], 'bytes', 0) end
if redis.call('HINCRBY', KEYS[1], 'files', ARGV[2]) < 0 then redis.call('HSET', KEYS[1], 'files', 0) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`,
);

/** KEYS: usage. ARGV[1] bytes, [2] files, [3] '1' = only if there is no record, [4] backstop PX. */
export const setUsageScript = new LuaScript(
  'setUsage',
  `
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'bytes', ARGV[1], 'files', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`,
);

/** KEYS: reserved, reserved-until. ARGV[1] upload id. */
export const releaseReservationScript = new LuaScript(
  'releaseReservation',
  `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`,
);

/**
 * KEYS: takers (zset replica id → last take), bucket (hash tokens, at, capacity), the day's counter. ARGV[1] now,
 * [2] replica id, [3] want, [4] bytes per second (0 = none), [5] burst ms, [6] daily bytes (0 = none), [7] backstop PX,
 * [8] day counter PX. Returns {granted, limitedBy or '', retryAfterMs, replicas}.
 * The bucket starts full and refills continuously; tokens are fractional, grants whole bytes.
 */
export const takeBytesScript = new LuaScript(
  'takeBytes',
  `${COMMON}
local now = tonumber(ARGV[1])
local grant = tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
local daily = tonumber(ARGV[6])
local px = tonumber(ARGV[7])

-- Who moves this user's bytes now: the share each replica falls back to if Redis goes away.
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ${REPLICA_WINDOW_MS})
extend(KEYS[1], px)
local replicas = redis.call('ZCARD', KEYS[1])

local limitedBy = ''
local retry = 0
if daily > 0 then
  local left = math.max(daily - (tonumber(redis.call('GET', KEYS[3])) or 0), 0)
  if left == 0 then return {0, 'daily', 0, replicas} end
  if left < grant then grant = left; limitedBy = 'daily' end
end

if rate > 0 then
  local capacity = math.max(rate * tonumber(ARGV[5]) / 1000, 1)
  local b = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  local tokens, at = capacity, now
  if b[1] then
    at = tonumber(b[2])
    -- Replicas' clocks differ: one behind the last refill adds nothing until it passes it, so skew never mints bytes.
    tokens = math.min(capacity, tonumber(b[1]) + math.max(now - at, 0) * rate / 1000)
    at = math.max(at, now)
  end
  local n = math.min(grant, math.floor(tokens))
  tokens = tokens - n
  if n < grant then
    retry = math.ceil((math.min(grant, capacity) - tokens) * 1000 / rate)
    grant = n
    limitedBy = 'bandwidth'
  end
  redis.call('HSET', KEYS[2], 'tokens', tokens, 'at', at, 'capacity', capacity)
  extend(KEYS[2], px)
end

-- Counted with or without a daily limit, so that today() reports what every user moved.
if grant > 0 then
  redis.call('INCRBY', KEYS[3], grant)
  extend(KEYS[3], tonumber(ARGV[8]))
end
return {grant, limitedBy, retry, replicas}
`,
);

/**
 * KEYS: bucket, the counter of the day the bytes were taken. ARGV[1] bytes. Neither key is created here: a counter
 * gone (a day long past) or a bucket gone (idle, so full) has nothing to give back to.
 */
export const refundBytesScript = new LuaScript(
  'refundBytes',
  `
local bytes = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[2]))
if used then redis.call('SET', KEYS[2], math.max(used - bytes, 0), 'KEEPTTL') end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'capacity')
if b[1] then redis.call('HSET', KEYS[1], 'tokens', math.min(tonumber(b[2]), tonumber(b[1]) + bytes)) end
return 1
`,
);
