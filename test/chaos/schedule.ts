/**
 * The fault schedule: a pure function of the seed and the run's length, so `--seed N` replays the same faults at the
 * same offsets against the same targets. Periodic faults run one after another (each waits for the previous one's
 * recovery); the long SIGSTOP and the full disk run beside them, and no periodic fault picks the stopped replica.
 */

export type FaultKind = 'kill-replica' | 'term-replica' | 'kill-worker' | 'redis-failover' | 'stop-replica' | 'disk-full';

export const FAULT_KINDS: FaultKind[] = ['kill-replica', 'term-replica', 'kill-worker', 'redis-failover', 'stop-replica', 'disk-full'];

/** Faults that come back every few seconds, with their weights; the other two happen once per run. */
const PERIODIC: Partial<Record<FaultKind, number>> = { 'kill-replica': 3, 'term-replica': 2, 'kill-worker': 2, 'redis-failover': 2 };

export interface PlannedFault {
  /** Index in the schedule, from 1. */
  n: number;
  /** Offset from the start of the load, ms. */
  at: number;
  kind: FaultKind;
  /** Replica (0-based) or worker slot (0-based) it hits. */
  target?: number;
  /** How long the fault holds (SIGSTOP, full disk), ms. */
  holdMs?: number;
}

export interface ScheduleOptions {
  durationMs: number;
  seed: number;
  kinds: FaultKind[];
  replicas: number;
  workers: number;
  /** Gap between two periodic faults: uniform in [min, max] ms. */
  every: { min: number; max: number };
  /** SIGSTOP length: longer than the sessions' 60 s TTL to make a zombie. */
  stopMs: number;
  diskFullMs: number;
  /** No fault starts before this (the load warms up) or in the last `quietMs` (the last restart completes). */
  warmupMs: number;
  quietMs: number;
}

export interface Schedule {
  faults: PlannedFault[];
  /** Kinds asked for that do not fit this run, with why. */
  skipped: string[];
}

/** mulberry32: a small, fast, seeded PRNG with uniform output in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function planFaults(o: ScheduleOptions): Schedule {
  const random = seededRandom(o.seed);
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)];
  const faults: Omit<PlannedFault, 'n'>[] = [];
  const skipped: string[] = [];
  const end = o.durationMs - o.quietMs;

  // The once-per-run faults first, so the periodic ones can keep clear of the stopped replica.
  let stopped: { target: number; from: number; to: number } | undefined;
  if (o.kinds.includes('stop-replica')) {
    const at = Math.round(Math.max(o.warmupMs, o.durationMs * 0.2));
    if (at + o.stopMs > end) skipped.push(`stop-replica: a ${o.stopMs / 1000} s SIGSTOP does not fit a ${o.durationMs / 1000} s run (needs about ${Math.ceil((o.stopMs + o.quietMs) / 0.8 / 1000)} s)`);
    else {
      const target = Math.floor(random() * o.replicas);
      // Until it is back in HAProxy's rotation: a margin after SIGCONT.
      stopped = { target, from: at, to: at + o.stopMs + 10_000 };
      faults.push({ at, kind: 'stop-replica', target, holdMs: o.stopMs });
    }
  }
  if (o.kinds.includes('disk-full')) {
    const at = Math.round(o.durationMs * 0.8);
    if (at + o.diskFullMs > end || at < o.warmupMs) skipped.push(`disk-full: no room for it in a ${o.durationMs / 1000} s run`);
    else faults.push({ at, kind: 'disk-full', holdMs: o.diskFullMs });
  }

  const periodic = o.kinds.filter((k) => PERIODIC[k] !== undefined);
  // Every periodic kind once, in a seeded order, then weighted draws.
  const firsts = [...periodic];
  for (let i = firsts.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [firsts[i], firsts[j]] = [firsts[j], firsts[i]];
  }
  const weighted = () => {
    const total = periodic.reduce((t, k) => t + PERIODIC[k]!, 0);
    let r = random() * total;
    for (const k of periodic) if ((r -= PERIODIC[k]!) < 0) return k;
    return periodic[periodic.length - 1];
  };
  for (let at = o.warmupMs; periodic.length > 0 && at <= end; at += o.every.min + random() * (o.every.max - o.every.min)) {
    const kind = firsts.shift() ?? weighted();
    const fault: Omit<PlannedFault, 'n'> = { at: Math.round(at), kind };
    if (kind === 'kill-replica' || kind === 'term-replica') {
      const busy = stopped && at >= stopped.from - 15_000 && at <= stopped.to ? stopped.target : -1;
      fault.target = pick([...Array(o.replicas).keys()].filter((i) => i !== busy));
    } else if (kind === 'kill-worker') fault.target = Math.floor(random() * o.workers);
    faults.push(fault);
  }
  for (const k of o.kinds.filter((k) => PERIODIC[k] !== undefined && !faults.some((f) => f.kind === k))) skipped.push(`${k}: the run is too short for it`);
  faults.sort((a, b) => a.at - b.at);
  return { faults: faults.map((f, i) => ({ n: i + 1, ...f })), skipped };
}

export function describeFault(f: PlannedFault, names: { replica: (i: number) => string; worker: (i: number) => string }): string {
  const hold = f.holdMs ? ` for ${(f.holdMs / 1000).toFixed(0)} s` : '';
  switch (f.kind) {
    case 'kill-replica':
      return `SIGKILL ${names.replica(f.target!)}, restart it`;
    case 'term-replica':
      return `SIGTERM ${names.replica(f.target!)} (drain), restart it`;
    case 'kill-worker':
      return `SIGKILL ${names.worker(f.target!)} mid-job, start a new one`;
    case 'redis-failover':
      return 'SIGKILL the Redis primary (Sentinel failover), restart it as a replica';
    case 'stop-replica':
      return `SIGSTOP ${names.replica(f.target!)}${hold} (past the 60 s session TTL), then SIGCONT`;
    case 'disk-full':
      return `fill the data disk${hold}, then free it`;
  }
}

/** `kill-replica,redis-failover`, or `none` (a baseline: the same load and checks without faults). */
export function parseKinds(text: string): FaultKind[] {
  if (text.trim() === 'none') return [];
  const kinds = text.split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of kinds) if (!FAULT_KINDS.includes(k as FaultKind)) throw new Error(`unknown fault "${k}" (${FAULT_KINDS.join(', ')})`);
  return kinds as FaultKind[];
}
