/**
 * `npm run bench:cluster`: what the cluster itself costs, on loopback, with the test harness's cluster
 * (test/support/cluster.ts: its own redis-server, 1–3 edge replicas on 127.0.0.11–13, HAProxy on 127.0.0.1):
 *  1. sessions/s and session latency through HAProxy with 1, 2 and 3 replicas, and with 1 replica and no HAProxy;
 *  2. one big download and upload with the control connection on replica 1 and the data connection to replica 1
 *     (direct), to replica 2 (relayed to replica 1), and everything through HAProxy (reference).
 * See test/bench/README.md ("Cluster benchmark") for what is timed and how to read it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync, statfsSync, unlinkSync } from 'node:fs';
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../support/cluster';
import { envInt, envList, MiB } from './env';
import { backgroundLoad } from './cpu';
import {
  clusterPids,
  clusterVersions,
  finishRun,
  ownPct,
  relayCounts,
  relayDelta,
  REPLICA_ENV,
  runBench,
  startClusterCpuMeter as startCpuMeter,
  writeRandomFile,
  type CpuShare,
  type RelayCounts,
} from './clusterBench';
import { FtpProtocolError, ReplyQueue, type Reply } from './ftpClient';
import { fmt, median, table } from './report';
import { edgeEntry } from './servers';
import { closedLoop, deadline, percentile, syncDisks } from './workloads';

/** Source address of every benchmark connection: not 127.0.0.1, which the replicas take for HAProxy (PROXY header expected). */
const SOURCE = '127.0.0.50';

const settings = {
  sessions: envInt('BENCH_SESSIONS', 2000),
  concurrency: envInt('BENCH_CONCURRENCY', 200),
  repeat: envInt('BENCH_REPEAT', 3),
  rampMs: envInt('BENCH_RAMP_MS', 1000, 0),
  mib: envInt('BENCH_MIB', 512),
  replicas: envList('BENCH_REPLICAS', '1,2,3', ['1', '2', '3', '4']).map(Number),
  only: new Set(envList('BENCH_CLUSTER_ONLY', 'sessions,transfers', ['sessions', 'transfers'])),
  opTimeoutMs: envInt('BENCH_OP_TIMEOUT_S', 30) * 1000,
  phaseTimeoutMs: envInt('BENCH_PHASE_TIMEOUT_S', 240) * 1000,
};
const bigBytes = settings.mib * MiB;
const warmBytes = Math.min(32, settings.mib) * MiB;

const started = Date.now();
/** How long each cluster's idle CPU is sampled before its session rounds. */
const IDLE_MS = 2000;
function log(message: string) {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

const seconds = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e9;

// ---------------------------------------------------------------------------------------------------------------
// A control connection and data connections from SOURCE. The reply parsing is the bench client's ReplyQueue;
// FtpClient itself cannot pick a source address, and a direct connection to a replica needs one.

interface Control {
  send(line: string): void;
  read(): Promise<Reply>;
  command(line: string, codes: number | number[]): Promise<Reply>;
  close(): void;
}

function expectReply(reply: Reply, codes: number | number[], what: string): Reply {
  const ok = Array.isArray(codes) ? codes.includes(reply.code) : reply.code === codes;
  if (!ok) throw new FtpProtocolError(`${what}: ${reply.code} ${reply.text}`);
  return reply;
}

/** A TCP connection from SOURCE, bounded by timeoutMs. */
function dial(host: string, port: number, timeoutMs: number, extra: Partial<NetConnectOpts> = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localAddress: SOURCE, noDelay: true, ...extra } as NetConnectOpts);
    const timer = setTimeout(() => socket.destroy(new Error(`connect ${host}:${port} timed out after ${timeoutMs} ms`)), timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** Connects and reads the 220 greeting. */
async function openControl(host: string, port: number, timeoutMs: number): Promise<Control> {
  const socket = await dial(host, port, timeoutMs);
  let last = 'greeting';
  const replies = new ReplyQueue(timeoutMs, () => last);
  socket.on('data', (chunk: Buffer) => replies.feed(chunk));
  socket.on('error', (err) => replies.fail(err));
  socket.on('close', () => replies.fail(new Error('control connection closed')));
  const control: Control = {
    send(line) {
      last = line.startsWith('PASS ') ? 'PASS' : line;
      socket.write(`${line}\r\n`);
    },
    read: () => replies.read(),
    async command(line, codes) {
      control.send(line);
      return expectReply(await replies.read(), codes, last);
    },
    close: () => socket.destroy(),
  };
  try {
    expectReply(await control.read(), 220, 'greeting');
  } catch (err) {
    control.close();
    throw err;
  }
  return control;
}

async function login(control: Control, cluster: Cluster) {
  await control.command(`USER ${cluster.user}`, 331);
  await control.command(`PASS ${cluster.password}`, 230);
}

const PASV_REPLY = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/;

async function pasv(control: Control): Promise<{ host: string; port: number }> {
  const reply = await control.command('PASV', 227);
  const m = PASV_REPLY.exec(reply.text);
  if (!m) throw new FtpProtocolError(`PASV reply without an address: ${reply.text}`);
  return { host: m.slice(1, 5).join('.'), port: Number(m[5]) * 256 + Number(m[6]) };
}

/** Downloads read into one reused buffer and only count bytes (as the bench client does). */
const SCRATCH = Buffer.allocUnsafe(MiB);
/** Uploads repeat one random 1 MiB pattern: no disk read and no whole-file buffer on the client. */
const PATTERN = randomBytes(MiB);

/** PASV, data connection to `dataHost` (default: the address in the reply), RETR; resolves with the bytes received. */
async function download(control: Control, dataHost: string | undefined, path: string, timeoutMs: number): Promise<number> {
  const { host, port } = await pasv(control);
  const count = { bytes: 0 };
  const onread = {
    buffer: SCRATCH,
    callback: (n: number) => {
      count.bytes += n;
      return true;
    },
  };
  const data = await dial(dataHost ?? host, port, timeoutMs, { onread } as Partial<NetConnectOpts>);
  const ended = new Promise<void>((resolve, reject) => {
    data.setTimeout(timeoutMs, () => data.destroy(new Error(`data connection idle for ${timeoutMs} ms`)));
    data.once('end', resolve);
    data.once('error', reject);
    data.once('close', () => reject(new Error('data connection closed before its end')));
  });
  ended.catch(() => undefined); // awaited below; a failed RETR must not leave it unhandled
  try {
    await control.command(`RETR ${path}`, [125, 150]);
    await Promise.all([ended, control.read().then((r) => expectReply(r, 226, `RETR ${path}`))]);
    return count.bytes;
  } finally {
    data.destroy();
  }
}

/** Writes `bytes` bytes of PATTERN with backpressure, then half-closes. */
async function pour(socket: Socket, bytes: number, timeoutMs: number): Promise<void> {
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`data connection stalled for ${timeoutMs} ms`)));
  let failure: Error | undefined;
  socket.on('error', (err) => (failure ??= err));
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  let left = bytes;
  while (left > 0 && !failure && !socket.destroyed) {
    const piece = left >= PATTERN.length ? PATTERN : PATTERN.subarray(0, left);
    left -= piece.length;
    if (!socket.write(piece)) await drained();
  }
  if (failure || socket.destroyed) throw failure ?? new Error('data connection closed during upload');
  await new Promise<void>((resolve) => socket.end(resolve));
}

/** PASV, data connection to `dataHost` (default: the address in the reply), STOR of `bytes` bytes; resolves on the 226. */
async function upload(control: Control, dataHost: string | undefined, path: string, bytes: number, timeoutMs: number): Promise<void> {
  const { host, port } = await pasv(control);
  const data = await dial(dataHost ?? host, port, timeoutMs);
  try {
    await control.command(`STOR ${path}`, [125, 150]);
    await pour(data, bytes, timeoutMs);
    expectReply(await control.read(), 226, `STOR ${path}`);
  } finally {
    data.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Sessions: N complete sessions, C at a time.

interface SessionsResult {
  sessionsPerSec: number;
  latencyMs: { p50: number; p95: number; p99: number };
  errors: number;
  warmupErrors: number;
  firstErrors: string[];
  cpu: CpuShare;
}

/** One session: connect, 220, USER/PASS, PWD, QUIT/221 (control connection only). */
async function oneSession(host: string, port: number, cluster: Cluster): Promise<void> {
  const control = await openControl(host, port, settings.opTimeoutMs);
  try {
    await login(control, cluster);
    await control.command('PWD', 257);
    await control.command('QUIT', 221);
  } finally {
    control.close();
  }
}

/** The closed loop of bench.ts's sessions phase (workloads.ts closedLoop), with the cluster's CPU over its window. */
async function sessions(cluster: Cluster, host: string, port: number): Promise<SessionsResult> {
  const total = settings.sessions;
  const pids = clusterPids(cluster);
  let stopMeter: (() => CpuShare) | undefined;
  const run = await closedLoop({
    total,
    warmup: Math.max(20, Math.min(200, Math.floor(total / 10))),
    workers: settings.concurrency,
    rampMs: settings.rampMs,
    check: deadline(settings.phaseTimeoutMs, `sessions to ${host}:${port}`),
    session: () => oneSession(host, port, cluster),
    onWindowStart: () => (stopMeter = startCpuMeter(pids)),
  });
  const cpu = stopMeter!();
  const sorted = run.latencies.sort((a, b) => a - b);
  return {
    sessionsPerSec: sorted.length / run.seconds,
    latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) },
    errors: run.errors,
    warmupErrors: run.warmupErrors,
    firstErrors: run.firstErrors,
    cpu,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Transfers on a 2-replica cluster: direct, relayed, through HAProxy.

type Route = 'direct' | 'relayed' | 'haproxy';
const ROUTES: Route[] = ['direct', 'relayed', 'haproxy'];
const ROUTE_LABEL: Record<Route, string> = {
  direct: 'control+data to edge-1 (direct)',
  relayed: 'control to edge-1, data to edge-2 (relayed)',
  haproxy: 'control+data through HAProxy (roundrobin)',
};

/** Where the control connection goes, and the data connection (undefined: the address of the PASV reply, HAProxy). */
function routeTargets(cluster: Cluster, route: Route): { control: string; data?: string } {
  const [one, two] = cluster.replicas;
  if (route === 'direct') return { control: one.address, data: one.address };
  if (route === 'relayed') return { control: one.address, data: two.address };
  return { control: cluster.host };
}

interface TransferSample {
  route: Route;
  direction: 'download' | 'upload';
  round: number; // 0 = warm-up
  mibPerSec: number;
  relay: RelayCounts;
  cpu?: CpuShare;
}

/** One download and one upload over `route`, with the relay counters read before and after each (off the clock). */
async function transferRound(cluster: Cluster, route: Route, round: number, pids: Record<string, number>, files: { down: string; bytes: number }): Promise<TransferSample[]> {
  const { control: controlHost, data: dataHost } = routeTargets(cluster, route);
  const control = await openControl(controlHost, cluster.port, settings.opTimeoutMs);
  const samples: TransferSample[] = [];
  const home = join(cluster.dataDir, cluster.user);
  try {
    await login(control, cluster);
    await control.command('TYPE I', 200);

    let before = await relayCounts(cluster);
    syncDisks();
    let stopMeter = startCpuMeter(pids);
    let start = process.hrtime.bigint();
    const got = await download(control, dataHost, files.down, settings.opTimeoutMs);
    let s = seconds(start);
    let cpu = stopMeter();
    if (got !== files.bytes) throw new Error(`${route}: downloaded ${got} bytes of ${files.down}, expected ${files.bytes}`);
    samples.push({ route, direction: 'download', round, mibPerSec: got / MiB / s, relay: relayDelta(before, await relayCounts(cluster)), cpu });

    const name = `up-${route}-${round}.bin`;
    before = await relayCounts(cluster);
    syncDisks();
    stopMeter = startCpuMeter(pids);
    start = process.hrtime.bigint();
    await upload(control, dataHost, name, files.bytes, settings.opTimeoutMs);
    s = seconds(start);
    cpu = stopMeter();
    const onDisk = statSync(join(home, name)).size;
    if (onDisk !== files.bytes) throw new Error(`${route}: ${name} is ${onDisk} bytes on disk, expected ${files.bytes}`);
    unlinkSync(join(home, name)); // untimed; keeps the disk use at one upload
    samples.push({ route, direction: 'upload', round, mibPerSec: files.bytes / MiB / s, relay: relayDelta(before, await relayCounts(cluster)), cpu });

    await control.command('QUIT', 221);
    return samples;
  } finally {
    control.close();
  }
}

/** What the relay counters must show for one transfer of `route`; undefined when anything goes (HAProxy decides). */
function relayProblem(sample: TransferSample): string | undefined {
  const { relay } = sample;
  const total = (side: 'sent' | 'received') => Object.values(relay).reduce((sum, c) => sum + c[side], 0);
  const show = JSON.stringify(relay);
  if (sample.route === 'direct' && (total('sent') !== 0 || total('received') !== 0)) return `direct ${sample.direction} moved the relay counters: ${show}`;
  if (sample.route === 'relayed' && !(relay['edge-2'].sent === 1 && relay['edge-1'].received === 1 && total('sent') === 1)) {
    return `relayed ${sample.direction}: expected edge-2 sent +1 and edge-1 received +1, got ${show}`;
  }
  if (total('sent') !== total('received')) return `${sample.route} ${sample.direction}: relay sent ${total('sent')} != received ${total('received')}: ${show}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Report.

interface Row {
  metric: string;
  unit: string;
  samples: number[];
  /** Metric of the row this one is divided by, for the ratio column. */
  vs?: string;
}

function renderRows(rows: Row[]): string {
  const byMetric = new Map(rows.map((r) => [r.metric, r]));
  const body = rows.map((row) => {
    const value = median(row.samples);
    const base = row.vs ? median(byMetric.get(row.vs)?.samples) : undefined;
    const ratio = value !== undefined && base !== undefined && base > 0 ? (value / base).toFixed(2) : '';
    const range = row.samples.length > 1 ? `${fmt(Math.min(...row.samples))}-${fmt(Math.max(...row.samples))}` : '';
    return [row.metric, row.unit, fmt(value), range, ratio, ratio ? row.vs! : ''];
  });
  return table(['metric', 'unit', 'median', 'min-max', 'ratio', 'ratio = median / median of'], body, [false, false, true, true, true, false]);
}

/** Mean CPU shares of several windows, as one table row; "others" is the rest of the machine (other work: noise). */
function cpuRow(label: string, shares: CpuShare[], names: string[]): string[] {
  const mean = (pick: (c: CpuShare) => number) => (shares.length ? shares.reduce((a, c) => a + pick(c), 0) / shares.length : NaN);
  const pct = (v: number) => (Number.isNaN(v) ? '-' : `${v.toFixed(0)}%`);
  return [
    label,
    pct(mean((c) => c.machinePct)),
    pct(mean((c) => Math.max(0, c.machinePct - ownPct(c)))),
    pct(mean((c) => c.clientPct)),
    ...names.map((n) => pct(mean((c) => c.processes[n] ?? NaN))),
  ];
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const cores = cpus().length;
  const free = statfsSync(tmpdir());
  const need = (settings.only.has('transfers') ? 2 * bigBytes + 2 * warmBytes : 0) + 256 * MiB;
  if (free.bavail * free.bsize < need) throw new Error(`${tmpdir()} has ${((free.bavail * free.bsize) / 2 ** 30).toFixed(1)} GiB free, the run needs ${(need / 2 ** 30).toFixed(1)} GiB (lower BENCH_MIB)`);
  const loadBefore = await backgroundLoad();
  log(`background CPU before the run: ${loadBefore}% (of ${cores * 100}%)`);

  const rounds = Array.from({ length: settings.repeat }, (_, i) => i + 1);
  const failures: string[] = [];
  const rows: Row[] = [];
  /** CPU of each session variant, and of each cluster idle; `rates` (sessions/s of each round) gives CPU per session. */
  const sessionCpu: { label: string; shares: CpuShare[]; rates: number[] }[] = [];
  const transferSamples: TransferSample[] = [];
  const what = `${settings.sessions} sessions, ${settings.concurrency} concurrent`;
  const row = (metric: string, unit: string, vs?: string): Row => {
    const r: Row = { metric, unit, samples: [], vs };
    rows.push(r);
    return r;
  };
  const attempt = async <T>(label: string, fn: () => Promise<T>): Promise<T | undefined> => {
    log(`${label} ...`);
    try {
      return await fn();
    } catch (err) {
      failures.push(`${label}: ${(err as Error).message}`);
      log(`FAILED ${label}: ${(err as Error).message}`);
      return undefined;
    }
  };

  // Sessions rows, in table order; the 1-replica HAProxy row is the base of the scaling ratios.
  const viaLb = (n: number) => `sessions/s, ${n} replica${n > 1 ? 's' : ''} via HAProxy`;
  const direct1 = 'sessions/s, 1 replica direct (no HAProxy)';
  const sessionRows = new Map<string, { rate: Row; p50: Row; p95: Row; cpu: CpuShare[] }>();
  if (settings.only.has('sessions')) {
    const targets = settings.replicas.includes(1) ? [direct1, ...settings.replicas.map(viaLb)] : settings.replicas.map(viaLb);
    const base = settings.replicas.includes(1) ? viaLb(1) : undefined;
    for (const label of targets) {
      const vs = label === direct1 ? undefined : label === viaLb(1) ? direct1 : base;
      const short = label.replace('sessions/s, ', '');
      sessionRows.set(label, {
        rate: row(label, 'sessions/s', vs),
        p50: row(`  latency p50, ${short}`, 'ms', vs && `  latency p50, ${vs.replace('sessions/s, ', '')}`),
        p95: row(`  latency p95, ${short}`, 'ms', vs && `  latency p95, ${vs.replace('sessions/s, ', '')}`),
        cpu: [],
      });
    }
  }
  const transferRow = (direction: 'download' | 'upload', route: Route) =>
    row(`${direction} ${settings.mib} MiB, ${ROUTE_LABEL[route]}`, 'MiB/s', route === 'direct' ? undefined : `${direction} ${settings.mib} MiB, ${ROUTE_LABEL.direct}`);
  const transferRows = settings.only.has('transfers')
    ? {
        download: Object.fromEntries(ROUTES.map((r) => [r, transferRow('download', r)])) as Record<Route, Row>,
        upload: Object.fromEntries(ROUTES.map((r) => [r, transferRow('upload', r)])) as Record<Route, Row>,
      }
    : undefined;

  const counts = [...new Set([...(settings.only.has('sessions') ? settings.replicas : []), ...(settings.only.has('transfers') ? [2] : [])])].sort();
  for (const count of counts) {
    const cluster = await attempt(`starting a cluster of ${count} replica(s)`, () => startCluster({ replicas: count, balance: 'roundrobin', env: REPLICA_ENV, pasvPorts: 20, edgeArgs: edgeEntry() }));
    if (!cluster) continue;
    try {
      log(`cluster up: HAProxy ${cluster.host}:${cluster.port} (pid ${cluster.haproxy.pid}), ${cluster.replicas.map((r) => `${r.id} ${r.address} pid ${r.pid}`).join(', ')}`);
      if (settings.only.has('sessions') && settings.replicas.includes(count)) {
        // What the cluster costs doing nothing (health checks, heartbeats, timers), before any load.
        const stopIdle = startCpuMeter(clusterPids(cluster));
        await new Promise((r) => setTimeout(r, IDLE_MS));
        sessionCpu.push({ label: `idle, ${count} replica${count > 1 ? 's' : ''} (${IDLE_MS / 1000} s)`, shares: [stopIdle()], rates: [] });
        const runs: [string, string][] = [[viaLb(count), cluster.host]];
        if (count === 1) runs.unshift([direct1, cluster.replicas[0].address]);
        for (const round of rounds) {
          // Within a round the variants take turns, so a disturbance hits them alike.
          for (const [label, host] of runs) {
            const r = await attempt(`${label} round ${round}`, () => sessions(cluster, host, cluster.port));
            if (!r) continue;
            if (r.errors > 0) {
              failures.push(`${label} round ${round}: ${r.errors} of ${settings.sessions} sessions failed, first: ${r.firstErrors[0]}`);
              continue;
            }
            if (r.warmupErrors > 0) log(`note: ${r.warmupErrors} warm-up sessions failed, first: ${r.firstErrors[0]}`);
            const target = sessionRows.get(label)!;
            target.rate.samples.push(r.sessionsPerSec);
            target.p50.samples.push(r.latencyMs.p50);
            target.p95.samples.push(r.latencyMs.p95);
            target.cpu.push(r.cpu);
            log(`  ${r.sessionsPerSec.toFixed(0)} sessions/s, p50 ${r.latencyMs.p50.toFixed(1)} ms, p95 ${r.latencyMs.p95.toFixed(1)} ms, machine CPU ${r.cpu.machinePct.toFixed(0)}%`);
          }
        }
        for (const [label] of runs) {
          const { cpu, rate } = sessionRows.get(label)!;
          sessionCpu.push({ label: label.replace('sessions/s, ', ''), shares: cpu, rates: rate.samples });
        }
      }

      if (transferRows && count === 2) {
        const home = join(cluster.dataDir, cluster.user);
        mkdirSync(home, { recursive: true });
        const big = { down: 'big-download.bin', bytes: bigBytes };
        const warm = { down: 'warm-download.bin', bytes: warmBytes };
        log(`writing ${settings.mib} MiB of random bytes to ${join(home, big.down)} ...`);
        writeRandomFile(join(home, big.down), big.bytes);
        writeRandomFile(join(home, warm.down), warm.bytes);
        const pids = clusterPids(cluster);
        // Warm-up: a smaller transfer each way on every route (JIT, socket and relay paths), not measured.
        for (const route of ROUTES) {
          const r = await attempt(`warm-up ${route} (${warmBytes / MiB} MiB each way)`, () => transferRound(cluster, route, 0, pids, warm));
          if (r) transferSamples.push(...r);
        }
        for (const round of rounds) {
          for (const route of ROUTES) {
            const r = await attempt(`transfers ${route} round ${round}`, () => transferRound(cluster, route, round, pids, big));
            if (!r) continue;
            transferSamples.push(...r);
            for (const s of r) {
              transferRows[s.direction][route].samples.push(s.mibPerSec);
              const relayed = Object.values(s.relay).reduce((a, c) => a + c.sent, 0);
              log(`  ${s.direction} ${s.mibPerSec.toFixed(0)} MiB/s${relayed ? ' (relayed)' : ''}, machine CPU ${s.cpu?.machinePct.toFixed(0)}%`);
            }
          }
        }
        for (const s of transferSamples) {
          const problem = relayProblem(s);
          if (problem) failures.push(`relay counters, ${s.round ? `round ${s.round}` : 'warm-up'}: ${problem}`);
        }
      }
    } finally {
      log(`stopping the cluster of ${count} ...`);
      await cluster.close();
    }
  }
  const loadAfter = await backgroundLoad();

  // -------------------------------------------------------------------------------------------------------------
  console.log('');
  console.log(`FTP cluster benchmark — loopback, os.cpus().length = ${cores} (${cpus()[0]?.model ?? '?'}), node ${process.version}, kernel ${release()}`);
  console.log(`${clusterVersions()}`);
  console.log(`Cluster: test/support/cluster.ts (redis-server, replicas on 127.0.0.11-14, HAProxy on 127.0.0.1, balance roundrobin); client source ${SOURCE}.`);
  console.log(`Replicas: ${Object.entries(REPLICA_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} (FTP_FSYNC_UPLOADS=false is the harness default: no fsync before 226).`);
  console.log(`All ${cores} cores are shared by the client, HAProxy, Redis and every replica: more replicas add no CPU, only processes.`);
  console.log(`Each figure is the median of ${settings.repeat} round(s); min-max of the rounds beside it.`);
  console.log(`Sessions: ${what} (after ${Math.max(20, Math.min(200, Math.floor(settings.sessions / 10)))} warm-up sessions, workers ramped over ${settings.rampMs} ms), each: connect, 220, USER/PASS, PWD, QUIT/221.`);
  const noisy = Math.max(loadBefore, loadAfter) > 10;
  console.log(
    `Background CPU (other processes, bench idle): ${loadBefore}% before, ${loadAfter}% after, of ${cores * 100}%` +
      (noisy ? ' -- WARNING: the machine was not idle, figures are noisy.' : '.'),
  );
  console.log('');
  console.log(renderRows(rows));

  if (sessionCpu.length > 0) {
    const names = [...Array.from({ length: Math.max(...settings.replicas) }, (_, i) => `edge-${i + 1}`), 'haproxy', 'redis'];
    console.log('');
    console.log('CPU during the measured session windows (mean over rounds; % of one core; others = the rest of the machine, i.e. noise):');
    const perSession = (s: (typeof sessionCpu)[number]) => {
      const each = s.rates.map((rate, i) => (ownPct(s.shares[i]) * 10) / rate); // % of a core = 10 CPU ms per second
      return each.length ? (each.reduce((a, b) => a + b, 0) / each.length).toFixed(2) : '-';
    };
    const body = sessionCpu.map((s) => [...cpuRow(s.label, s.shares, names), perSession(s)]);
    console.log(table(['sessions', 'machine', 'others', 'client', ...names, 'CPU ms/session'], body, [false, ...Array<boolean>(names.length + 4).fill(true)]));
    console.log('CPU ms/session: client + cluster processes (not "others"), per measured session.');
  }
  const measured = transferSamples.filter((s) => s.round > 0);
  if (measured.length > 0) {
    const names = ['edge-1', 'edge-2', 'haproxy', 'redis'];
    console.log('');
    console.log('CPU during the measured transfers (mean over rounds; % of one core):');
    const cpuBody = (['download', 'upload'] as const).flatMap((dir) =>
      ROUTES.map((route) => cpuRow(`${dir} ${route}`, measured.filter((s) => s.direction === dir && s.route === route && s.cpu).map((s) => s.cpu!), names)),
    );
    console.log(table(['transfer', 'machine', 'others', 'client', ...names], cpuBody, [false, ...Array<boolean>(names.length + 3).fill(true)]));
    console.log('');
    console.log('Relay counters (ftp_relayed_data_connections_total), change over all data connections of each route, warm-up included:');
    const relayBody = ROUTES.map((route) => {
      const mine = transferSamples.filter((s) => s.route === route);
      const sum = (id: string, side: 'sent' | 'received') => mine.reduce((a, s) => a + (s.relay[id]?.[side] ?? 0), 0);
      const relayedOnes = mine.filter((s) => Object.values(s.relay).some((c) => c.sent > 0)).length;
      return [route, String(mine.length), `+${sum('edge-1', 'sent')}`, `+${sum('edge-1', 'received')}`, `+${sum('edge-2', 'sent')}`, `+${sum('edge-2', 'received')}`, `${relayedOnes} of ${mine.length}`];
    });
    console.log(table(['route', 'data conns', 'edge-1 sent', 'edge-1 received', 'edge-2 sent', 'edge-2 received', 'relayed'], relayBody, [false, true, true, true, true, true, true]));
    const lb = measured.filter((s) => s.route === 'haproxy');
    if (lb.length) console.log(`HAProxy route, per measured transfer: ${lb.map((s) => `${s.direction} r${s.round} ${s.mibPerSec.toFixed(0)} MiB/s ${Object.values(s.relay).some((c) => c.sent > 0) ? 'relayed' : 'direct'}`).join('; ')}`);
    console.log(`Checks: every download's byte count, every upload's size on disk (${settings.mib} MiB); relay counters: direct +0, relayed exactly +1 sent (edge-2) and +1 received (edge-1) per data connection.`);
  }
  return finishRun(failures, started);
}

runBench('cluster', main);
