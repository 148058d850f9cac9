/**
 * The three measured workloads. Each takes a running server, warms it up, flushes the page cache's dirty pages
 * (`sync`, untimed) and then times only the FTP work. Every loop is bounded by a count and by a deadline.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MiB } from './env';
import { FtpClient } from './ftpClient';
import { startCpuMeter, type CpuSample } from './cpu';
import type { RunningServer } from './servers';

export const SMALL_FILE_BYTES = 4096;

export interface Limits {
  /** Per FTP reply / data connection wait. */
  opTimeoutMs: number;
  /** Per measured phase. */
  phaseTimeoutMs: number;
}

/** Throws once the deadline has passed: keeps every loop bounded in time as well as in count. */
export function deadline(ms: number, what: string) {
  const end = Date.now() + ms;
  return () => {
    if (Date.now() > end) throw new Error(`${what}: did not finish within ${ms / 1000} s (BENCH_PHASE_TIMEOUT_S)`);
  };
}

/** Flushes dirty pages left by earlier phases so that they are not written back during a measurement. */
export function syncDisks() {
  execFileSync('sync', { timeout: 300_000 });
}

async function session(server: RunningServer, limits: Limits): Promise<FtpClient> {
  const client = await FtpClient.open(server.host, server.port, limits.opTimeoutMs);
  try {
    await client.login(server.user, server.password);
    await client.command('TYPE I', 200);
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/** MKD that tolerates an existing folder. */
async function ensureDir(client: FtpClient, path: string) {
  client.send(`MKD ${path}`);
  const reply = await client.read();
  if (reply.code !== 257 && reply.code !== 550) throw new Error(`MKD ${path}: ${reply.code} ${reply.text}`);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const seconds = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e9;

export interface Timed {
  seconds: number;
  cpu: CpuSample;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. One big file, one stream each way.

export interface BigResult {
  bytes: number;
  upload?: Timed & { mibPerSec: number };
  download?: Timed & { mibPerSec: number };
  checks: string[];
}

/** A 1 MiB pattern repeated: the client generates the stream, no disk read and no hashing on the client side. */
const PATTERN = randomBytes(MiB);

export async function bigFile(
  server: RunningServer,
  bytes: number,
  limits: Limits,
  options: { download: boolean; warmupBytes: number; round: number },
): Promise<BigResult> {
  const client = await session(server, limits);
  const checks: string[] = [];
  // A new name each round: overwriting would time the freeing of the previous 1 GiB too.
  const name = `big-${options.round}.bin`;
  const warmName = `warm/big-${options.round}.bin`;
  try {
    await ensureDir(client, 'warm');
    // Warm-up: a smaller transfer each way (JIT, socket and file code paths, page cache for the folder).
    await client.stor(warmName, { chunk: PATTERN, bytes: options.warmupBytes });
    if (options.download) await client.retr(warmName);

    const result: BigResult = { bytes, checks };
    syncDisks();
    let meter = startCpuMeter(server);
    let start = process.hrtime.bigint();
    await client.stor(name, { chunk: PATTERN, bytes });
    let s = seconds(start);
    result.upload = { seconds: s, mibPerSec: bytes / MiB / s, cpu: meter.stop() };

    const onDisk = statSync(join(server.root, name)).size;
    if (onDisk !== bytes) throw new Error(`${server.name}: ${name} is ${onDisk} bytes on disk, expected ${bytes}`);
    checks.push(`${name} on disk: ${onDisk} bytes (ok)`);

    if (options.download) {
      syncDisks();
      meter = startCpuMeter(server);
      start = process.hrtime.bigint();
      const got = await client.retr(name);
      s = seconds(start);
      result.download = { seconds: s, mibPerSec: bytes / MiB / s, cpu: meter.stop() };
      if (got.bytes !== bytes) throw new Error(`${server.name}: downloaded ${got.bytes} bytes of ${name}, expected ${bytes}`);
      checks.push(`${name} downloaded: ${got.bytes} bytes (ok)`);
    }
    // Untimed: keeps the disk use at one big file per server whatever the number of rounds.
    await client.command(`DELE ${name}`, 250);
    await client.command(`DELE ${warmName}`, 250);
    await client.quit();
    return result;
  } catch (err) {
    client.close();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Many small files over one session.

export interface SmallResult {
  count: number;
  upload?: Timed & { filesPerSec: number };
  download?: Timed & { filesPerSec: number };
  checks: string[];
}

/** Distinct 4 KiB payloads (random, so a misplaced or truncated file cannot pass the sha256 check). */
export function smallPayloads(count: number): Buffer[] {
  const all = randomBytes(count * SMALL_FILE_BYTES);
  return Array.from({ length: count }, (_, i) => all.subarray(i * SMALL_FILE_BYTES, (i + 1) * SMALL_FILE_BYTES));
}

/** A few indexes spread over the run, for the correctness spot checks. */
function sampleIndexes(count: number): number[] {
  return [...new Set([0, 1, Math.floor(count / 3), Math.floor(count / 2), count - 1].filter((i) => i >= 0 && i < count))];
}

export async function smallFiles(
  server: RunningServer,
  payloads: Buffer[],
  limits: Limits,
  options: { download: boolean; warmup: number; round: number },
): Promise<SmallResult> {
  const count = payloads.length;
  const client = await session(server, limits);
  const checks: string[] = [];
  // A fresh folder each round: new files, as in round one (nothing is deleted: on a journal-less ext4, inodes
  // freed in the last minutes make creating files slower).
  const dir = `small-${options.round}`;
  const name = (i: number) => `${dir}/f${i}.bin`;
  try {
    await ensureDir(client, 'warm');
    await ensureDir(client, dir);
    const warm = Math.min(options.warmup, count);
    const warmName = (i: number) => `warm/s${options.round}-${i}.bin`;
    for (let i = 0; i < warm; i++) await client.stor(warmName(i), payloads[i]);
    if (options.download) for (let i = 0; i < warm; i++) await client.retr(warmName(i));

    const result: SmallResult = { count, checks };
    syncDisks();
    let check = deadline(limits.phaseTimeoutMs, `${server.name} small-file upload`);
    let meter = startCpuMeter(server);
    let start = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      await client.stor(name(i), payloads[i]);
      if ((i & 63) === 0) check();
    }
    let s = seconds(start);
    result.upload = { seconds: s, filesPerSec: count / s, cpu: meter.stop() };

    const samples = sampleIndexes(count);
    for (const i of samples) {
      const onDisk = readFileSync(join(server.root, name(i)));
      if (sha256(onDisk) !== sha256(payloads[i])) throw new Error(`${server.name}: ${name(i)} on disk does not match what was sent (sha256)`);
    }
    checks.push(`sha256 of ${samples.length} uploaded files on disk (ok)`);

    if (options.download) {
      const keep = new Set(samples);
      const kept = new Map<number, Buffer>();
      syncDisks();
      check = deadline(limits.phaseTimeoutMs, `${server.name} small-file download`);
      meter = startCpuMeter(server);
      start = process.hrtime.bigint();
      for (let i = 0; i < count; i++) {
        const got = await client.retr(name(i), keep.has(i));
        if (got.bytes !== SMALL_FILE_BYTES) throw new Error(`${server.name}: RETR ${name(i)} gave ${got.bytes} bytes`);
        if (got.data) kept.set(i, got.data);
        if ((i & 63) === 0) check();
      }
      s = seconds(start);
      result.download = { seconds: s, filesPerSec: count / s, cpu: meter.stop() };
      for (const [i, data] of kept) {
        if (sha256(data) !== sha256(payloads[i])) throw new Error(`${server.name}: downloaded ${name(i)} does not match (sha256)`);
      }
      checks.push(`sha256 of ${kept.size} downloaded files (ok)`);
    }
    await client.quit();
    return result;
  } catch (err) {
    client.close();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Many short sessions, `concurrency` at a time.

export interface SessionsResult extends Timed {
  total: number;
  concurrency: number;
  ok: number;
  errors: number;
  warmupErrors: number;
  firstErrors: string[];
  sessionsPerSec: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number; mean: number };
  checks: string[];
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const SESSION_FILE = 'sess.bin';

/** One complete session: greeting, login, TYPE I, EPSV + LIST, EPSV + RETR, QUIT. */
async function oneSession(server: RunningServer, limits: Limits, payloadBytes: number): Promise<{ listing?: string }> {
  const client = await FtpClient.open(server.host, server.port, limits.opTimeoutMs);
  try {
    await client.login(server.user, server.password);
    await client.command('TYPE I', 200);
    const listing = await client.list();
    if (listing.bytes === 0) throw new Error('empty LIST');
    const got = await client.retr(SESSION_FILE);
    if (got.bytes !== payloadBytes) throw new Error(`RETR ${SESSION_FILE} gave ${got.bytes} bytes`);
    await client.quit();
    return { listing: listing.data?.toString('latin1') };
  } finally {
    client.close();
  }
}

export interface LoopRun {
  /** Latencies of the measured sessions (the ones after the warm-up), in ms, in completion order. */
  latencies: number[];
  /** Failed measured sessions, and failed warm-up ones. */
  errors: number;
  warmupErrors: number;
  firstErrors: string[];
  /** From the start of the first measured session to the end of the last one. */
  seconds: number;
}

export interface LoopOptions {
  /** Measured sessions. */
  total: number;
  /** Sessions before the measured ones. */
  warmup: number;
  workers: number;
  /** Spread of the workers' start. */
  rampMs: number;
  /** Throws once the phase has run out of time (see deadline). */
  check: () => void;
  /** One session of worker `w` (0 … workers-1); a throw counts as a failed session. */
  session: (w: number) => Promise<unknown>;
  /** Called as the first measured session starts: where a caller starts its CPU meters. */
  onWindowStart?: () => void;
}

/**
 * A closed loop of `workers` workers, started over `rampMs` (a burst of simultaneous connects overflows
 * vsftpd's listen backlog of 32, see connectBurst), running sessions back to back. The first `warmup` sessions,
 * and any that start before the last worker has joined, are not measured; the next `total` are. So the servers
 * are warm and at full concurrency from the first measured session on. The window closes when the last measured
 * session ends (the tail, where concurrency drains, is about one latency long for either server).
 * Shared by bench.ts (sessions), cluster.ts and scale.ts.
 */
export async function closedLoop(options: LoopOptions): Promise<LoopRun> {
  const { total, warmup, rampMs, check } = options;
  const workers = Math.max(1, Math.min(options.workers, total));
  const latencies: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  let warmupErrors = 0;
  let started = 0;
  let measuredStarted = 0;
  let rampDone = false;
  let windowStart: bigint | undefined;
  let windowEnd = 0n;
  const worker = async (w: number) => {
    await new Promise((r) => setTimeout(r, Math.floor((w * rampMs) / workers)));
    if (w === workers - 1) rampDone = true;
    while (measuredStarted < total) {
      check();
      // Measured: after the warm-up count and once every worker runs.
      const index = started++;
      const measured = rampDone && index >= warmup;
      const start = process.hrtime.bigint();
      if (measured && measuredStarted++ === 0) {
        windowStart = start;
        options.onWindowStart?.();
      }
      try {
        await options.session(w);
        if (measured) latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      } catch (err) {
        if (measured) errors++;
        else warmupErrors++;
        if (firstErrors.length < 5) firstErrors.push(`${measured ? '' : 'warm-up: '}${(err as Error).message}`);
      }
      if (measured) windowEnd = process.hrtime.bigint();
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  if (windowStart === undefined) throw new Error('no measured session ran');
  return { latencies, errors, warmupErrors, firstErrors, seconds: Number(windowEnd - windowStart) / 1e9 };
}

/** The closed loop of oneSession against `server`, with the CPU of the measured window. */
async function runSessions(
  server: RunningServer,
  warmup: number,
  total: number,
  concurrency: number,
  rampMs: number,
  limits: Limits,
  payloadBytes: number,
): Promise<LoopRun & { cpu: CpuSample }> {
  let meter: ReturnType<typeof startCpuMeter> | undefined;
  const run = await closedLoop({
    total,
    warmup,
    workers: concurrency,
    rampMs,
    check: deadline(limits.phaseTimeoutMs, `${server.name} sessions`),
    session: () => oneSession(server, limits, payloadBytes),
    onWindowStart: () => (meter = startCpuMeter(server)),
  }).catch((err: Error) => {
    throw new Error(`${server.name}: ${err.message}`);
  });
  return { ...run, cpu: meter!.stop() };
}

export async function sessions(
  server: RunningServer,
  total: number,
  concurrency: number,
  limits: Limits,
  options: { warmup: number; rampMs: number },
): Promise<SessionsResult> {
  const payload = randomBytes(SMALL_FILE_BYTES);
  const setup = await session(server, limits);
  try {
    await setup.stor(SESSION_FILE, payload);
    await setup.quit();
  } catch (err) {
    setup.close();
    throw err;
  }
  const checks: string[] = [];
  // Correctness once: the listing names the file and the content round-trips.
  const probe = await session(server, limits);
  try {
    const listing = (await probe.list()).data?.toString('latin1') ?? '';
    if (!listing.includes(SESSION_FILE)) throw new Error(`${server.name}: LIST does not show ${SESSION_FILE}:\n${listing}`);
    const got = await probe.retr(SESSION_FILE, true);
    if (!got.data || sha256(got.data) !== sha256(payload)) throw new Error(`${server.name}: ${SESSION_FILE} does not round-trip`);
    await probe.quit();
    checks.push(`LIST shows ${SESSION_FILE}; sha256 of its download (ok)`);
  } catch (err) {
    probe.close();
    throw err;
  }

  syncDisks();
  const run = await runSessions(server, options.warmup, total, concurrency, options.rampMs, limits, payload.length);
  const sorted = run.latencies.sort((a, b) => a - b);
  return {
    total,
    concurrency,
    ok: sorted.length,
    errors: run.errors,
    warmupErrors: run.warmupErrors,
    firstErrors: run.firstErrors,
    seconds: run.seconds,
    cpu: run.cpu,
    sessionsPerSec: sorted.length / run.seconds,
    latencyMs: {
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      max: sorted[sorted.length - 1] ?? NaN,
      mean: sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1),
    },
    checks,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 4. A burst of simultaneous connects (what a listen backlog can absorb).

export interface BurstResult {
  connects: number;
  /** Greeted (220) within the wait. */
  greeted: number;
  waitMs: number;
  /** Time to greeting of the greeted ones. */
  p50Ms: number;
  maxMs: number;
}

/** `count` connects at once; how many get their 220 greeting within `waitMs`. Run last: stuck ones are abandoned. */
export async function connectBurst(server: RunningServer, count: number, waitMs: number): Promise<BurstResult> {
  await new Promise((r) => setTimeout(r, 1000)); // let the previous phase's connections close
  const times = await Promise.all(
    Array.from({ length: count }, async () => {
      const start = Date.now();
      try {
        const client = await FtpClient.open(server.host, server.port, waitMs);
        const ms = Date.now() - start;
        client.close();
        return ms;
      } catch {
        return undefined;
      }
    }),
  );
  const ok = times.filter((t): t is number => t !== undefined).sort((a, b) => a - b);
  return { connects: count, greeted: ok.length, waitMs, p50Ms: percentile(ok, 50), maxMs: ok[ok.length - 1] ?? NaN };
}
