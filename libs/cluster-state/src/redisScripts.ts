import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

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
    portCursor: `${prefix}ports:cursor`,
    failures: (address: string) => `${prefix}fail:${address}`,
    ban: (address: string) => `${prefix}ban:${address}`,
    bans: `${prefix}bans`,
    /** Pub/sub channels (no keys): kicks for one replica, and for every replica. */
    kicksTo: (replicaId: string) => `${prefix}kicks:to:${replicaId}`,
    kicksAll: `${prefix}kicks:all`,
  };
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
`;

/**
 * KEYS: sessions, address zset, record, address pre-login zset, the address's ban key. ARGV[5] maxSessions,
 * [6] maxPerAddress, [7] id, [8] user or '', [9] maxUnauthenticatedPerAddress, [10..] record fields.
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
-- Opening an id again replaces the old record and its index entries.
local old = redis.call('HMGET', KEYS[3], 'clientAddress', 'user')
if old[1] then
  redis.call('ZREM', addrKey(old[1]), id)
  redis.call('ZREM', preLoginKey(old[1]), id)
end
if old[2] then redis.call('ZREM', userKey(old[2]), id) end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], unpack(ARGV, 10))
local user = false
if ARGV[8] ~= '' then user = ARGV[8] end
redis.call('ZADD', KEYS[2], expiry, id)
extend(KEYS[2], px)
if not user then
  redis.call('ZADD', KEYS[4], expiry, id)
  extend(KEYS[4], px)
end
touch(KEYS[1], id, false, user)
return 'ok'
`,
);

/**
 * KEYS: sessions, record, user zset. ARGV[5] id, [6] user, [7] maxPerUser. Returns 1 when bound. Binding is the login's
 * success: it forgives that user's failures from the session's address (no other user's), in the same call.
 */
export const bindUserScript = new LuaScript(
  'bindUser',
  `${SESSIONS}
local id = ARGV[5]
local user = ARGV[6]
prune(KEYS[1])
if not isLive(KEYS[1], id) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', nowArg)
local maxPerUser = tonumber(ARGV[7])
if maxPerUser > 0 then
  local n = redis.call('ZCARD', KEYS[3])
  if redis.call('ZSCORE', KEYS[3], id) then n = n - 1 end
  if n >= maxPerUser then return 0 end
end
local f = redis.call('HMGET', KEYS[2], 'clientAddress', 'user')
if f[2] and f[2] ~= user then redis.call('ZREM', userKey(f[2]), id) end
if f[1] then redis.call('ZREM', preLoginKey(f[1]), id) end
redis.call('HSET', KEYS[2], 'user', user)
touch(KEYS[1], id, f[1], user)
if f[1] then forgive(failKey(f[1]), user) end
return 1
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
