/**
 * What the cluster benchmarks (cluster.ts, scale.ts) share about a running test cluster (test/support/cluster.ts):
 * the replicas' settings, the CPU of each of its processes (/proc/PID/stat, all threads) and of this process (the
 * client), counters from each replica's admin `/metrics`, the versions of HAProxy and Redis, a big download file.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Cluster } from '../support/cluster';
import { parsePrometheus, type Scrape } from '../support/prometheus';
import { machineTicks } from './cgroup';
import { processTicks } from './cpu';
import { MiB } from './env';
import { REPO_ROOT } from './servers';

/**
 * Settings of every replica in a benchmark, on top of the harness's (which include FTP_FSYNC_UPLOADS=false); as
 * bench.ts runs ours: no session limits (the load comes from a few loopback addresses, many logins at once).
 */
export const REPLICA_ENV: Record<string, string> = {
  FTP_FSYNC_UPLOADS: 'false',
  FTP_LOG_LEVEL: 'warn',
  FTP_MAX_SESSIONS: '100000',
  FTP_MAX_SESSIONS_PER_IP: '0',
  FTP_MAX_UNAUTHENTICATED_PER_IP: '0',
  FTP_MAX_SESSIONS_PER_USER: '0',
  OTEL_SDK_DISABLED: 'true',
  NODE_ENV: 'production',
  // BENCH_REPLICA_ENV="FTP_ZERO_COPY=off FTP_…=…": settings to compare (the harness passes no FTP_* of this process on).
  ...Object.fromEntries((process.env.BENCH_REPLICA_ENV ?? '').split(/\s+/).filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2))),
};

/** HAProxy's and Redis's versions and the commit measured, for a report's header. */
export function clusterVersions(): string {
  const first = (cmd: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 5000 }).stdout?.split('\n')[0]?.trim() ?? '';
  const haproxy = first('PATH="$PATH:/usr/sbin:/usr/local/sbin" haproxy -v').replace(/ - https.*$/, '');
  const redis = first('redis-server --version').replace(/ sha=.*$/, '');
  const commit = spawnSync('git', ['log', '-1', '--format=%h %s'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 }).stdout?.trim();
  return `${haproxy || 'HAProxy ?'}; ${redis || 'redis ?'}; code ${commit || 'unknown'}`;
}

/** A file of fresh random bytes, written in 1 MiB chunks (never the whole file in memory). */
export function writeRandomFile(path: string, bytes: number) {
  const chunk = Buffer.allocUnsafe(MiB);
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < bytes; written += chunk.length) {
      randomFillSync(chunk);
      writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written));
    }
  } finally {
    closeSync(fd);
  }
}

const TICK_MS = 10; // USER_HZ = 100 on Linux

/** CPU over one window, in percent of one core. */
export interface CpuShare {
  wallMs: number;
  machinePct: number;
  /** This process: the load generator. */
  clientPct: number;
  /** Per cluster process: edge-1…, haproxy, redis (NaN for one that exited during the window). */
  processes: Record<string, number>;
}

/** The cluster's processes by name: the replicas, HAProxy and redis-server. */
export function clusterPids(cluster: Cluster): Record<string, number> {
  const pids: Record<string, number> = { haproxy: cluster.haproxy.pid };
  for (const r of cluster.replicas) pids[r.id] = r.pid;
  if (cluster.redis.pid) pids.redis = cluster.redis.pid;
  return pids;
}

/** Starts a window over `pids` (and this process, and the machine); the returned function ends it. */
export function startClusterCpuMeter(pids: Record<string, number>): () => CpuShare {
  const ticks = (pid: number) => processTicks(pid) ?? NaN;
  const wall0 = process.hrtime.bigint();
  const client0 = process.cpuUsage();
  const machine0 = machineTicks().busy;
  const procs0 = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, ticks(pid)]));
  return () => {
    const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
    const pct = (ms: number) => Math.round((1000 * ms) / wallMs) / 10;
    const client = process.cpuUsage(client0);
    const processes: Record<string, number> = {};
    for (const [name, pid] of Object.entries(pids)) processes[name] = pct((ticks(pid) - procs0[name]) * TICK_MS);
    return { wallMs, machinePct: pct((machineTicks().busy - machine0) * TICK_MS), clientPct: pct((client.user + client.system) / 1000), processes };
  };
}

/** CPU of the benchmark's own processes together (client + cluster), % of one core. */
export const ownPct = (c: CpuShare) => c.clientPct + Object.values(c.processes).reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);

/** One scrape of every replica's /metrics, by replica id. */
export async function scrapeReplicas(cluster: Cluster): Promise<Record<string, Scrape>> {
  const entries = await Promise.all(cluster.replicas.map(async (r) => [r.id, parsePrometheus(await r.metrics())] as const));
  return Object.fromEntries(entries);
}

/** How much a series grew between two scrapes of each replica, by replica id. */
export function seriesDelta(before: Record<string, Scrape>, after: Record<string, Scrape>, name: string, labels: Record<string, string> = {}): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((id) => [id, after[id].value(name, labels) - (before[id]?.value(name, labels) ?? 0)]));
}

/** ftp_relayed_data_connections_total by replica: sent = reached this replica for a peer's lease; received = handed over by a peer. */
export type RelayCounts = Record<string, { sent: number; received: number }>;

export const RELAY_COUNTER = 'ftp_relayed_data_connections_total';

export function relayCountsOf(scrapes: Record<string, Scrape>): RelayCounts {
  return Object.fromEntries(Object.entries(scrapes).map(([id, s]) => [id, { sent: s.value(RELAY_COUNTER, { side: 'sent' }), received: s.value(RELAY_COUNTER, { side: 'received' }) }]));
}

export async function relayCounts(cluster: Cluster): Promise<RelayCounts> {
  return relayCountsOf(await scrapeReplicas(cluster));
}

export function relayDelta(before: RelayCounts, after: RelayCounts): RelayCounts {
  return Object.fromEntries(Object.keys(after).map((id) => [id, { sent: after[id].sent - before[id].sent, received: after[id].received - before[id].received }]));
}

/** The end of a cluster bench run: its failures and how long it took; the exit code (1 when anything failed). */
export function finishRun(failures: string[], startedAt: number): number {
  if (failures.length > 0) {
    console.log('');
    console.log(`FAILURES (${failures.length}):`);
    for (const f of failures) console.log(`  - ${f}`);
  }
  const elapsed = Math.round((Date.now() - startedAt) / 1000);
  console.log('');
  console.log(`elapsed: ${Math.floor(elapsed / 60)} min ${elapsed % 60} s`);
  return failures.length === 0 ? 0 : 1;
}

/** Runs a bench's main and exits with its code; a crash prints its stack and exits 1. */
export function runBench(name: string, main: () => Promise<number>) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`${name} bench failed: ${(err as Error).stack ?? err}`);
      process.exit(1);
    },
  );
}
