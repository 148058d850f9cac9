import type {
  Admission,
  AdmissionLimits,
  Ban,
  BanList,
  KickChannel,
  BanPolicy,
  ByteBudgets,
  ByteGrant,
  ByteTake,
  ClusterState,
  LeaseRequest,
  PassiveLease,
  PassivePortPool,
  SessionKick,
  SessionRecord,
  SessionRegistry,
  TransferDirection,
  Usage,
  UsageLedger,
} from './types';
import { RATE_WINDOW_MS, REPLICA_WINDOW_MS, utcDay } from './windows';

/** Single-process cluster state for the embedded default. JavaScript runs one step at a time, so each method is atomic. */
export function createMemoryClusterState(options: { pasvRange: { min: number; max: number }; now?: () => number }): ClusterState {
  const now = options.now ?? Date.now;
  const bans = memoryBans(now);
  return {
    kind: 'memory',
    available: () => true,
    sessions: memorySessions(bans, now),
    ports: memoryPorts(options.pasvRange, now),
    bans,
    kicks: memoryKicks(),
    usage: memoryUsage(now),
    budgets: memoryBudgets(now),
    close: async () => {},
  };
}

/** Kicks within the process: delivered to the listeners of the replica (or of every one, with '*') on the next tick. */
function memoryKicks(): KickChannel {
  const listeners = new Set<{ replicaId: string; onKick: (kick: SessionKick) => void }>();
  return {
    async send(replicaId, kick) {
      const targets = [...listeners].filter((l) => replicaId === '*' || l.replicaId === replicaId);
      // Asynchronously, as through Redis: the sender never runs a session's end inside its own call.
      for (const target of targets) setImmediate(() => target.onKick({ ...kick }));
      return targets.length;
    },
    async listen(replicaId, onKick) {
      const listener = { replicaId, onKick };
      listeners.add(listener);
      return async () => {
        listeners.delete(listener);
      };
    },
  };
}

function memorySessions(bans: MemoryBans, now: () => number): SessionRegistry {
  const records = new Map<string, SessionRecord>();
  /** Sessions that have not logged in since they opened. */
  const preLogin = new Set<string>();
  /** Admissions per address and logins per user in the last minute, for the per-minute rates. */
  const opensByAddress = new RecentWindows(RATE_WINDOW_MS, now);
  const bindsByUser = new RecentWindows(RATE_WINDOW_MS, now);
  const count = (match: (r: SessionRecord) => boolean) => {
    let n = 0;
    for (const r of records.values()) if (match(r)) n++;
    return n;
  };
  return {
    async open(record: SessionRecord, limits: AdmissionLimits): Promise<Admission> {
      if (await bans.isBanned(record.clientAddress)) return { ok: false, reason: 'banned' };
      if (limits.maxSessions > 0 && records.size >= limits.maxSessions) return { ok: false, reason: 'max-sessions' };
      if (limits.maxPerAddress > 0 && count((r) => r.clientAddress === record.clientAddress) >= limits.maxPerAddress) {
        return { ok: false, reason: 'max-per-address' };
      }
      const maxUnauthenticated = limits.maxUnauthenticatedPerAddress ?? 0;
      if (maxUnauthenticated > 0 && count((r) => preLogin.has(r.id) && r.clientAddress === record.clientAddress) >= maxUnauthenticated) {
        return { ok: false, reason: 'max-unauthenticated' };
      }
      const perMinute = limits.sessionsPerMinutePerAddress ?? 0;
      if (perMinute > 0 && opensByAddress.others(record.clientAddress, record.id) >= perMinute) return { ok: false, reason: 'address-rate' };
      records.set(record.id, { ...record });
      if (!record.user) preLogin.add(record.id);
      if (perMinute > 0) opensByAddress.note(record.clientAddress, record.id);
      return { ok: true };
    },
    async bindUser(id, user, limits) {
      const record = records.get(id);
      if (!record) return { ok: false, reason: 'gone' };
      if (limits.maxPerUser > 0 && count((r) => r.user === user && r.id !== id) >= limits.maxPerUser) return { ok: false, reason: 'max-per-user' };
      const perMinute = limits.sessionsPerMinute ?? 0;
      if (perMinute > 0 && bindsByUser.others(user, id) >= perMinute) return { ok: false, reason: 'user-rate' };
      record.user = user;
      preLogin.delete(id);
      if (perMinute > 0) bindsByUser.note(user, id);
      bans.forgive(record.clientAddress, user);
      return { ok: true };
    },
    async unbindUser(id) {
      const record = records.get(id);
      if (record) delete record.user;
    },
    async update(id, patch) {
      const record = records.get(id);
      if (record) Object.assign(record, patch);
      return Boolean(record);
    },
    async close(id) {
      records.delete(id);
      preLogin.delete(id);
    },
    async list() {
      return [...records.values()].map((r) => ({ ...r }));
    },
  };
}

function memoryPorts(range: { min: number; max: number }, now: () => number): PassivePortPool {
  const size = range.max - range.min + 1;
  /** key `${port}|${address}` → lease */
  const leases = new Map<string, PassiveLease>();
  /** Relayed connections ended cleanly (one process relays to itself only in tests): id → when it may be forgotten. */
  const relayEnds = new Map<string, number>();
  const key = (port: number, address: string) => `${port}|${address}`;
  const live = (lease: PassiveLease | undefined) => (lease && lease.expiresAt > now() ? lease : undefined);
  const taken = (port: number, address: string) =>
    Boolean(live(leases.get(key(port, address))) || live(leases.get(key(port, '*'))) || (address === '*' && portHasAnyLease(port)));
  const portHasAnyLease = (port: number) => {
    for (const lease of leases.values()) if (lease.port === port && live(lease)) return true;
    return false;
  };
  let cursor = 0;
  return {
    async lease(request: LeaseRequest) {
      // Round-robin from a moving cursor so that a just-released port is not handed out again at once.
      for (let i = 0; i < size; i++) {
        const port = range.min + ((cursor + i) % size);
        if (taken(port, request.clientAddress)) continue;
        cursor = (cursor + i + 1) % size;
        const lease: PassiveLease = {
          port,
          clientAddress: request.clientAddress,
          sessionId: request.sessionId,
          replicaId: request.replicaId,
          relayAddress: request.relayAddress,
          relayToken: request.relayToken ?? '',
          expiresAt: now() + request.ttlMs,
        };
        leases.set(key(port, request.clientAddress), lease);
        return { ...lease };
      }
      return null;
    },
    async release(lease) {
      const k = key(lease.port, lease.clientAddress);
      if (leases.get(k)?.sessionId === lease.sessionId) leases.delete(k);
    },
    async find(port, clientAddress) {
      const lease = live(leases.get(key(port, clientAddress))) ?? live(leases.get(key(port, '*')));
      return lease ? { ...lease } : null;
    },
    async inUse() {
      let n = 0;
      for (const lease of leases.values()) if (live(lease)) n++;
      return n;
    },
    async markRelayEnded(relayId) {
      for (const [id, until] of relayEnds) if (until <= now()) relayEnds.delete(id);
      relayEnds.set(relayId, now() + 5 * 60_000);
    },
    async relayEnded(relayId) {
      return (relayEnds.get(relayId) ?? 0) > now();
    },
  };
}

type MemoryBans = BanList & { forgive(address: string, user: string): void };

function memoryBans(now: () => number): MemoryBans {
  /** address → failures within the current window, in all and per target user. */
  const failures = new Map<string, { count: number; windowEnds: number; byUser: Map<string, number> }>();
  const bannedUntil = new Map<string, number>();
  const current = (address: string) => {
    const entry = failures.get(address);
    if (entry && entry.windowEnds > now()) return entry;
    failures.delete(address);
    return undefined;
  };
  return {
    async isBanned(address) {
      const until = bannedUntil.get(address);
      if (until === undefined) return false;
      if (until > now()) return true;
      bannedUntil.delete(address);
      return false;
    },
    async recordFailure(address: string, user: string, policy: BanPolicy) {
      // Failures count within one ban-length window, so a slow trickle of typos never bans a partner.
      const entry = current(address) ?? { count: 0, windowEnds: now() + policy.banSeconds * 1000, byUser: new Map() };
      entry.count++;
      entry.byUser.set(user, (entry.byUser.get(user) ?? 0) + 1);
      failures.set(address, entry);
      // The count stays after a ban: connections opened before it are refused by the ban itself, not by a reset.
      const banned = policy.threshold > 0 && entry.count >= policy.threshold;
      if (banned) bannedUntil.set(address, now() + policy.banSeconds * 1000);
      return { banned, failures: entry.count };
    },
    forgive(address, user) {
      const entry = current(address);
      const own = entry?.byUser.get(user);
      if (!entry || own === undefined) return;
      entry.count -= own;
      entry.byUser.delete(user);
      if (entry.count <= 0) failures.delete(address);
    },
    async active() {
      let n = 0;
      for (const [address, until] of bannedUntil) {
        if (until > now()) n++;
        else bannedUntil.delete(address);
      }
      return n;
    },
    async list() {
      const bans: Ban[] = [];
      for (const [address, until] of bannedUntil) {
        if (until > now()) bans.push({ address, until });
        else bannedUntil.delete(address);
      }
      return bans.sort((a, b) => a.until - b.until || (a.address < b.address ? -1 : 1));
    },
    async lift(address) {
      const until = bannedUntil.get(address);
      bannedUntil.delete(address);
      failures.delete(address);
      return until !== undefined && until > now();
    },
  };
}

/**
 * Sessions seen per key (an address, a user) within a sliding window, by session id: a session noted again (a
 * re-registration, a second login in one session) counts once.
 */
class RecentWindows {
  private readonly seen = new Map<string, Map<string, number>>();
  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** Sessions of `key` in the window other than `id`. */
  others(key: string, id: string): number {
    const entries = this.live(key);
    if (!entries) return 0;
    return entries.size - (entries.has(id) ? 1 : 0);
  }

  note(key: string, id: string): void {
    const entries = this.live(key) ?? new Map<string, number>();
    entries.set(id, this.now());
    this.seen.set(key, entries);
  }

  private live(key: string): Map<string, number> | undefined {
    const entries = this.seen.get(key);
    if (!entries) return undefined;
    const since = this.now() - this.windowMs;
    for (const [id, at] of entries) if (at <= since) entries.delete(id);
    if (entries.size > 0) return entries;
    this.seen.delete(key);
    return undefined;
  }
}

function memoryUsage(now: () => number): UsageLedger {
  const records = new Map<string, Usage>();
  /** user → upload id → its reservation. */
  const reservations = new Map<string, Map<string, { bytes: number; until: number }>>();
  /** The user's reservations still renewed within their TTL (a dead replica's stop counting). */
  const live = (user: string) => {
    const own = reservations.get(user);
    if (!own) return undefined;
    for (const [id, r] of own) if (r.until <= now()) own.delete(id);
    if (own.size > 0) return own;
    reservations.delete(user);
    return undefined;
  };
  const drop = (user: string, uploadId: string) => {
    live(user)?.delete(uploadId);
    live(user);
  };
  return {
    async get(user) {
      const usage = records.get(user);
      return usage ? { ...usage } : null;
    },
    async set(user, usage, options) {
      if (options?.ifAbsent && records.has(user)) return;
      records.set(user, { bytes: usage.bytes, files: usage.files });
    },
    async reserve(user, uploadId, want, quota, ttlMs) {
      const usage = records.get(user);
      if (!usage) return 0; // unknown usage: the caller scans first
      const own = live(user) ?? new Map<string, { bytes: number; until: number }>();
      const mine = own.get(uploadId)?.bytes ?? 0;
      let granted = Math.max(0, Math.floor(want));
      if (quota.bytes > 0) {
        let reserved = 0;
        for (const r of own.values()) reserved += r.bytes; // this upload's own included
        granted = Math.max(0, Math.min(granted, quota.bytes + (quota.credit ?? 0) - usage.bytes - reserved));
      }
      if (mine + granted > 0) {
        own.set(uploadId, { bytes: mine + granted, until: now() + ttlMs });
        reservations.set(user, own);
      }
      return granted;
    },
    async apply(user, delta, uploadId) {
      if (uploadId !== undefined) drop(user, uploadId);
      const usage = records.get(user);
      if (!usage) return;
      usage.bytes = Math.max(0, usage.bytes + delta.bytes);
      usage.files = Math.max(0, usage.files + delta.files);
    },
    async release(user, uploadId) {
      drop(user, uploadId);
    },
  };
}

function memoryBudgets(now: () => number): ByteBudgets {
  /** `${direction}|${user}` → replica id → its last take. */
  const takers = new Map<string, Map<string, number>>();
  const buckets = new Map<string, { tokens: number; at: number; capacity: number }>();
  /** `${day}|${direction}|${user}` → bytes taken that day (less refunds). */
  const daily = new Map<string, number>();
  let counting = '';
  /** Keeps today's and yesterday's counters only (yesterday's still takes refunds of transfers that ran past midnight). */
  const forgetOldDays = (day: string) => {
    if (day === counting) return;
    counting = day;
    const yesterday = utcDay(now() - 86_400_000);
    for (const key of daily.keys()) if (key.slice(0, 10) < yesterday) daily.delete(key);
  };
  return {
    async take(request: ByteTake): Promise<ByteGrant> {
      const t = now();
      const day = utcDay(t);
      forgetOldDays(day);
      const who = `${request.direction}|${request.user}`;
      const seen = takers.get(who) ?? new Map<string, number>();
      takers.set(who, seen);
      seen.set(request.replicaId, t);
      for (const [replica, at] of seen) if (at <= t - REPLICA_WINDOW_MS) seen.delete(replica);
      const replicas = seen.size;

      const dayKey = `${day}|${who}`;
      let granted = Math.max(0, Math.floor(request.want));
      let limitedBy: ByteGrant['limitedBy'];
      let retryAfterMs: number | undefined;
      if (request.dailyBytes > 0) {
        const left = Math.max(request.dailyBytes - (daily.get(dayKey) ?? 0), 0);
        if (left === 0) return { granted: 0, limitedBy: 'daily', replicas };
        if (left < granted) [granted, limitedBy] = [left, 'daily'];
      }
      const rate = request.bytesPerSecond;
      if (rate > 0) {
        const capacity = Math.max((rate * request.burstMs) / 1000, 1);
        const bucket = buckets.get(who) ?? { tokens: capacity, at: t, capacity };
        // A clock behind the last refill adds nothing (see the take script).
        bucket.tokens = Math.min(capacity, bucket.tokens + (Math.max(t - bucket.at, 0) * rate) / 1000);
        bucket.at = Math.max(bucket.at, t);
        bucket.capacity = capacity;
        const n = Math.min(granted, Math.floor(bucket.tokens));
        bucket.tokens -= n;
        if (n < granted) {
          retryAfterMs = Math.ceil(((Math.min(granted, capacity) - bucket.tokens) * 1000) / rate);
          [granted, limitedBy] = [n, 'bandwidth'];
        }
        buckets.set(who, bucket);
      }
      if (granted > 0) daily.set(dayKey, (daily.get(dayKey) ?? 0) + granted);
      return { granted, ...(limitedBy && { limitedBy }), ...(retryAfterMs !== undefined && { retryAfterMs }), replicas };
    },
    async refund(user: string, direction: TransferDirection, bytes: number, day: string) {
      const who = `${direction}|${user}`;
      const used = daily.get(`${day}|${who}`);
      if (used !== undefined) daily.set(`${day}|${who}`, Math.max(used - bytes, 0));
      const bucket = buckets.get(who);
      if (bucket) bucket.tokens = Math.min(bucket.capacity, bucket.tokens + bytes);
    },
    async today(user) {
      const day = utcDay(now());
      return { upload: daily.get(`${day}|upload|${user}`) ?? 0, download: daily.get(`${day}|download|${user}`) ?? 0 };
    },
  };
}
