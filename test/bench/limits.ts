/**
 * `npm run bench:limits`: what per-user limits (issue 16) cost, and whether a user's cap holds across replicas.
 *
 *   npm run bench:limits                                        # 3 rounds, ~10 minutes (the first run builds the baseline)
 *   BENCH_REPEAT=1 BENCH_BIG_MB=64 BENCH_CAP_SECONDS=6 npm run bench:limits   # quick look
 *
 * Three tables, each figure the median (min–max) of BENCH_REPEAT rounds:
 *   1. Unlimited session, before vs after: one embedded edge (no Redis, no fsync), one session uploading then
 *      downloading BENCH_BIG_MB MiB, for the baseline commit's bundle (BENCH_BASELINE, built once into .bench/), this
 *      code's bundle and this code's again (A/A: the noise floor), in an order that rotates per round. A user without
 *      limits must get the storage unchanged (zero-copy), so the target is this/baseline within 3 %.
 *   2. Cost of the limiter when it does not bind: this code on Redis with FTP_ZERO_COPY=off (both users on streams),
 *      the unlimited user against one capped at 100 GB/s each way, and the Redis commands each transfer caused.
 *   3. Shared cap across replicas: three edges on one Redis, a user capped at BENCH_CAP_MBPS MiB/s, with 1, 2 and 3
 *      sessions on replicas 1..n downloading (then uploading) for BENCH_CAP_SECONDS s; the bytes moved after the first
 *      2 s against the cap, then ABOR, and every edge must still serve a login.
 * See test/bench/README.md ("Per-user limits") for how to read them.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import type { LimitKey } from '@ftp/identity';
import { partialNameFor } from '@ftp/storage';
import { finishRun, runBench, writeRandomFile } from './clusterBench';
import { backgroundLoad, startCpuMeter } from './cpu';
import { envInt, envList, envNumber, MiB } from './env';
import { FtpClient } from './ftpClient';
import { fmt, log, median, seconds, spread, table } from './report';
import {
  baselineBundle,
  checkRangeFree,
  codeVersion,
  createBenchUser,
  edgeEntry,
  freePort,
  killedAtExit,
  startOurs,
  startRedisServer,
  stopServer,
  type RunningServer,
} from './servers';
import { syncDisks } from './workloads';

const PARTS = ['before-after', 'headroom', 'shared'] as const;
type Part = (typeof PARTS)[number];

const settings = {
  parts: new Set(envList('BENCH_LIMITS_ONLY', PARTS.join(','), [...PARTS]) as Part[]),
  repeat: envInt('BENCH_REPEAT', 3),
  bigMiB: envInt('BENCH_BIG_MB', 256),
  warmMiB: envInt('BENCH_WARM_MB', 32),
  baseline: process.env.BENCH_BASELINE || '8f74d89',
  capMiBps: envNumber('BENCH_CAP_MBPS', 8),
  capSeconds: envInt('BENCH_CAP_SECONDS', 12, 4),
  capFileMiB: envInt('BENCH_CAP_FILE_MB', 512),
  /** Bytes/s of the "roomy" user in part 2: a cap that never binds. */
  roomy: envInt('BENCH_ROOMY_BPS', 100_000_000_000),
  opTimeoutMs: envInt('BENCH_OP_TIMEOUT_S', 60) * 1000,
};
/** The first seconds of a capped transfer are left out: the bucket's burst and the sockets' buffers fill then. */
const SKIP_MS = 2000;
const REPLICAS = 3;
const PASV_BASE = envInt('BENCH_LIMITS_PASV_BASE', 26000);
const pasvRange = (i: number) => ({ min: PASV_BASE + 100 * i, max: PASV_BASE + 100 * i + 99 });
const PATTERN = randomBytes(MiB);
const ABOR_REPLY_MS = 10_000;

const started = Date.now();
const failures: string[] = [];
/** Ports handed out in this run: edges start in parallel, so a port once given is not given again. */
const takenPorts = new Set<number>();
const { servers, redises } = killedAtExit();

// ---------------------------------------------------------------------------------------------------------------
// Edges, users, Redis

interface Account {
  user: string;
  password: string;
}

type BenchUser = ReturnType<typeof createBenchUser>;

/** Adds users to the bench user's file: each a copy of `bench` (password hash, home, permissions) with its limits. */
function addLimitedUsers(bench: BenchUser, users: Record<string, Partial<Record<LimitKey, number>>>) {
  const doc = parse(readFileSync(bench.usersFile, 'utf8')) as { users: Record<string, Record<string, unknown>> };
  for (const [name, limits] of Object.entries(users)) doc.users[name] = { ...doc.users.bench, limits };
  writeFileSync(bench.usersFile, stringify(doc), { mode: 0o600 });
}

async function startEdge(name: string, dir: string, user: BenchUser, slot: number, entry: string[], env: Record<string, string>): Promise<RunningServer> {
  const port = await freePort(25000, takenPorts);
  const server = await startOurs({ name, dir, port, pasvRange: pasvRange(slot), fsync: false, entry, env, user });
  servers.add(server);
  return server;
}

async function stopEdge(server: RunningServer) {
  await stopServer(server);
  servers.delete(server);
}

/** What an edge wrote (at FTP_LOG_LEVEL=warn): every line is worth a look in the report. */
function edgeOutput(server: RunningServer, where: string) {
  const text = server.output().trim();
  if (text) console.log(`  output of ${server.name} (${where}), last lines:\n${text.split('\n').slice(-12).map((l) => `    ${l}`).join('\n')}`);
}

/** The edge process is alive and a fresh session logs in and gets a NOOP answered. */
async function serves(server: RunningServer): Promise<string | undefined> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return `${server.name} exited (${server.child.exitCode ?? server.child.signalCode})`;
  try {
    const client = await FtpClient.open(server.host, server.port, 10_000);
    await client.login(server.user, server.password);
    await client.command('NOOP', 200);
    await client.quit();
    return undefined;
  } catch (err) {
    return `${server.name} no longer serves a login: ${(err as Error).message}`;
  }
}

const execFileAsync = promisify(execFile);

/** Redis' command counters (INFO commandstats): every command, those Lua scripts made included, and the script calls. */
async function redisCalls(port: number): Promise<{ commands: number; scripts: number }> {
  const { stdout } = await execFileAsync('redis-cli', ['-p', String(port), 'INFO', 'commandstats'], { timeout: 10_000 });
  let commands = 0;
  let scripts = 0;
  for (const m of stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const [, name, calls] = m;
    if (name === 'info' || name.startsWith('command')) continue; // this probe's own
    commands += Number(calls);
    if (/^(evalsha|eval|fcall)(_ro)?$/.test(name)) scripts += Number(calls);
  }
  return { commands, scripts };
}

async function startRedis(): Promise<number> {
  const port = await freePort(25900, takenPorts);
  const redis = await startRedisServer(port);
  redises.add(redis);
  return port;
}

function stopRedis(port: number) {
  for (const r of redises) {
    if (r.spawnargs.includes(String(port))) {
      r.kill();
      redises.delete(r);
    }
  }
}

/** An edge's settings on the private Redis; each its own relay port (the data relay between replicas, on with Redis). */
const clusterEnv = async (redisPort: number, prefix: string, replica: string): Promise<Record<string, string>> => ({
  REDIS_URL: `redis://127.0.0.1:${redisPort}`,
  FTP_REDIS_PREFIX: prefix,
  FTP_REPLICA_ID: replica,
  FTP_RELAY_PORT: String(await freePort(25800, takenPorts)),
  FTP_UPLOAD_EVENTS: 'off',
});

// ---------------------------------------------------------------------------------------------------------------
// Parts 1 and 2: one session, one big upload then its download

interface Transfer {
  mibPerSec: number;
  seconds: number;
  /** The edge's CPU seconds per GiB moved (all its threads). */
  cpuSecPerGiB: number;
  redis?: { commands: number; scripts: number };
}

/**
 * Logs in as `account`, warms up (a smaller upload and download), then times one STOR of `bytes` and one RETR of it,
 * each after a `sync`; with `redisPort`, the Redis commands of each. Checks the size on disk and the bytes received.
 */
async function bigTransfers(server: RunningServer, account: Account, bytes: number, tag: string, redisPort?: number): Promise<{ upload: Transfer; download: Transfer }> {
  const client = await FtpClient.open(server.host, server.port, settings.opTimeoutMs);
  try {
    await client.login(account.user, account.password);
    await client.command('TYPE I', 200);
    const name = `big-${tag}.bin`;
    const warm = `warm-${tag}.bin`;
    await client.stor(warm, { chunk: PATTERN, bytes: settings.warmMiB * MiB });
    await client.retr(warm);

    const timed = async (work: () => Promise<unknown>): Promise<Transfer> => {
      syncDisks();
      const before = redisPort === undefined ? undefined : await redisCalls(redisPort);
      const meter = startCpuMeter(server);
      const start = process.hrtime.bigint();
      await work();
      const s = seconds(start);
      const cpu = meter.stop();
      const after = redisPort === undefined ? undefined : await redisCalls(redisPort);
      return {
        seconds: s,
        mibPerSec: bytes / MiB / s,
        cpuSecPerGiB: (((cpu.serverPct ?? NaN) / 100) * s) / (bytes / (1024 * MiB)),
        redis: before && after ? { commands: after.commands - before.commands, scripts: after.scripts - before.scripts } : undefined,
      };
    };
    const upload = await timed(() => client.stor(name, { chunk: PATTERN, bytes }));
    const onDisk = statSync(join(server.root, name)).size;
    if (onDisk !== bytes) throw new Error(`${server.name}: ${name} is ${onDisk} bytes on disk, expected ${bytes}`);
    let got = 0;
    const download = await timed(async () => (got = (await client.retr(name)).bytes));
    if (got !== bytes) throw new Error(`${server.name}: downloaded ${got} bytes of ${name}, expected ${bytes}`);
    await client.command(`DELE ${name}`, 250);
    await client.command(`DELE ${warm}`, 250);
    await client.quit();
    return { upload, download };
  } finally {
    client.close();
  }
}

async function beforeAfter(): Promise<string> {
  const baseline = { name: `baseline ${settings.baseline}`, entry: [baselineBundle(settings.baseline)] };
  const edges = [baseline, { name: 'this code', entry: edgeEntry() }, { name: 'this code (A/A)', entry: edgeEntry() }];
  const dir = mkdtempSync(join(tmpdir(), 'bench-limits-1-'));
  const samples = new Map<string, { upload: Transfer; download: Transfer }[]>(edges.map((e) => [e.name, []]));
  try {
    const user = createBenchUser(dir);
    for (let round = 0; round < settings.repeat; round++) {
      for (let i = 0; i < edges.length; i++) {
        const edge = edges[(i + round) % edges.length];
        const server = await startEdge(edge.name, dir, user, 0, edge.entry, {});
        try {
          const result = await bigTransfers(server, { user: 'bench', password: user.password }, settings.bigMiB * MiB, `r${round}`);
          samples.get(edge.name)!.push(result);
          log(`round ${round + 1} ${edge.name.padEnd(18)} download ${fmt(result.download.mibPerSec)} MiB/s, upload ${fmt(result.upload.mibPerSec)} MiB/s`);
        } finally {
          edgeOutput(server, `round ${round + 1}`);
          await stopEdge(server);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const of = (name: string, dir: 'upload' | 'download') => samples.get(name)!.map((s) => s[dir].mibPerSec);
  const ratio = (name: string, dir: 'upload' | 'download') => median(of(name, dir))! / median(of(baseline.name, dir))!;
  const rows = edges.map((e) => [
    e.name,
    spread(of(e.name, 'download')),
    spread(of(e.name, 'upload')),
    spread(samples.get(e.name)!.map((s) => s.download.cpuSecPerGiB), 2),
    spread(samples.get(e.name)!.map((s) => s.upload.cpuSecPerGiB), 2),
    e === baseline ? '' : ratio(e.name, 'download').toFixed(3),
    e === baseline ? '' : ratio(e.name, 'upload').toFixed(3),
  ]);
  const verdict = ['download', 'upload']
    .map((d) => {
      const r = ratio('this code', d as 'upload' | 'download');
      return `${d} ${((r - 1) * 100).toFixed(1)} % (${Math.abs(r - 1) <= 0.03 ? 'within' : 'OUTSIDE'} 3 %)`;
    })
    .join(', ');
  return [
    `1. Unlimited session, before vs after (one edge, embedded, no fsync; ${settings.bigMiB} MiB each way, MiB/s)`,
    table(['edge', 'download MiB/s', 'upload MiB/s', 'edge CPU s/GiB down', 'edge CPU s/GiB up', 'down vs base', 'up vs base'], rows, [false, true, true, true, true, true, true]),
    `this code / baseline: ${verdict}; the A/A row shows the noise floor`,
  ].join('\n');
}

async function headroom(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-limits-2-'));
  const redisPort = await startRedis();
  const accounts = ['unlimited', 'roomy'] as const;
  const samples = new Map<string, { upload: Transfer; download: Transfer }[]>(accounts.map((a) => [a, []]));
  try {
    const user = createBenchUser(dir);
    addLimitedUsers(user, { roomy: { bandwidth_down: settings.roomy, bandwidth_up: settings.roomy } });
    for (let round = 0; round < settings.repeat; round++) {
      const env = { ...(await clusterEnv(redisPort, `bench-limits-${randomBytes(4).toString('hex')}:`, 'edge-1')), FTP_ZERO_COPY: 'off' };
      const server = await startEdge('this code, streams', dir, user, 0, edgeEntry(), env);
      try {
        for (let i = 0; i < accounts.length; i++) {
          const who = accounts[(i + round) % accounts.length];
          const account = { user: who === 'unlimited' ? 'bench' : who, password: user.password };
          const result = await bigTransfers(server, account, settings.bigMiB * MiB, `r${round}-${who}`, redisPort);
          samples.get(who)!.push(result);
          log(
            `round ${round + 1} ${who.padEnd(9)} download ${fmt(result.download.mibPerSec)} MiB/s (${result.download.redis?.commands} Redis commands), upload ${fmt(result.upload.mibPerSec)} MiB/s (${result.upload.redis?.commands})`,
          );
        }
      } finally {
        edgeOutput(server, `round ${round + 1}`);
        await stopEdge(server);
      }
    }
  } finally {
    stopRedis(redisPort);
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = accounts.map((who) => {
    const list = samples.get(who)!;
    const perSec = (d: 'upload' | 'download') => list.map((s) => s[d].redis!.commands / s[d].seconds);
    const perMiB = (d: 'upload' | 'download') => list.map((s) => s[d].redis!.commands / settings.bigMiB);
    const scripts = (d: 'upload' | 'download') => list.map((s) => s[d].redis!.scripts);
    return [
      who === 'unlimited' ? 'unlimited' : `bandwidth_down/up ${settings.roomy / 1e9} GB/s`,
      spread(list.map((s) => s.download.mibPerSec)),
      spread(list.map((s) => s.upload.mibPerSec)),
      spread(list.map((s) => s.download.cpuSecPerGiB), 2),
      spread(list.map((s) => s.upload.cpuSecPerGiB), 2),
      `${spread(perSec('download'))} / ${spread(perSec('upload'))}`,
      `${spread(perMiB('download'), 2)} / ${spread(perMiB('upload'), 2)}`,
      `${spread(scripts('download'), 0)} / ${spread(scripts('upload'), 0)}`,
    ];
  });
  const ratio = (d: 'upload' | 'download') => median(samples.get('roomy')!.map((s) => s[d].mibPerSec))! / median(samples.get('unlimited')!.map((s) => s[d].mibPerSec))!;
  return [
    `2. Cost of the limiter when it does not bind (this code, one edge on Redis, FTP_ZERO_COPY=off; ${settings.bigMiB} MiB each way)`,
    table(
      ['user', 'download MiB/s', 'upload MiB/s', 'edge CPU s/GiB down', 'edge CPU s/GiB up', 'Redis cmds/s down / up', 'cmds per MiB down / up', 'script calls down / up'],
      rows,
      [false, true, true, true, true, true, true, true],
    ),
    `limited / unlimited: download ${ratio('download').toFixed(3)}, upload ${ratio('upload').toFixed(3)}. Redis commands count those Lua scripts made; the unlimited row is the edge's own background (heartbeats, leases).`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Part 3: sessions of one capped user on several replicas

/** One running capped transfer: the bytes it has moved so far, and abort() (ABOR, then the sockets closed). */
interface Flow {
  bytes(): number;
  /** Why the transfer stopped before it was asked to, if it did. */
  ended(): string | undefined;
  abort(): Promise<string | undefined>;
}

async function openSession(server: RunningServer, account: Account): Promise<{ client: FtpClient; port: number }> {
  const client = await FtpClient.open(server.host, server.port, settings.opTimeoutMs);
  try {
    await client.login(account.user, account.password);
    await client.command('TYPE I', 200);
    const reply = await client.command('EPSV', 229);
    const m = /\(\|\|\|(\d+)\|\)/.exec(reply.text);
    if (!m) throw new Error(`EPSV reply without a port: ${reply.text}`);
    return { client, port: Number(m[1]) };
  } catch (err) {
    client.close();
    throw err;
  }
}

function dialData(host: string, port: number, onBytes?: (n: number) => void): Promise<Socket> {
  const scratch = Buffer.allocUnsafe(256 * 1024);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      noDelay: true,
      onread: onBytes ? { buffer: scratch, callback: (n: number) => (onBytes(n), true) } : undefined,
    });
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`data connect ${port} timed out`))), settings.opTimeoutMs);
    socket.once('error', (err) => (clearTimeout(timer), reject(err)));
    socket.once('connect', () => (clearTimeout(timer), resolve(socket)));
  });
}

/** ABOR on the control connection: 426 then 226 expected (bounded), then both connections closed. */
async function abortTransfer(client: FtpClient, data: Socket): Promise<string | undefined> {
  client.send('ABOR');
  const codes: number[] = [];
  let problem: string | undefined;
  const end = Date.now() + ABOR_REPLY_MS;
  while (codes.length < 2 && Date.now() < end) {
    const reply = await Promise.race([client.read().catch((err: Error) => err), sleep(end - Date.now()).then(() => undefined)]);
    if (!reply) break;
    if (reply instanceof Error) {
      problem = `after ABOR: ${reply.message}`;
      break;
    }
    codes.push(reply.code);
  }
  if (!problem && (codes.length < 2 || codes[1] !== 226)) problem = `ABOR answered ${codes.join(', ') || 'nothing'} (expected 426, 226)`;
  data.destroy();
  await client.quit().catch(() => client.close());
  return problem;
}

async function startDownload(server: RunningServer, account: Account, file: string): Promise<Flow> {
  const { client, port } = await openSession(server, account);
  let received = 0;
  let ended: string | undefined;
  const data = await dialData(server.host, port, (n) => (received += n));
  data.on('end', () => (ended ??= 'the download ended (the whole file: the cap did not hold?)'));
  data.on('error', (err) => (ended ??= `data connection: ${err.message}`));
  client.send(`RETR ${file}`);
  client.expect(await client.read(), [125, 150], `RETR ${file}`);
  return {
    bytes: () => received,
    ended: () => ended,
    abort: () => abortTransfer(client, data),
  };
}

async function startUpload(server: RunningServer, account: Account, name: string, maxBytes: number): Promise<Flow> {
  const { client, port } = await openSession(server, account);
  const data = await dialData(server.host, port);
  let ended: string | undefined;
  data.on('error', (err) => (ended ??= `data connection: ${err.message}`));
  data.on('close', () => (ended ??= 'the data connection closed'));
  client.send(`STOR ${name}`);
  client.expect(await client.read(), [125, 150], `STOR ${name}`);
  const state = { stopped: false };
  // Writes the pattern with backpressure until stopped, closed or maxBytes (bounded: each wait is at most 1 s).
  const pumping = (async () => {
    let sent = 0;
    while (!state.stopped && !data.destroyed && sent < maxBytes) {
      sent += PATTERN.length;
      if (data.write(PATTERN)) continue;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          data.off('drain', done);
          data.off('close', done);
          resolve();
        };
        const timer = setTimeout(done, 1000);
        data.on('drain', done);
        data.on('close', done);
      });
    }
    if (sent >= maxBytes) ended ??= `the upload reached ${maxBytes / MiB} MiB (the cap did not hold?)`;
  })();
  // What went past the edge's gate and onto its disk: the partial file beside the target.
  const partial = join(server.root, partialNameFor(name));
  const onDisk = () => {
    try {
      return statSync(partial).size;
    } catch {
      return 0;
    }
  };
  return {
    bytes: onDisk,
    ended: () => ended,
    abort: async () => {
      state.stopped = true;
      await pumping;
      return abortTransfer(client, data);
    },
  };
}

interface CapSample {
  totalMiBps: number;
  perSession: number[];
  commandsPerSec: number;
  scriptsPerSec: number;
}

/** `count` sessions of `account` on edges 1..count, moving bytes for capSeconds; what moved after SKIP_MS. */
async function capRun(edges: RunningServer[], redisPort: number, direction: 'download' | 'upload', count: number, account: Account, tag: string): Promise<CapSample> {
  const started = await Promise.allSettled(
    edges
      .slice(0, count)
      .map((edge, i) =>
        direction === 'download' ? startDownload(edge, account, 'capped.bin') : startUpload(edge, account, `up-${tag}-${i}.bin`, settings.capFileMiB * MiB),
      ),
  );
  const flows = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(flows.map((f) => f.abort().catch(() => undefined)));
    throw failed.reason;
  }
  let sample: CapSample;
  try {
    await sleep(SKIP_MS);
    const t0 = process.hrtime.bigint();
    const b0 = flows.map((f) => f.bytes());
    const r0 = await redisCalls(redisPort);
    await sleep(settings.capSeconds * 1000 - SKIP_MS);
    const b1 = flows.map((f) => f.bytes());
    const s = seconds(t0);
    const r1 = await redisCalls(redisPort);
    const perSession = b1.map((b, i) => (b - b0[i]) / MiB / s);
    sample = {
      totalMiBps: perSession.reduce((a, b) => a + b, 0),
      perSession,
      commandsPerSec: (r1.commands - r0.commands) / s,
      scriptsPerSec: (r1.scripts - r0.scripts) / s,
    };
  } finally {
    const problems = await Promise.all(flows.map(async (f, i) => [f.ended(), await f.abort().catch((err: Error) => err.message)].filter(Boolean).map((p) => `session on replica ${i + 1}: ${p}`)));
    for (const p of problems.flat()) failures.push(`${direction} ${count} session(s), ${tag}: ${p}`);
  }
  for (const edge of edges) {
    const problem = await serves(edge);
    if (problem) failures.push(`after the ${direction} abort (${count} session(s), ${tag}): ${problem}`);
  }
  return sample;
}

async function sharedCap(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-limits-3-'));
  const redisPort = await startRedis();
  const cap = Math.round(settings.capMiBps * MiB);
  const edges: RunningServer[] = [];
  const samples = new Map<string, CapSample[]>();
  let idle = { commands: NaN, scripts: NaN };
  try {
    const user = createBenchUser(dir);
    addLimitedUsers(user, { 'capped-down': { bandwidth_down: cap }, 'capped-up': { bandwidth_up: cap } });
    mkdirSync(join(user.dataDir, 'bench'), { recursive: true });
    writeRandomFile(join(user.dataDir, 'bench', 'capped.bin'), settings.capFileMiB * MiB);
    const prefix = `bench-limits-${randomBytes(4).toString('hex')}:`;
    // Started together; the finally below stops those that came up even when another did not.
    const starts = await Promise.allSettled(
      Array.from({ length: REPLICAS }, async (_, i) => startEdge(`replica ${i + 1}`, dir, user, i, edgeEntry(), await clusterEnv(redisPort, prefix, `replica-${i + 1}`))),
    );
    for (const s of starts) if (s.status === 'fulfilled') edges.push(s.value);
    const failed = starts.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    // What the idle edges cost Redis (heartbeats, cluster membership): the floor under the figures below.
    const idle0 = await redisCalls(redisPort);
    await sleep(3000);
    const idle1 = await redisCalls(redisPort);
    idle = { commands: (idle1.commands - idle0.commands) / 3, scripts: (idle1.scripts - idle0.scripts) / 3 };
    for (let round = 0; round < settings.repeat; round++) {
      for (const direction of ['download', 'upload'] as const) {
        const account = { user: direction === 'download' ? 'capped-down' : 'capped-up', password: user.password };
        for (let count = 1; count <= REPLICAS; count++) {
          const sample = await capRun(edges, redisPort, direction, count, account, `r${round + 1}`);
          const key = `${direction}|${count}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          log(
            `round ${round + 1} ${direction.padEnd(8)} ${count} session(s): ${fmt(sample.totalMiBps)} MiB/s (${sample.perSession.map((v) => fmt(v)).join(' + ')}), cap ${settings.capMiBps}, Redis ${fmt(sample.commandsPerSec)} cmds/s`,
          );
          await sleep(1000); // the user's bucket refills before the next run
        }
      }
    }
  } finally {
    for (const edge of edges) edgeOutput(edge, 'part 3');
    await Promise.all(edges.map(stopEdge));
    stopRedis(redisPort);
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: string[][] = [];
  for (const direction of ['download', 'upload'] as const) {
    for (let count = 1; count <= REPLICAS; count++) {
      const list = samples.get(`${direction}|${count}`) ?? [];
      const perSession = Array.from({ length: count }, (_, i) => fmt(median(list.map((s) => s.perSession[i]))));
      rows.push([
        direction,
        `${count} (replica${count > 1 ? 's' : ''} ${Array.from({ length: count }, (_, i) => i + 1).join(', ')})`,
        spread(list.map((s) => s.totalMiBps)),
        spread(list.map((s) => s.totalMiBps / settings.capMiBps), 3),
        perSession.join(' / '),
        spread(list.map((s) => s.commandsPerSec)),
        spread(list.map((s) => s.scriptsPerSec)),
      ]);
    }
  }
  const windowS = settings.capSeconds - SKIP_MS / 1000;
  return [
    `3. Shared cap across replicas (3 edges on one Redis, cap ${settings.capMiBps} MiB/s per direction; bytes from t=2 s to t=${settings.capSeconds} s, ${windowS} s)`,
    table(
      ['direction', 'sessions', 'total MiB/s', 'total / cap', 'per session MiB/s (medians)', 'Redis cmds/s', 'script calls/s'],
      rows,
      [false, false, true, true, true, true, true],
    ),
    `Redis with the 3 edges idle: ${fmt(idle.commands)} cmds/s, ${fmt(idle.scripts)} script calls/s. Downloads: bytes the client received; uploads: bytes in the partial files on disk.`,
    'Every edge served a login after each ABOR unless listed under FAILURES.',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const version = codeVersion();
  console.log(`this code: ${version.commit}`);
  if (version.dirty.length) console.log(`  + ${version.dirty.length} uncommitted files outside test/: ${version.dirty.join(', ')}`);
  console.log(`edge: ${edgeEntry().join(' ')}; ${settings.repeat} round(s); parts: ${[...settings.parts].join(', ')}`);
  console.log(`machine busy before the run (bench idle, 2 s): ${await backgroundLoad()} % of one core`);
  for (let i = 0; i < REPLICAS; i++) await checkRangeFree(pasvRange(i), `edge ${i + 1}`);

  const reports: string[] = [];
  if (settings.parts.has('before-after')) reports.push(await beforeAfter());
  if (settings.parts.has('headroom')) reports.push(await headroom());
  if (settings.parts.has('shared')) reports.push(await sharedCap());

  console.log('');
  console.log(reports.join('\n\n'));
  console.log('');
  console.log(`medians (min–max) over ${settings.repeat} round(s)`);
  console.log(`machine busy after the run (bench idle, 2 s): ${await backgroundLoad()} % of one core`);
  return finishRun(failures, started);
}

runBench('limits', main);
