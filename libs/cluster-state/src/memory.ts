import type {
  Admission,
  AdmissionLimits,
  Ban,
  BanList,
  KickChannel,
  BanPolicy,
  ClusterState,
  LeaseRequest,
  PassiveLease,
  PassivePortPool,
  SessionKick,
  SessionRecord,
  SessionRegistry,
} from './types';

/** Single-process cluster state for the embedded default. JavaScript runs one step at a time, so each method is atomic. */
export function createMemoryClusterState(options: { pasvRange: { min: number; max: number }; now?: () => number }): ClusterState {
  const now = options.now ?? Date.now;
  const bans = memoryBans(now);
  return {
    kind: 'memory',
    available: () => true,
    sessions: memorySessions(bans),
    ports: memoryPorts(options.pasvRange, now),
    bans,
    kicks: memoryKicks(),
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

function memorySessions(bans: MemoryBans): SessionRegistry {
  const records = new Map<string, SessionRecord>();
  /** Sessions that have not logged in since they opened. */
  const preLogin = new Set<string>();
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
      records.set(record.id, { ...record });
      if (!record.user) preLogin.add(record.id);
      return { ok: true };
    },
    async bindUser(id, user, maxPerUser) {
      const record = records.get(id);
      if (!record) return false;
      if (maxPerUser > 0 && count((r) => r.user === user && r.id !== id) >= maxPerUser) return false;
      record.user = user;
      preLogin.delete(id);
      bans.forgive(record.clientAddress, user);
      return true;
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
