import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { redisKeys } from '../../libs/cluster-state/src/redisScripts';

/**
 * Memory and file descriptors of every replica, sampled from /proc every few seconds (a stopped process too), and
 * the rule that calls a growth unbounded. A restarted replica is a new process: each process is judged on its own.
 * Beside them, the live sessions of each partner user in the cluster state (`startSessionSampler`).
 */

export interface Sample {
  /** ms from the start of the load. */
  t: number;
  rssBytes: number;
  fds: number;
}

export interface ProcessSeries {
  replica: string;
  pid: number;
  /** When the process was first seen, ms from the start of the load. */
  firstSeen: number;
  samples: Sample[];
}

/** RSS and open fds of `pid`, or undefined when it is gone. */
export function readProcess(pid: number): { rssBytes: number; fds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (!rss) return undefined; // a zombie (exited, not reaped) has no VmRSS
    return { rssBytes: Number(rss[1]) * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

export interface Monitor {
  series: ProcessSeries[];
  stop(): void;
}

export function startMonitor(targets: () => { replica: string; pid: number }[], now: () => number, everyMs: number): Monitor {
  const byPid = new Map<number, ProcessSeries>();
  const series: ProcessSeries[] = [];
  const sample = () => {
    const t = now();
    for (const { replica, pid } of targets()) {
      if (!pid) continue;
      const read = readProcess(pid);
      if (!read) continue;
      let s = byPid.get(pid);
      if (!s) {
        s = { replica, pid, firstSeen: t, samples: [] };
        byPid.set(pid, s);
        series.push(s);
      }
      s.samples.push({ t, ...read });
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return { series, stop: () => clearInterval(timer) };
}

/**
 * Live sessions per user in the cluster state, sampled from Redis every few seconds: the members of each user's
 * session index (`redisKeys(prefix).sessionsByUser`) whose expiry is still ahead, which is what a login's per-user
 * limit counts (the bindUser script: prune what expired, count the rest). A SIGKILLed replica's sessions count until
 * they expire, as they do for the limit. The count runs in one read-only script against Redis' clock, so a sample
 * held up by a failover counts what was live when it ran; a sample that fails (no primary) or is still running at the
 * next tick is missed, and counted as such.
 */
export interface SessionSample {
  /** ms from the start of the load. */
  t: number;
  /** User → live sessions. */
  live: Record<string, number>;
}

export interface SessionSampler {
  samples: SessionSample[];
  /** Ticks without a sample. */
  missed: number;
  stop(): void;
}

const LIVE_BY_USER = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('ZCOUNT', key, '(' .. now, '+inf') end
return out`;

export function startSessionSampler(redis: Redis, prefix: string, users: string[], now: () => number, everyMs: number): SessionSampler {
  const keys = users.map((u) => redisKeys(prefix).sessionsByUser(u));
  const sampler: SessionSampler = { samples: [], missed: 0, stop: () => undefined };
  let busy = false;
  let stopped = false;
  const sample = () => {
    if (busy) {
      sampler.missed++;
      return;
    }
    busy = true;
    const t = now();
    (redis.eval(LIVE_BY_USER, keys.length, ...keys) as Promise<number[]>)
      .then((counts) => {
        if (!stopped) sampler.samples.push({ t, live: Object.fromEntries(users.map((u, i) => [u, Number(counts[i])])) });
      })
      .catch(() => {
        if (!stopped) sampler.missed++;
      })
      .finally(() => (busy = false));
  };
  sample();
  const timer = setInterval(sample, everyMs);
  sampler.stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  return sampler;
}

/**
 * The growth rule, per process: ignore its first `warmupMs` (JIT, TLS and SSH set-up, first buffers), then take the
 * median of its first three samples as the baseline and the median of its last three as the end. Unbounded when the
 * end is more than twice the baseline (and by more than `minGrowth`: tiny numbers double easily) AND the last third
 * of its samples is still above the middle third (rising at the end, not a plateau reached after a burst). A process
 * needs `minLifeMs` after the warm-up to be judged at all. Why: a Node process's RSS saws up and down with garbage
 * collection by tens of percent, so a single high sample means nothing; a leak shows as a level that keeps climbing.
 */
export interface GrowthRule {
  warmupMs: number;
  minLifeMs: number;
  factor: number;
  minGrowth: { rssBytes: number; fds: number };
}

export const DEFAULT_RULE: GrowthRule = { warmupMs: 20_000, minLifeMs: 60_000, factor: 2, minGrowth: { rssBytes: 64 * 1024 * 1024, fds: 32 } };

export interface Judgement {
  series: ProcessSeries;
  judged: boolean;
  /** What grew without bound ([] = nothing). */
  unbounded: ('rss' | 'fds')[];
  baseline?: Sample;
  end?: Sample;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

export function judgeGrowth(s: ProcessSeries, rule: GrowthRule = DEFAULT_RULE): Judgement {
  const after = s.samples.filter((x) => x.t - s.firstSeen >= rule.warmupMs);
  if (after.length < 9 || after[after.length - 1].t - after[0].t < rule.minLifeMs) return { series: s, judged: false, unbounded: [] };
  const third = Math.floor(after.length / 3);
  const unbounded: ('rss' | 'fds')[] = [];
  for (const key of ['rssBytes', 'fds'] as const) {
    const values = after.map((x) => x[key]);
    const baseline = median(values.slice(0, 3));
    const end = median(values.slice(-3));
    const middle = median(values.slice(third, 2 * third));
    const last = median(values.slice(2 * third));
    if (end > rule.factor * baseline && end - baseline > rule.minGrowth[key] && last > middle) unbounded.push(key === 'rssBytes' ? 'rss' : 'fds');
  }
  return { series: s, judged: true, unbounded, baseline: after[0], end: after[after.length - 1] };
}
