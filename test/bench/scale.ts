/**
 * `npm run bench:scale`: does the cluster scale out? The test harness's cluster (test/support/cluster.ts: its own
 * redis-server, 1-4 edge replicas on 127.0.0.11-14, HAProxy on 127.0.0.1) with every replica in its own cgroup with a
 * CPU quota (default 0.25 CPU), so that on a 2-core machine the replicas, not the machine, are what runs out: N
 * replicas then have N quotas, and the question is whether they serve N times what one does.
 *
 * Per replica count (BENCH_REPLICAS) and HAProxy balance mode (BENCH_MODES: roundrobin, source), per round:
 *   1. sessions: a closed loop of BENCH_CLIENTS clients, each from its own source address (127.0.0.50 on), running
 *      full sessions (connect, login, TYPE I, EPSV + LIST, EPSV + RETR 4 KiB, QUIT);
 *   2. download, 3. upload: BENCH_TRANSFERS parallel transfers of BENCH_TRANSFER_MIB MiB, one per client address.
 * Around every phase: each replica's CPU against its quota and its throttling (cgroup), HAProxy's, Redis's, the
 * client's and the machine's CPU (/proc), the relayed data connections and the spread over the replicas (/metrics).
 * See test/bench/README.md ("Scale-out benchmark") for what is timed and how to read it.
 */
import { mkdirSync, statSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startCluster, type Cluster } from '../support/cluster';
import { CpuGroup, describeAccounting, describeQuota, removeStaleGroups, type Throttling } from './cgroup';
import { clusterVersions, finishRun, REPLICA_ENV, runBench, scrapeReplicas, seriesDelta, startClusterCpuMeter, writeRandomFile } from './clusterBench';
import { backgroundLoad } from './cpu';
import { envInt, envList, envNumber, MiB } from './env';
import { FtpClient } from './ftpClient';
import { fmt, median, table } from './report';
import { codeVersion, edgeEntry, REPO_ROOT } from './servers';
import { closedLoop, deadline, percentile, syncDisks } from './workloads';

const MODES = ['roundrobin', 'source'] as const;
type Mode = (typeof MODES)[number];
const PHASES = ['sessions', 'download', 'upload'] as const;
type Phase = (typeof PHASES)[number];

const passive = (process.env.BENCH_PASSIVE || 'EPSV').toUpperCase();
if (passive !== 'EPSV' && passive !== 'PASV') throw new Error(`BENCH_PASSIVE: EPSV or PASV, got "${process.env.BENCH_PASSIVE}"`);

const settings = {
  replicas: envList('BENCH_REPLICAS', '1,2,3,4', ['1', '2', '3', '4']).map(Number),
  modes: envList('BENCH_MODES', MODES.join(','), [...MODES]) as Mode[],
  phases: new Set(envList('BENCH_SCALE_ONLY', PHASES.join(','), [...PHASES]) as Phase[]),
  repeat: envInt('BENCH_REPEAT', 3),
  sessions: envInt('BENCH_SESSIONS', 1000),
  clients: envInt('BENCH_CLIENTS', 100),
  rampMs: envInt('BENCH_RAMP_MS', 1000, 0),
  passive: passive as 'EPSV' | 'PASV',
  transfers: envInt('BENCH_TRANSFERS', 8),
  transferMiB: envInt('BENCH_TRANSFER_MIB', 64),
  replicaCpu: envNumber('BENCH_REPLICA_CPU', 0.25),
  periodUs: envInt('BENCH_CPU_PERIOD_US', 100_000, 1000),
  pasvPorts: envInt('BENCH_PASV_PORTS', 200, 20),
  opTimeoutMs: envInt('BENCH_OP_TIMEOUT_S', 60) * 1000,
  phaseTimeoutMs: envInt('BENCH_PHASE_TIMEOUT_S', 300) * 1000,
  out: process.env.BENCH_OUT || join(REPO_ROOT, '.bench', 'scale-results.json'),
};
const FIRST_SOURCE = 50;
if (settings.clients > 200 || settings.transfers > 200) throw new Error('BENCH_CLIENTS and BENCH_TRANSFERS: at most 200 (source addresses 127.0.0.50-249)');
/** Client `i`'s source address: never 127.0.0.1 (the replicas take it for HAProxy and expect a PROXY header) nor a replica's. */
const source = (i: number) => `127.0.0.${FIRST_SOURCE + i}`;
/**
 * Warm-up sessions per replica, run with the quotas lifted (JIT tier-up, password cache, pools): each replica of N
 * gets as many as a lone one, so the measured sessions meet equally warm code whatever N. Under a 0.25 CPU quota the
 * edge's CPU per session keeps falling for ~2000 sessions (~30 s: V8 compiles on threads inside the same quota),
 * 8 ms at first, 2.2 ms after; unlimited, 1000 sessions take a few seconds and leave it where it stays.
 */
const warmupPerReplica = envInt('BENCH_WARMUP', 1000, 0);
const transferBytes = settings.transferMiB * MiB;
const WARM_BYTES = Math.min(4, settings.transferMiB) * MiB;
const MB = 1e6;
const SESSION_FILE = 'sess.bin';
const SESSION_FILE_BYTES = 4096;
const BIG_FILE = 'big.bin';
const WARM_FILE = 'warm.bin';
/** Uploads repeat one random 1 MiB pattern: no disk read and no whole-file buffer on the client. */
const PATTERN = randomBytes(MiB);

const started = Date.now();
function log(message: string) {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}
const seconds = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e9;

// ---------------------------------------------------------------------------------------------------------------
// Groups: made before each cluster starts, removed after it stops, and on any exit (error, Ctrl-C) before the
// harness's exit hook SIGKILLs the processes it started (its children, by PID).

const liveGroups = new Set<CpuGroup>();
function removeGroups() {
  for (const g of liveGroups) g.remove();
  liveGroups.clear();
}
process.on('exit', removeGroups);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: removing the cgroups; every process of the cluster gets SIGKILL by PID`);
    removeGroups();
    process.exit(130); // runs the harness's exit hook: its children (replicas, HAProxy, Redis) by PID, its temp dirs
  });
}

function replicaGroups(count: number): CpuGroup[] {
  return Array.from({ length: count }, (_, i) => {
    const group = new CpuGroup(`scale-edge-${i + 1}`, { quota: { cpus: settings.replicaCpu, periodUs: settings.periodUs } });
    liveGroups.add(group);
    return group;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// CPU over one phase: each replica's cgroup (CPU and throttling), HAProxy and Redis from /proc, this process (the
// client), the machine.

interface PhaseCpu {
  wallMs: number;
  machinePct: number;
  clientPct: number;
  haproxyPct: number;
  redisPct: number;
  /** Per replica, % of one core. */
  edgesPct: number[];
  /** Per replica, the quota counters' change over the phase. */
  throttling: Throttling[];
}

function startPhaseMeter(cluster: Cluster, groups: CpuGroup[]): () => PhaseCpu {
  const stopProcs = startClusterCpuMeter({ haproxy: cluster.haproxy.pid, redis: cluster.redis.pid });
  const cpu0 = groups.map((g) => g.read().totalMs);
  const thr0 = groups.map((g) => g.throttling());
  return () => {
    const share = stopProcs();
    const edgesPct = groups.map((g, i) => (100 * (g.read().totalMs - cpu0[i])) / share.wallMs);
    const throttling = groups.map((g, i) => {
      const t = g.throttling();
      return { periods: t.periods - thr0[i].periods, throttled: t.throttled - thr0[i].throttled, throttledMs: t.throttledMs - thr0[i].throttledMs };
    });
    return {
      wallMs: share.wallMs,
      machinePct: share.machinePct,
      clientPct: share.clientPct,
      haproxyPct: share.processes.haproxy,
      redisPct: share.processes.redis,
      edgesPct,
      throttling,
    };
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The phases.

interface PhaseSample {
  round: number;
  replicas: number;
  mode: Mode;
  phase: Phase;
  /** sessions/s, or MB/s (10^6 bytes) of all transfers together. */
  rate: number;
  /** Measured sessions, or MB moved. */
  units: number;
  latencyMs?: { p50: number; p95: number; p99: number };
  errors: number;
  firstErrors: string[];
  cpu: PhaseCpu;
  /** Data connections over the phase (sessions: the ramp's included), and how many of them a replica relayed to the lease owner. */
  dataConnections: number;
  relayed: number;
  /** Per replica: control connections accepted (sessions) or data connections served as lease owner (transfers). */
  perReplica: number[];
  /** HAProxy servers of this cluster not UP right after the phase. */
  notUp: string[];
}

interface Run {
  round: number;
  mode: Mode;
  cluster: Cluster;
  groups: CpuGroup[];
}

/** What the replicas' counters say about one phase. */
async function counters(cluster: Cluster, before: Awaited<ReturnType<typeof scrapeReplicas>>, phase: Phase) {
  const after = await scrapeReplicas(cluster);
  const ids = cluster.replicas.map((r) => r.id);
  const sum = (d: Record<string, number>) => ids.reduce((a, id) => a + (d[id] ?? 0), 0);
  const owned = ids.map((id) => ['passive', 'relayed', 'active'].reduce((a, mode) => a + (seriesDelta(before, after, 'ftp_data_connections_total', { mode })[id] ?? 0), 0));
  const accepted = seriesDelta(before, after, 'ftp_connections_total', { protocol: 'ftp', result: 'accepted' });
  return {
    dataConnections: owned.reduce((a, b) => a + b, 0),
    relayed: sum(seriesDelta(before, after, 'ftp_relayed_data_connections_total', { side: 'sent' })),
    perReplica: phase === 'sessions' ? ids.map((id) => accepted[id] ?? 0) : owned,
  };
}

async function notUp(cluster: Cluster): Promise<string[]> {
  const ids = new Set(cluster.replicas.map((r) => r.id));
  const rows = await cluster.haproxy.servers();
  return rows.filter((r) => ids.has(r.server) && r.status !== 'UP').map((r) => `${r.backend}/${r.server} ${r.status}`);
}

function openClient(cluster: Cluster, index: number): Promise<FtpClient> {
  return FtpClient.open(cluster.host, cluster.port, settings.opTimeoutMs, { localAddress: source(index), passive: settings.passive });
}

/** One full session from client `index`'s address: connect, 220, USER/PASS, TYPE I, LIST, RETR 4 KiB, QUIT. */
async function oneSession(cluster: Cluster, index: number): Promise<void> {
  const client = await openClient(cluster, index);
  try {
    await client.login(cluster.user, cluster.password);
    await client.command('TYPE I', 200);
    const listing = await client.list();
    if (!listing.data?.includes(SESSION_FILE)) throw new Error(`LIST does not show ${SESSION_FILE}`);
    const got = await client.retr(SESSION_FILE);
    if (got.bytes !== SESSION_FILE_BYTES) throw new Error(`RETR ${SESSION_FILE} gave ${got.bytes} bytes`);
    await client.quit();
  } finally {
    client.close();
  }
}

async function sessionsPhase(run: Run, replicas: number): Promise<PhaseSample> {
  const { cluster, groups } = run;
  const before = await scrapeReplicas(cluster);
  let stop: (() => PhaseCpu) | undefined;
  const loop = await closedLoop({
    total: settings.sessions,
    warmup: settings.clients, // under the quota: until every client runs
    workers: settings.clients,
    rampMs: settings.rampMs,
    check: deadline(settings.phaseTimeoutMs, `sessions, ${replicas} replica(s), ${run.mode}`),
    session: (w) => oneSession(cluster, w),
    onWindowStart: () => (stop = startPhaseMeter(cluster, groups)),
  });
  const cpu = stop!();
  const sorted = loop.latencies.sort((a, b) => a - b);
  return {
    round: run.round,
    replicas,
    mode: run.mode,
    phase: 'sessions',
    rate: sorted.length / loop.seconds,
    units: sorted.length,
    latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) },
    errors: loop.errors,
    firstErrors: loop.firstErrors,
    cpu,
    ...(await counters(cluster, before, 'sessions')),
    notUp: await notUp(cluster),
  };
}

/**
 * BENCH_TRANSFERS logged-in clients (one per source address), a warm-up transfer of 4 MiB each, then all of them at
 * once: RETR of the big file, or STOR of as many bytes; the window runs from the first command to the last 226.
 */
async function transferPhase(run: Run, replicas: number, phase: 'download' | 'upload'): Promise<PhaseSample> {
  const { cluster, groups } = run;
  const home = join(cluster.dataDir, cluster.user);
  const clients: FtpClient[] = [];
  const upName = (i: number) => `up-${run.round}-${i}.bin`;
  try {
    const opened = await Promise.allSettled(Array.from({ length: settings.transfers }, (_, i) => openClient(cluster, i)));
    for (const o of opened) if (o.status === 'fulfilled') clients.push(o.value);
    const failedOpen = opened.find((o) => o.status === 'rejected');
    if (failedOpen) throw new Error(`${phase}: a client could not connect: ${(failedOpen as PromiseRejectedResult).reason}`);
    await Promise.all(clients.map(async (c) => (await c.login(cluster.user, cluster.password), await c.command('TYPE I', 200))));
    // Warm-up, untimed: JIT, socket and (round robin) relay paths on every replica.
    await Promise.all(clients.map((c, i) => (phase === 'download' ? c.retr(WARM_FILE) : c.stor(`warm-${i}.bin`, { chunk: PATTERN, bytes: WARM_BYTES }))));

    const before = await scrapeReplicas(cluster);
    syncDisks();
    const check = deadline(settings.phaseTimeoutMs, `${phase}, ${replicas} replica(s), ${run.mode}`);
    const stop = startPhaseMeter(cluster, groups);
    const start = process.hrtime.bigint();
    const outcomes = await Promise.allSettled(
      clients.map(async (c, i) => {
        if (phase === 'download') {
          const got = await c.retr(BIG_FILE);
          if (got.bytes !== transferBytes) throw new Error(`RETR ${BIG_FILE} gave ${got.bytes} bytes, expected ${transferBytes}`);
        } else {
          await c.stor(upName(i), { chunk: PATTERN, bytes: transferBytes });
        }
      }),
    );
    const s = seconds(start);
    const cpu = stop();
    check();
    const firstErrors: string[] = [];
    let ok = 0;
    outcomes.forEach((o, i) => {
      if (o.status === 'rejected') {
        if (firstErrors.length < 5) firstErrors.push(`${source(i)}: ${(o.reason as Error).message}`);
        return;
      }
      if (phase === 'upload') {
        const size = statSync(join(home, upName(i)), { throwIfNoEntry: false })?.size;
        if (size !== transferBytes) {
          if (firstErrors.length < 5) firstErrors.push(`${source(i)}: ${upName(i)} is ${size} bytes on disk, expected ${transferBytes}`);
          return;
        }
      }
      ok++;
    });
    const sample: PhaseSample = {
      round: run.round,
      replicas,
      mode: run.mode,
      phase,
      rate: (ok * transferBytes) / MB / s,
      units: (ok * transferBytes) / MB,
      errors: settings.transfers - ok,
      firstErrors,
      cpu,
      ...(await counters(cluster, before, phase)),
      notUp: await notUp(cluster),
    };
    await Promise.allSettled(clients.map((c) => c.quit()));
    return sample;
  } finally {
    for (const c of clients) c.close();
    // Untimed: keeps the disk use at one round's uploads.
    for (let i = 0; i < settings.transfers; i++) {
      for (const name of [upName(i), `warm-${i}.bin`]) {
        try {
          unlinkSync(join(home, name));
        } catch {
          // not there (download phase, or a failed upload)
        }
      }
    }
  }
}

/** BENCH_WARMUP sessions per replica without the quotas, then the quotas back and a second for the periods to settle. */
async function warmUp(cluster: Cluster, groups: CpuGroup[], mode: Mode) {
  if (warmupPerReplica > 0) {
    for (const g of groups) g.setQuota(undefined);
    try {
      const warm = await closedLoop({
        total: warmupPerReplica * groups.length,
        warmup: 0,
        workers: settings.clients,
        rampMs: settings.rampMs,
        check: deadline(settings.phaseTimeoutMs, `warm-up, ${groups.length} replica(s), ${mode}`),
        session: (w) => oneSession(cluster, w),
      });
      const failed = warm.errors + warm.warmupErrors;
      if (failed > 0) log(`  note: ${failed} warm-up sessions failed, first: ${warm.firstErrors[0]}`);
    } finally {
      for (const g of groups) g.setQuota({ cpus: settings.replicaCpu, periodUs: settings.periodUs });
    }
  }
  await new Promise((r) => setTimeout(r, 1000));
}

/** One cluster of `replicas` in `mode`, every phase once. */
async function runCluster(round: number, replicas: number, mode: Mode): Promise<PhaseSample[]> {
  const groups = replicaGroups(replicas);
  const byId = new Map(groups.map((g, i) => [`edge-${i + 1}`, g]));
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster({
      replicas,
      balance: mode,
      env: REPLICA_ENV,
      pasvPorts: settings.pasvPorts,
      edgeArgs: edgeEntry(),
      startTimeoutMs: 90_000,
      // Into its group before it has loaded anything: start-up, warm-up and load all run under the quota.
      onReplicaSpawn: (r) => byId.get(r.id)!.join(r.pid),
    });
    for (const [i, r] of cluster.replicas.entries()) {
      const inside = groups[i].pids();
      if (groups[i].dir && !inside.includes(r.pid)) throw new Error(`${r.id} (pid ${r.pid}) is not in its cgroup ${groups[i].dir} (${inside.join(', ')})`);
    }
    log(`  cluster up: ${cluster.replicas.map((r) => `${r.id} pid ${r.pid}`).join(', ')}, HAProxy pid ${cluster.haproxy.pid}, Redis pid ${cluster.redis.pid}`);
    const home = join(cluster.dataDir, cluster.user);
    mkdirSync(home, { recursive: true });
    writeRandomFile(join(home, SESSION_FILE), SESSION_FILE_BYTES);
    writeRandomFile(join(home, WARM_FILE), WARM_BYTES);
    if (settings.phases.has('download')) writeRandomFile(join(home, BIG_FILE), transferBytes);
    await warmUp(cluster, groups, mode);

    const run: Run = { round, mode, cluster, groups };
    const samples: PhaseSample[] = [];
    for (const phase of PHASES) {
      if (!settings.phases.has(phase)) continue;
      const sample = phase === 'sessions' ? await sessionsPhase(run, replicas) : await transferPhase(run, replicas, phase);
      samples.push(sample);
      const unit = phase === 'sessions' ? 'sessions/s' : 'MB/s';
      const lat = sample.latencyMs ? `, p50 ${sample.latencyMs.p50.toFixed(0)} ms, p99 ${sample.latencyMs.p99.toFixed(0)} ms` : '';
      const edges = sample.cpu.edgesPct.map((p) => p.toFixed(0)).join('/');
      log(
        `  ${phase}: ${sample.rate.toFixed(1)} ${unit}${lat}, errors ${sample.errors}; edges ${edges} % CPU, HAProxy ${sample.cpu.haproxyPct.toFixed(0)} %, ` +
          `Redis ${sample.cpu.redisPct.toFixed(0)} %, client ${sample.cpu.clientPct.toFixed(0)} %, machine ${sample.cpu.machinePct.toFixed(0)} %; ` +
          `relayed ${sample.relayed} of ${sample.dataConnections}`,
      );
    }
    return samples;
  } finally {
    await cluster?.close();
    for (const g of groups) {
      g.remove();
      liveGroups.delete(g);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report.

const med = (samples: PhaseSample[], pick: (s: PhaseSample) => number) => median(samples.map(pick).filter((v) => Number.isFinite(v)));
const range = (values: number[]) => (values.length > 1 ? `${fmt(Math.min(...values))}-${fmt(Math.max(...values))}` : '');
const pct = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : `${v.toFixed(0)}%`);
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / (values.length || 1);

/** Share of a replica's periods in which it used up its quota. */
const throttledPct = (t: Throttling) => (t.periods ? (100 * t.throttled) / t.periods : 0);
/** Edges' CPU in CPU-ms over the phase, all replicas together. */
const edgesMs = (c: PhaseCpu) => (c.edgesPct.reduce((a, b) => a + b, 0) / 100) * c.wallMs;
const procMs = (p: number, c: PhaseCpu) => (p / 100) * c.wallMs;

function resultsTable(samples: PhaseSample[]): string {
  const rows: string[][] = [];
  for (const mode of settings.modes) {
    for (const n of settings.replicas) {
      const of = (phase: Phase) => samples.filter((s) => s.mode === mode && s.replicas === n && s.phase === phase);
      const sess = of('sessions');
      const down = of('download');
      const up = of('upload');
      const errors = [...sess, ...down, ...up].reduce((a, s) => a + s.errors, 0);
      rows.push([
        mode,
        String(n),
        fmt(med(sess, (s) => s.rate)),
        range(sess.map((s) => s.rate)),
        fmt(med(sess, (s) => s.latencyMs!.p50)),
        fmt(med(sess, (s) => s.latencyMs!.p99)),
        fmt(med(down, (s) => s.rate)),
        range(down.map((s) => s.rate)),
        fmt(med(up, (s) => s.rate)),
        range(up.map((s) => s.rate)),
        String(errors),
      ]);
    }
  }
  return table(
    ['mode', 'replicas', 'sessions/s', 'min-max', 'p50 ms', 'p99 ms', 'download MB/s', 'min-max', 'upload MB/s', 'min-max', 'errors'],
    rows,
    [false, true, true, true, true, true, true, true, true, true, true],
  );
}

interface Verdict {
  label: string;
  met: boolean;
}

function scalingTable(samples: PhaseSample[], verdicts: Verdict[]): string {
  const rows: string[][] = [];
  for (const mode of settings.modes) {
    const base = (phase: Phase) => med(samples.filter((s) => s.mode === mode && s.replicas === 1 && s.phase === phase), (s) => s.rate);
    for (const n of settings.replicas.filter((r) => r > 1)) {
      const cells = [mode, String(n)];
      for (const phase of PHASES) {
        const these = samples.filter((s) => s.mode === mode && s.replicas === n && s.phase === phase);
        const value = med(these, (s) => s.rate);
        const one = base(phase);
        if (value === undefined || one === undefined || !(one > 0)) {
          cells.push('n/a', '', '');
          continue;
        }
        const ratio = value / one;
        const errors = these.reduce((a, s) => a + s.errors, 0) + samples.filter((s) => s.mode === mode && s.replicas === 1 && s.phase === phase).reduce((a, s) => a + s.errors, 0);
        const met = ratio >= 0.9 * n && errors === 0;
        if (phase !== 'upload') verdicts.push({ label: `${phase} ${mode} x${n} ${ratio.toFixed(2)}`, met });
        cells.push(ratio.toFixed(2), (ratio / n).toFixed(2), met ? 'yes' : 'NO');
      }
      rows.push(cells);
    }
  }
  return table(
    ['mode', 'N', 'sessions xN', 'eff', '>=0.9N', 'download xN', 'eff', '>=0.9N', 'upload xN', 'eff', '>=0.9N'],
    rows,
    [false, true, true, true, false, true, true, false, true, true, false],
  );
}

function cpuTable(samples: PhaseSample[]): string {
  const rows: string[][] = [];
  const quotaPct = settings.replicaCpu * 100;
  for (const mode of settings.modes) {
    for (const n of settings.replicas) {
      for (const phase of PHASES) {
        const these = samples.filter((s) => s.mode === mode && s.replicas === n && s.phase === phase);
        if (these.length === 0) continue;
        const each = Array.from({ length: n }, (_, i) => med(these, (s) => s.cpu.edgesPct[i]) ?? NaN);
        const throttled = Array.from({ length: n }, (_, i) => med(these, (s) => throttledPct(s.cpu.throttling[i])) ?? NaN);
        const throttledS = med(these, (s) => s.cpu.throttling.reduce((a, t) => a + t.throttledMs, 0) / 1000) ?? NaN;
        const own = (s: PhaseSample) => s.cpu.clientPct + s.cpu.haproxyPct + s.cpu.redisPct + s.cpu.edgesPct.reduce((a, b) => a + b, 0);
        rows.push([
          mode,
          String(n),
          phase,
          fmt((med(these, (s) => s.cpu.wallMs) ?? NaN) / 1000),
          each.map((v) => v.toFixed(0)).join(' '),
          pct(mean(each.map((v) => (100 * v) / quotaPct))),
          throttled.map((v) => v.toFixed(0)).join(' '),
          fmt(throttledS),
          pct(med(these, (s) => s.cpu.haproxyPct)),
          pct(med(these, (s) => s.cpu.redisPct)),
          pct(med(these, (s) => s.cpu.clientPct)),
          pct(med(these, (s) => s.cpu.machinePct)),
          pct(med(these, (s) => Math.max(0, s.cpu.machinePct - own(s)))),
        ]);
      }
    }
  }
  return table(
    ['mode', 'N', 'phase', 'wall s', 'edges %core', 'of quota', 'throttled %', 'thr. s', 'haproxy', 'redis', 'client', 'machine', 'others'],
    rows,
    [false, true, false, true, true, true, true, true, true, true, true, true, true],
  );
}

function unitTable(samples: PhaseSample[]): string {
  const rows: string[][] = [];
  for (const mode of settings.modes) {
    for (const n of settings.replicas) {
      for (const phase of PHASES) {
        const these = samples.filter((s) => s.mode === mode && s.replicas === n && s.phase === phase);
        if (these.length === 0) continue;
        const per = (ms: (s: PhaseSample) => number) => fmt(med(these, (s) => ms(s) / s.units), 2);
        const edgeCost = (m: PhaseSample[]) => med(m, (s) => edgesMs(s.cpu) / s.units);
        const one = edgeCost(samples.filter((s) => s.mode === mode && s.replicas === 1 && s.phase === phase));
        const costEff = one !== undefined && n > 1 ? (one / edgeCost(these)!).toFixed(2) : '';
        const relayed = these.reduce((a, s) => a + s.relayed, 0);
        const conns = these.reduce((a, s) => a + s.dataConnections, 0);
        const spread = Array.from({ length: n }, (_, i) => med(these, (s) => s.perReplica[i]) ?? 0);
        const spreadMean = mean(spread);
        rows.push([
          mode,
          String(n),
          phase,
          phase === 'sessions' ? 'ms/session' : 'ms/MB',
          per((s) => edgesMs(s.cpu)),
          costEff,
          per((s) => procMs(s.cpu.haproxyPct, s.cpu)),
          per((s) => procMs(s.cpu.redisPct, s.cpu)),
          per((s) => procMs(s.cpu.clientPct, s.cpu)),
          `${relayed} of ${conns}`,
          conns ? `${((100 * relayed) / conns).toFixed(0)}%` : '-',
          spread.map((v) => v.toFixed(0)).join('/'),
          spreadMean > 0 ? (Math.max(...spread) / spreadMean).toFixed(2) : '-',
        ]);
      }
    }
  }
  return table(
    ['mode', 'N', 'phase', 'unit', 'edges', 'cost eff', 'haproxy', 'redis', 'client', 'relayed data conns', 'share', 'per replica', 'max/mean'],
    rows,
    [false, true, false, false, true, true, true, true, true, true, true, true, true],
  );
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.platform !== 'linux') throw new Error('the bench needs Linux (cgroups, /proc)');
  describeQuota(); // throws with the reason when no hierarchy can enforce a quota (not root, no cpu controller)
  removeStaleGroups();
  const cores = cpus().length;
  const free = statfsSync(tmpdir());
  const need = (settings.transfers + 1) * transferBytes + 256 * MiB;
  if (free.bavail * free.bsize < need) throw new Error(`${tmpdir()} has ${((free.bavail * free.bsize) / 2 ** 30).toFixed(1)} GiB free, the run needs ${(need / 2 ** 30).toFixed(1)} GiB (lower BENCH_TRANSFER_MIB)`);
  const loadBefore = await backgroundLoad();
  log(`background CPU before the run: ${loadBefore}% (of ${cores * 100}%)`);
  log(`edge: ${edgeEntry().join(' ')}; quota ${settings.replicaCpu} CPU per replica (${describeQuota()}); accounting ${describeAccounting()}`);

  const samples: PhaseSample[] = [];
  const failures: string[] = [];
  const order: [number, Mode][] = settings.replicas.flatMap((n) => settings.modes.map((m) => [n, m] as [number, Mode]));
  for (let round = 1; round <= settings.repeat; round++) {
    // Every round starts fresh clusters; odd rounds go up, even rounds down, so drift in the machine's load hits
    // every configuration alike.
    const thisRound = round % 2 ? order : [...order].reverse();
    for (const [n, mode] of thisRound) {
      log(`round ${round}: ${n} replica(s), balance ${mode}`);
      try {
        const got = await runCluster(round, n, mode);
        samples.push(...got);
        for (const s of got) {
          if (s.errors > 0) failures.push(`round ${round}, ${n} replica(s), ${mode}, ${s.phase}: ${s.errors} failed, first: ${s.firstErrors[0]}`);
          if (s.notUp.length > 0) failures.push(`round ${round}, ${n} replica(s), ${mode}, after ${s.phase}: HAProxy had ${s.notUp.join(', ')}`);
        }
      } catch (err) {
        failures.push(`round ${round}, ${n} replica(s), ${mode}: ${(err as Error).message}`);
        log(`FAILED: ${(err as Error).message}`);
      }
    }
  }
  const loadAfter = await backgroundLoad();

  const code = codeVersion();
  console.log('');
  console.log(`FTP cluster scale-out benchmark — loopback, os.cpus().length = ${cores} (${cpus()[0]?.model ?? '?'}), node ${process.version}, kernel ${release()}`);
  console.log(`${clusterVersions()}${code.dirty.length ? `; uncommitted changes outside test/: ${code.dirty.join(', ')}` : ''}`);
  console.log(`Edge: node ${edgeEntry().join(' ')}; replicas: ${Object.entries(REPLICA_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} (+ the harness's, FTP_FSYNC_UPLOADS=false).`);
  console.log(`Each replica in its own cgroup: quota ${settings.replicaCpu} CPU (${Math.round(settings.replicaCpu * settings.periodUs)} us per ${settings.periodUs} us period); ${describeQuota()}; CPU from ${describeAccounting()}.`);
  console.log(`HAProxy, Redis and the client (this process) are not limited; their CPU is from /proc/PID/stat.`);
  console.log(
    `Warm-up: ${warmupPerReplica} sessions per replica with the quotas lifted, then the quotas and 1 s of rest; every measured window runs under the quotas.`,
  );
  console.log(
    `Sessions: ${settings.sessions} measured after ${settings.clients} more (the ramp), ${settings.clients} clients from ${source(0)}-${source(settings.clients - 1)} (one address each), ` +
      `ramp ${settings.rampMs} ms; each: connect, USER/PASS, TYPE I, ${settings.passive} + LIST, ${settings.passive} + RETR 4 KiB, QUIT.`,
  );
  console.log(`Transfers: ${settings.transfers} at once, ${settings.transferMiB} MiB each, from ${source(0)}-${source(settings.transfers - 1)}; MB = 10^6 bytes; after a ${WARM_BYTES / MiB} MiB warm-up transfer each.`);
  console.log(`Every figure is the median of ${settings.repeat} round(s) (fresh cluster per round, configuration and mode); min-max of the rounds beside it.`);
  const noisy = Math.max(loadBefore, loadAfter) > 10;
  console.log(`Background CPU (bench idle): ${loadBefore}% before, ${loadAfter}% after, of ${cores * 100}%${noisy ? ' -- WARNING: the machine was not idle, figures are noisy.' : '.'}`);
  console.log('');
  console.log(resultsTable(samples));
  console.log('');
  console.log('Scale-out against 1 replica in the same mode (xN = median N replicas / median 1 replica; eff = xN / N; target xN >= 0.9 N and 0 errors):');
  const verdicts: Verdict[] = [];
  console.log(scalingTable(samples, verdicts));
  console.log('');
  console.log(
    `CPU per phase (medians over rounds, % of one core): edges = each replica's cgroup; of quota = mean replica CPU / its quota; throttled = each replica's ` +
      `share of its ${settings.periodUs / 1000} ms periods that hit the quota; thr. s = time the replicas' threads waited for quota, summed; others = machine - all of these (other work: noise).`,
  );
  console.log(cpuTable(samples));
  console.log('');
  console.log(
    'CPU per unit of work (medians over rounds; CPU ms per measured session or per MB moved; edges = all replicas together; cost eff = edges\' cost with 1 replica / with N: ' +
      'the scale-out efficiency quota-bound replicas can reach at most) and relays (ftp_relayed_data_connections_total, side sent, summed over rounds; sessions: the ramp\'s sessions included); ' +
      'per replica = control connections accepted (sessions) or data connections served as lease owner (transfers), median over rounds:',
  );
  console.log(unitTable(samples));
  console.log('');
  const met = verdicts.filter((v) => v.met).map((v) => v.label);
  const missed = verdicts.filter((v) => !v.met).map((v) => v.label);
  console.log(`Target N replicas >= 0.9 x N x one replica (sessions/s, download MB/s): met by ${met.length}/${verdicts.length}${met.length ? ` [${met.join('; ')}]` : ''}${missed.length ? `; MISSED: [${missed.join('; ')}]` : ''}`);

  mkdirSync(dirname(settings.out), { recursive: true });
  writeFileSync(
    settings.out,
    `${JSON.stringify({ settings: { ...settings, phases: [...settings.phases] }, environment: { cores, cpuModel: cpus()[0]?.model, kernel: release(), node: process.version, versions: clusterVersions(), edge: edgeEntry(), loadBefore, loadAfter, code }, samples, failures }, null, 2)}\n`,
  );
  console.log(`results: ${settings.out}`);
  return finishRun(failures, started);
}

runBench('scale', main);
