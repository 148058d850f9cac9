/**
 * `npm run bench:storage`: the edge's storage backends side by side (issue 17): local folders with fsync before 226
 * (the default), local without fsync, and S3 (a throw-away radosgw on loopback, test/support/radosgw.ts).
 *
 *   npm run bench:storage                                        # 3 rounds, 6-8 minutes
 *   BENCH_REPEAT=1 BENCH_BIG_MB=64 npm run bench:storage         # quick look
 *
 * Per round and backend (in an order that rotates per round), one fresh edge bundle on a private redis-server:
 *   - one STOR then one RETR of BENCH_BIG_MB MiB on one session (MiB/s), after a warm-up each way;
 *   - 4 KiB files up then down over one session (files/s): BENCH_SMALL_FILES on S3, BENCH_SMALL_FILES_LOCAL locally;
 *   - LIST of a folder of BENCH_LIST_FILES files (filled once per backend, straight to the disk or by PutObject);
 *   - the Redis commands (INFO commandstats) and S3 requests (radosgw's access log) per upload and per LIST;
 *   - S3 only: the edge's peak RSS (/proc/PID/status VmRSS) while BENCH_RSS_UPLOADS uploads of BENCH_RSS_MB MiB run
 *     at once, against base + uploads × 2 × part size (an upload holds at most two parts).
 * See test/bench/README.md ("Storage backends") for how to read it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { radosgwClientConfig, startRadosgw, type Radosgw } from '../support/radosgw';
import { finishRun, runBench } from './clusterBench';
import { backgroundLoad } from './cpu';
import { envInt, envList, MiB } from './env';
import { FtpClient } from './ftpClient';
import { fmt, log, seconds, spread, table } from './report';
import { sha256 } from '../support/programs';
import { checkRangeFree, codeVersion, createBenchUser, edgeEntry, freePort, killedAtExit, parseRange, startOurs, startRedisServer, stopServer, type RunningServer } from './servers';
import { deadline, SMALL_FILE_BYTES, smallPayloads, syncDisks } from './workloads';

const BACKENDS = ['local-fsync', 'local-nofsync', 's3'] as const;
type BackendName = (typeof BACKENDS)[number];

const settings = {
  backends: envList('BENCH_STORAGE_BACKENDS', BACKENDS.join(','), [...BACKENDS]) as BackendName[],
  repeat: envInt('BENCH_REPEAT', 3),
  bigMiB: envInt('BENCH_BIG_MB', 256),
  warmMiB: envInt('BENCH_WARM_MB', 32),
  smallS3: envInt('BENCH_SMALL_FILES', 300),
  smallLocal: envInt('BENCH_SMALL_FILES_LOCAL', 1000),
  listFiles: envInt('BENCH_LIST_FILES', 10_000),
  rssUploads: envInt('BENCH_RSS_UPLOADS', 8),
  rssMiB: envInt('BENCH_RSS_MB', 96),
  /** The edge's part size: FTP_S3_PART_SIZE passes through to it (startOurs copies the environment). */
  partSize: envInt('FTP_S3_PART_SIZE', 16 * MiB, 5 * MiB),
  pasv: parseRange(process.env.BENCH_STORAGE_PASV || '27000-27199'),
  opTimeoutMs: envInt('BENCH_OP_TIMEOUT_S', 60) * 1000,
  phaseTimeoutMs: envInt('BENCH_PHASE_TIMEOUT_S', 300) * 1000,
};
/** Warm-up files before the timed small-file loop. */
const SMALL_WARMUP = { local: 50, s3: 20 };
/** PutObjects in flight while filling the S3 listing folder. */
const FILL_BATCH = 64;
const RSS_SAMPLE_MS = 20;
/** The store's RAM cap is 2 GiB (memstore) and a full store hangs: the RSS phase is skipped past this. */
const STORE_BUDGET = 1.75 * 1024 * MiB;
const LIST_FOLDER = 'list';
/** After a garbage collection the store holds only the small files and the listing folder: well under this. */
const GC_SETTLED_BYTES = 16 * MiB;
const GC_SETTLE_MS = 15_000;
/** How long each fresh edge's own Redis traffic is measured with no session (heartbeats, cluster state). */
const IDLE_MS = 2000;
const PATTERN = randomBytes(MiB);

const started = Date.now();
const failures: string[] = [];
const takenPorts = new Set<number>();
// radosgw's daemons go with processes.ts's own exit hook.
const { servers, redises } = killedAtExit();
const execFileAsync = promisify(execFile);

// ---------------------------------------------------------------------------------------------------------------
// Counters: Redis commands, S3 requests, RSS

/** Calls per command Redis ran (INFO commandstats; those Lua scripts made included), without this probe's own. */
async function redisCommands(port: number): Promise<Record<string, number>> {
  const { stdout } = await execFileAsync('redis-cli', ['-p', String(port), 'INFO', 'commandstats'], { timeout: 10_000 });
  const calls: Record<string, number> = {};
  for (const m of stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== 'info' && !m[1].startsWith('command')) calls[m[1]] = Number(m[2]);
  return calls;
}

/** Calls per command from `before` to `after`, those that changed. */
function redisDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).flatMap(([name, n]) => (n > (before[name] ?? 0) ? [[name, n - (before[name] ?? 0)]] : [])));
}

/** The S3 operation of one access-log request line: the SDK's `x-id`, else the method and the query's marker. */
function operationOf(method: string, target: string): string {
  const query = target.includes('?') ? target.slice(target.indexOf('?') + 1) : '';
  const xId = /(?:^|&)x-id=(\w+)/.exec(query);
  if (xId) return xId[1];
  const has = (param: string) => new RegExp(`(?:^|&)${param}(?:=|&|$)`).test(query);
  const objectPath = /^\/[^/?]+\/[^?]+/.test(target);
  if (method === 'GET' && has('list-type')) return 'ListObjectsV2';
  if (method === 'GET' && has('uploads')) return 'ListMultipartUploads';
  if (method === 'GET' && has('uploadId')) return 'ListParts';
  if (method === 'POST' && has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'POST' && has('delete')) return 'DeleteObjects';
  if (method === 'PUT' && has('partNumber')) return 'UploadPart';
  if (method === 'DELETE' && has('uploadId')) return 'AbortMultipartUpload';
  if (method === 'HEAD') return objectPath ? 'HeadObject' : 'HeadBucket';
  if (method === 'GET' && objectPath) return 'GetObject';
  if (method === 'PUT' && objectPath) return 'PutObject';
  if (method === 'DELETE' && objectPath) return 'DeleteObject';
  return `${method} ${query || '(bucket)'}`;
}

/**
 * S3 requests counted from radosgw's access log (beast writes one line per request at debug_rgw 1, the default):
 * mark() sends a HeadObject of a unique key and waits until its line is in the log; the requests between two marks are
 * the edge's (nothing else talks to this radosgw meanwhile), counted by operation.
 */
function s3RequestLog(rgw: Radosgw, s3: S3Client, bucket: string) {
  const file = join(rgw.dir, 'log', 'client.rgw.log');
  let marks = 0;
  const readFrom = (offset: number) => {
    const size = statSync(file).size;
    const buffer = Buffer.alloc(Math.max(0, size - offset));
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buffer, 0, buffer.length, offset);
    } finally {
      closeSync(fd);
    }
    return buffer.toString('utf8');
  };
  /** The log offset just after the mark's line. */
  async function mark(): Promise<number> {
    const key = `bench-mark-${process.pid}-${++marks}`;
    const from = Math.max(0, statSync(file).size - 64 * 1024);
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined); // 404 expected
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const text = readFrom(from);
      const at = text.indexOf(`/${key} `);
      if (at >= 0) return from + Buffer.byteLength(text.slice(0, text.indexOf('\n', at) + 1));
      await sleep(50);
    }
    throw new Error(`radosgw's access log did not show request ${key} within 10 s`);
  }
  /** Requests by operation between the offset `since` (a mark) and a new mark. */
  async function since(offset: number): Promise<Record<string, number>> {
    await mark(); // every request before it is in the log
    const ops: Record<string, number> = {};
    for (const m of readFrom(offset).matchAll(/beast: \S+: \S+ - \S+ \[[^\]]+\] "(\w+) (\S+) HTTP[^"]*"/g)) {
      if (m[2].includes('/bench-mark-')) continue;
      const op = operationOf(m[1], m[2]);
      ops[op] = (ops[op] ?? 0) + 1;
    }
    return ops;
  }
  return { mark, since };
}
type S3Log = ReturnType<typeof s3RequestLog>;
const total = (ops: Record<string, number>) => Object.values(ops).reduce((a, b) => a + b, 0);
const perOp = (ops: Record<string, number>, n: number) =>
  Object.entries(ops)
    .sort((a, b) => b[1] - a[1])
    .map(([op, count]) => `${op} ${fmt(count / n, 2)}`)
    .join(', ');

/** VmRSS of `pid` in bytes, undefined once it is gone. */
function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backends

interface Backend {
  name: BackendName;
  fsync: boolean;
  env: Record<string, string>;
  /** Size of the published file `name` in the bench user's home, undefined if there is none. */
  sizeOf(name: string): Promise<number | undefined>;
  /** Creates `count` files in folder `folder` of the home, outside the edge. */
  fill(folder: string, count: number): Promise<void>;
  /** S3 only: the request log, and a garbage collection that gives deleted objects' RAM back to the store. */
  s3?: { log: S3Log; collect(): Promise<number> };
}

function localBackend(name: BackendName, fsync: boolean, home: string): Backend {
  return {
    name,
    fsync,
    env: {},
    sizeOf: async (file) => {
      try {
        return statSync(join(home, file)).size;
      } catch {
        return undefined;
      }
    },
    fill: async (folder, count) => {
      mkdirSync(join(home, folder), { recursive: true });
      for (let i = 0; i < count; i++) writeFileSync(join(home, folder, `f${String(i).padStart(5, '0')}.bin`), 'x');
    },
  };
}

async function s3Backend(rgw: Radosgw, bucket: string, prefix: string): Promise<Backend> {
  const s3 = new S3Client(radosgwClientConfig(rgw));
  const conf = join(rgw.dir, 'ceph.conf');
  const osdSocket = () => {
    const socket = readdirSync(join(rgw.dir, 'run')).find((f) => /^osd\.0\.\d+\.asok$/.test(f));
    if (!socket) throw new Error('no admin socket of the OSD');
    return join(rgw.dir, 'run', socket);
  };
  const home = `${prefix}bench/`;
  return {
    name: 's3',
    fsync: true,
    env: {
      FTP_STORAGE: 's3',
      FTP_S3_ENDPOINT: rgw.endpoint,
      FTP_S3_REGION: rgw.region,
      FTP_S3_BUCKET: bucket,
      FTP_S3_PREFIX: prefix,
      FTP_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: rgw.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
    },
    sizeOf: async (file) => {
      try {
        return (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${home}${file}` }))).ContentLength;
      } catch {
        return undefined;
      }
    },
    fill: async (folder, count) => {
      for (let first = 0; first < count; first += FILL_BATCH) {
        const batch = Array.from({ length: Math.min(FILL_BATCH, count - first) }, (_, j) => first + j);
        await Promise.all(batch.map((i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${home}${folder}/f${String(i).padStart(5, '0')}.bin`, Body: 'x' }))));
      }
    },
    s3: {
      log: s3RequestLog(rgw, s3, bucket),
      /** radosgw keeps a deleted object's data until its garbage collection (2 h by default): run it now; the store's bytes in use after. */
      collect: async () => {
        await execFileAsync('radosgw-admin', ['-c', conf, '-n', 'client.rgw', 'gc', 'process', '--include-all'], { cwd: rgw.dir, timeout: 120_000 });
        // The OSD's figure follows a few seconds later: wait for it to fall under GC_SETTLED_BYTES (bounded).
        const end = Date.now() + GC_SETTLE_MS;
        for (;;) {
          const { stdout } = await execFileAsync('ceph', ['-c', conf, 'daemon', osdSocket(), 'perf', 'dump'], { cwd: rgw.dir, timeout: 30_000 });
          const used = Number(/"stat_bytes_used":\s*(\d+)/.exec(stdout)?.[1] ?? NaN);
          if (!(used > GC_SETTLED_BYTES) || Date.now() > end) return used;
          await sleep(500);
        }
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// One round of one backend

interface Sample {
  upMiBps: number;
  downMiBps: number;
  smallUpPerSec: number;
  smallDownPerSec: number;
  listSeconds: number;
  listNames: number;
  /** Calls per command. */
  redisPerSmallUpload: Record<string, number>;
  redisPerBigUpload: Record<string, number>;
  bigUploadSeconds: number;
  /** Redis commands per second of the fresh edge with no session. */
  redisIdlePerSec: number;
  s3PerSmallUpload?: Record<string, number>;
  s3PerBigUpload?: Record<string, number>;
  s3PerList?: Record<string, number>;
  rss?: { base: number; peak: number; seconds: number };
}

interface Context {
  server: RunningServer;
  backend: Backend;
  redisPort: number;
  round: number;
}

async function session(server: RunningServer): Promise<FtpClient> {
  const client = await FtpClient.open(server.host, server.port, settings.opTimeoutMs);
  try {
    await client.login(server.user, server.password);
    await client.command('TYPE I', 200);
    return client;
  } catch (err) {
    client.close();
    throw err;
  }
}

async function ensureDir(client: FtpClient, path: string) {
  client.send(`MKD ${path}`);
  const reply = await client.read();
  if (reply.code !== 257 && reply.code !== 550) throw new Error(`MKD ${path}: ${reply.code} ${reply.text}`);
}

/** Runs `work` between two readings of Redis and of the S3 log; the time is work's alone. */
async function counted(ctx: Context, work: () => Promise<void>): Promise<{ seconds: number; redis: Record<string, number>; s3?: Record<string, number> }> {
  syncDisks();
  const s3From = await ctx.backend.s3?.log.mark();
  const redis0 = await redisCommands(ctx.redisPort);
  const start = process.hrtime.bigint();
  await work();
  const s = seconds(start);
  const redis1 = await redisCommands(ctx.redisPort);
  const s3 = s3From === undefined ? undefined : await ctx.backend.s3!.log.since(s3From);
  return { seconds: s, redis: redisDelta(redis0, redis1), s3 };
}

async function bigPhase(ctx: Context, sample: Partial<Sample>) {
  const { server, backend, round } = ctx;
  const client = await session(server);
  try {
    const bytes = settings.bigMiB * MiB;
    const name = `big-r${round}.bin`;
    const warm = `warm-r${round}.bin`;
    await client.stor(warm, { chunk: PATTERN, bytes: settings.warmMiB * MiB });
    await client.retr(warm);
    const up = await counted(ctx, () => client.stor(name, { chunk: PATTERN, bytes }));
    const size = await backend.sizeOf(name);
    if (size !== bytes) throw new Error(`${backend.name}: ${name} is ${size} bytes in the store, expected ${bytes}`);
    syncDisks();
    let got = 0;
    const start = process.hrtime.bigint();
    got = (await client.retr(name)).bytes;
    const downSeconds = seconds(start);
    if (got !== bytes) throw new Error(`${backend.name}: downloaded ${got} bytes of ${name}, expected ${bytes}`);
    await client.command(`DELE ${name}`, 250);
    await client.command(`DELE ${warm}`, 250);
    await client.quit();
    Object.assign(sample, { upMiBps: bytes / MiB / up.seconds, downMiBps: bytes / MiB / downSeconds, redisPerBigUpload: up.redis, bigUploadSeconds: up.seconds, s3PerBigUpload: up.s3 });
  } finally {
    client.close();
  }
}

async function smallPhase(ctx: Context, sample: Partial<Sample>) {
  const { server, backend, round } = ctx;
  const count = backend.s3 ? settings.smallS3 : settings.smallLocal;
  const warmCount = backend.s3 ? SMALL_WARMUP.s3 : SMALL_WARMUP.local;
  const payloads = smallPayloads(count);
  const client = await session(server);
  try {
    const dir = `small-r${round}`;
    const name = (i: number) => `${dir}/f${i}.bin`;
    await ensureDir(client, 'warm');
    await ensureDir(client, dir);
    for (let i = 0; i < warmCount; i++) await client.stor(`warm/s${round}-${i}.bin`, payloads[i % count]);
    for (let i = 0; i < warmCount; i++) await client.retr(`warm/s${round}-${i}.bin`);

    let check = deadline(settings.phaseTimeoutMs, `${backend.name} small-file upload`);
    const up = await counted(ctx, async () => {
      for (let i = 0; i < count; i++) {
        await client.stor(name(i), payloads[i]);
        if ((i & 31) === 0) check();
      }
    });
    const spots = new Set([0, 1, count >> 2, count >> 1, count - 1]);
    const kept = new Map<number, Buffer>();
    syncDisks();
    check = deadline(settings.phaseTimeoutMs, `${backend.name} small-file download`);
    const start = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const got = await client.retr(name(i), spots.has(i));
      if (got.bytes !== SMALL_FILE_BYTES) throw new Error(`${backend.name}: RETR ${name(i)} gave ${got.bytes} bytes`);
      if (got.data) kept.set(i, got.data);
      if ((i & 31) === 0) check();
    }
    const downSeconds = seconds(start);
    for (const [i, data] of kept) if (sha256(data) !== sha256(payloads[i])) throw new Error(`${backend.name}: ${name(i)} came back different (sha256)`);
    await client.quit();
    Object.assign(sample, {
      smallUpPerSec: count / up.seconds,
      smallDownPerSec: count / downSeconds,
      redisPerSmallUpload: Object.fromEntries(Object.entries(up.redis).map(([name, n]) => [name, n / count])),
      s3PerSmallUpload: up.s3 && Object.fromEntries(Object.entries(up.s3).map(([op, n]) => [op, n / count])),
    });
  } finally {
    client.close();
  }
}

async function listPhase(ctx: Context, sample: Partial<Sample>) {
  const client = await session(ctx.server);
  try {
    let names = 0;
    const listed = await counted(ctx, async () => {
      const { data } = await client.list(LIST_FOLDER);
      names = (data ?? Buffer.alloc(0))
        .toString('utf8')
        .split('\r\n')
        .filter((line) => /f\d{5}\.bin$/.test(line)).length;
    });
    if (names !== settings.listFiles) failures.push(`${ctx.backend.name} round ${ctx.round + 1}: LIST returned ${names} names, expected ${settings.listFiles}`);
    await client.quit();
    Object.assign(sample, { listSeconds: listed.seconds, listNames: names, s3PerList: listed.s3 });
  } finally {
    client.close();
  }
}

/** `rssUploads` sessions upload `rssMiB` MiB each at once; the edge's VmRSS sampled every RSS_SAMPLE_MS. */
async function rssPhase(ctx: Context, sample: Partial<Sample>) {
  const { server, round } = ctx;
  const clients = await Promise.all(Array.from({ length: settings.rssUploads }, () => session(server)));
  try {
    await sleep(500);
    const base = rssOf(server.pid) ?? NaN;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(server.pid) ?? 0)), RSS_SAMPLE_MS);
    const start = process.hrtime.bigint();
    try {
      await Promise.all(clients.map((c, i) => c.stor(`rss-r${round}-${i}.bin`, { chunk: PATTERN, bytes: settings.rssMiB * MiB })));
    } finally {
      clearInterval(sampler);
    }
    const s = seconds(start);
    peak = Math.max(peak, rssOf(server.pid) ?? 0);
    for (let i = 0; i < clients.length; i++) await clients[0].command(`DELE rss-r${round}-${i}.bin`, 250);
    await Promise.all(clients.map((c) => c.quit()));
    sample.rss = { base, peak, seconds: s };
  } finally {
    for (const c of clients) c.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------

async function startRedis(): Promise<number> {
  const port = await freePort(25900, takenPorts);
  redises.add(await startRedisServer(port));
  return port;
}

/** Tries per edge start: other work on the machine may bind a port of the range between our check and the edge's start. */
const START_ATTEMPTS = 3;

async function startEdge(backend: Backend, dir: string, user: ReturnType<typeof createBenchUser>, redisPort: number): Promise<RunningServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEdgeOnce(backend, dir, user, redisPort);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !/EADDRINUSE/.test((err as Error).message)) throw err;
      log(`${backend.name} edge did not start (a port taken meanwhile), again: ${(err as Error).message.split('\n')[0]}`);
      await sleep(1000);
    }
  }
}

async function startEdgeOnce(backend: Backend, dir: string, user: ReturnType<typeof createBenchUser>, redisPort: number): Promise<RunningServer> {
  const port = await freePort(25000, takenPorts);
  const server = await startOurs({
    name: backend.name,
    dir,
    port,
    pasvRange: settings.pasv,
    fsync: backend.fsync,
    user,
    env: {
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      FTP_REDIS_PREFIX: `bench-storage-${randomBytes(4).toString('hex')}:`,
      FTP_REPLICA_ID: 'edge-1',
      FTP_RELAY_PORT: String(await freePort(25800, takenPorts)),
      // The post-upload worker does not read object storage yet (the S3 edge warns to turn events off): off for all, alike.
      FTP_UPLOAD_EVENTS: 'off',
      ...backend.env,
    },
  });
  servers.add(server);
  return server;
}

function edgeOutput(server: RunningServer, where: string) {
  // The AWS SDK's warning about Node 20 is on every S3 edge's stderr: not worth a line.
  const lines = server
    .output()
    .split('\n')
    .filter((l) => l.trim() && !/NodeVersionSupportWarning|AWS SDK for JavaScript|node >=22|versions published|continue receiving|security updates|a\.co\/|trace-warnings/.test(l));
  if (lines.length) console.log(`  output of the ${server.name} edge (${where}), last lines:\n${lines.slice(-12).map((l) => `    ${l}`).join('\n')}`);
}

async function main(): Promise<number> {
  const version = codeVersion();
  console.log(`this code: ${version.commit}`);
  if (version.dirty.length) console.log(`  + ${version.dirty.length} uncommitted files outside test/: ${version.dirty.join(', ')}`);
  console.log(`edge: ${edgeEntry().join(' ')}; ${settings.repeat} round(s); backends: ${settings.backends.join(', ')}`);
  console.log(
    `big file ${settings.bigMiB} MiB (warm-up ${settings.warmMiB} MiB); 4 KiB files: ${settings.smallS3} on S3, ${settings.smallLocal} locally; LIST of ${settings.listFiles} files; RSS: ${settings.rssUploads} × ${settings.rssMiB} MiB at once, part size ${settings.partSize / MiB} MiB`,
  );
  console.log(`machine busy before the run (bench idle, 2 s): ${await backgroundLoad()} % of one core`);

  const dir = mkdtempSync(join(tmpdir(), 'bench-storage-'));
  const redisPort = await startRedis();
  const samples = new Map<BackendName, Sample[]>(settings.backends.map((b) => [b, []]));
  const storeUse: string[] = [];
  let rgw: Radosgw | undefined;
  let bucket: string | undefined;
  try {
    const user = createBenchUser(dir);
    const home = join(user.dataDir, 'bench');
    mkdirSync(home, { recursive: true });
    const backends: Backend[] = [];
    for (const name of settings.backends) {
      if (name === 's3') {
        rgw = await startRadosgw();
        bucket = await rgw.createBucket();
        log(`radosgw up in ${rgw.startupMs} ms at ${rgw.endpoint}, bucket ${bucket}`);
        // Its ports are a random block below the ephemeral range (the mon, then radosgw, then the OSD's): keep the edge's passive range clear of it.
        const rgwPort = Number(new URL(rgw.endpoint).port);
        if (rgwPort - 1 <= settings.pasv.max + 1 && rgwPort + 12 >= settings.pasv.min) {
          const width = settings.pasv.max - settings.pasv.min;
          settings.pasv = rgwPort > settings.pasv.min + width / 2 ? { min: rgwPort - 2 - width - 1, max: rgwPort - 3 } : { min: rgwPort + 13, max: rgwPort + 13 + width };
          log(`passive range moved to ${settings.pasv.min}-${settings.pasv.max}, clear of radosgw's ports`);
        }
        backends.push(await s3Backend(rgw, bucket, `bench-${randomBytes(3).toString('hex')}/`));
      } else backends.push(localBackend(name, name === 'local-fsync', home));
    }
    await checkRangeFree(settings.pasv, 'edge');
    // One listing folder per store (the two local edges share the data folder).
    for (const backend of backends) {
      if (backend.name === 'local-nofsync' && backends.some((b) => b.name === 'local-fsync')) continue;
      const start = process.hrtime.bigint();
      await backend.fill(LIST_FOLDER, settings.listFiles);
      log(`${backend.name}: ${settings.listFiles} files in /${LIST_FOLDER} written in ${fmt(seconds(start))} s`);
    }

    for (let round = 0; round < settings.repeat; round++) {
      for (let i = 0; i < backends.length; i++) {
        const backend = backends[(i + round) % backends.length];
        const server = await startEdge(backend, dir, user, redisPort);
        const ctx: Context = { server, backend, redisPort, round };
        const sample: Partial<Sample> = {};
        try {
          const idle0 = await redisCommands(redisPort);
          await sleep(IDLE_MS);
          sample.redisIdlePerSec = total(redisDelta(idle0, await redisCommands(redisPort))) / (IDLE_MS / 1000);
          await bigPhase(ctx, sample);
          if (backend.s3) storeUse.push(`round ${round + 1} after big: ${fmt((await backend.s3.collect()) / MiB)} MiB`);
          await smallPhase(ctx, sample);
          await listPhase(ctx, sample);
          if (backend.s3) {
            const used = await backend.s3.collect();
            if (used + settings.rssUploads * settings.rssMiB * MiB > STORE_BUDGET) {
              failures.push(`round ${round + 1}: RSS phase skipped, the store holds ${fmt(used / MiB)} MiB and would pass ${fmt(STORE_BUDGET / MiB)} MiB`);
            } else {
              await rssPhase(ctx, sample);
              storeUse.push(`round ${round + 1} after RSS: ${fmt((await backend.s3.collect()) / MiB)} MiB`);
            }
          }
          samples.get(backend.name)!.push(sample as Sample);
          log(
            `round ${round + 1} ${backend.name.padEnd(13)} up ${fmt(sample.upMiBps)} / down ${fmt(sample.downMiBps)} MiB/s; 4 KiB up ${fmt(sample.smallUpPerSec)} / down ${fmt(sample.smallDownPerSec)} files/s; LIST ${fmt(sample.listSeconds, 2)} s (${sample.listNames} names)` +
              (sample.rss ? `; RSS ${fmt(sample.rss.base / MiB)} → peak ${fmt(sample.rss.peak / MiB)} MiB` : ''),
          );
        } catch (err) {
          failures.push(`${backend.name} round ${round + 1}: ${(err as Error).message}`);
          log(`round ${round + 1} ${backend.name}: FAILED ${(err as Error).message}`);
        } finally {
          edgeOutput(server, `round ${round + 1}`);
          await stopServer(server);
          servers.delete(server);
        }
      }
    }
  } finally {
    if (rgw && bucket) await rgw.deleteBucket(bucket).catch((err: Error) => failures.push(`deleting the bucket: ${err.message}`));
    await rgw?.stop();
    for (const r of redises) r.kill();
    rmSync(dir, { recursive: true, force: true });
  }

  const names = settings.backends;
  const col = (pick: (s: Sample) => number | undefined, digits = 1) =>
    names.map((b) => spread(samples.get(b)!.map(pick).filter((v): v is number => v !== undefined && !Number.isNaN(v)), digits));
  const header = ['', ...names.map((b) => ({ 'local-fsync': 'local, fsync', 'local-nofsync': 'local, no fsync', s3: 'S3 (radosgw)' })[b])];
  const right = [false, ...names.map(() => true)];
  const throughput = table(
    header,
    [
      [`upload ${settings.bigMiB} MiB, 1 stream (MiB/s)`, ...col((s) => s.upMiBps)],
      [`download ${settings.bigMiB} MiB, 1 stream (MiB/s)`, ...col((s) => s.downMiBps)],
      [`4 KiB uploads, 1 session (files/s)`, ...col((s) => s.smallUpPerSec)],
      [`4 KiB downloads, 1 session (files/s)`, ...col((s) => s.smallDownPerSec)],
      [`LIST of ${settings.listFiles} files (s)`, ...col((s) => s.listSeconds, 2)],
      ['LIST: names returned (every round)', ...names.map((b) => [...new Set(samples.get(b)!.map((s) => String(s.listNames)))].join(', ') || 'n/a')],
    ],
    right,
  );
  const ops = (pick: (s: Sample) => Record<string, number> | undefined) => col((s) => (pick(s) ? total(pick(s)!) : undefined));
  const requests = table(
    header,
    [
      ['Redis commands per 4 KiB upload', ...col((s) => total(s.redisPerSmallUpload))],
      [`Redis commands per ${settings.bigMiB} MiB upload`, ...col((s) => total(s.redisPerBigUpload), 0)],
      [`  that upload's seconds`, ...col((s) => s.bigUploadSeconds, 2)],
      ['Redis commands/s, edge idle', ...col((s) => s.redisIdlePerSec)],
      ['S3 requests per 4 KiB upload', ...ops((s) => s.s3PerSmallUpload)],
      [`S3 requests per ${settings.bigMiB} MiB upload`, ...ops((s) => s.s3PerBigUpload)],
      [`S3 requests per LIST of ${settings.listFiles}`, ...ops((s) => s.s3PerList)],
    ],
    right,
  );
  const s3Samples = samples.get('s3') ?? [];
  const last = s3Samples.at(-1);
  const redisBreakdown = settings.backends.map((b) => {
    const s = samples.get(b)!.at(-1);
    return s ? `  ${b}: 4 KiB upload: ${perOp(s.redisPerSmallUpload, 1)}; ${settings.bigMiB} MiB upload: ${perOp(s.redisPerBigUpload, 1)}` : `  ${b}: n/a`;
  });
  const breakdown = last
    ? [
        `S3 requests by operation (last round): 4 KiB upload: ${perOp(last.s3PerSmallUpload ?? {}, 1)}`,
        `  ${settings.bigMiB} MiB upload: ${perOp(last.s3PerBigUpload ?? {}, 1)}`,
        `  LIST: ${perOp(last.s3PerList ?? {}, 1)}`,
      ]
    : [];
  const rssRows = s3Samples.flatMap((s, i) => {
    if (!s.rss) return [];
    const bound = s.rss.base + settings.rssUploads * 2 * settings.partSize;
    const mib = (n: number) => fmt(n / MiB, 0);
    const parts = (s.rss.peak - s.rss.base) / settings.rssUploads / settings.partSize;
    return [[`${i + 1}`, mib(s.rss.base), mib(s.rss.peak), mib(s.rss.peak - s.rss.base), fmt(parts, 2), mib(bound), s.rss.peak <= bound ? 'yes' : `NO (+${mib(s.rss.peak - bound)} MiB)`, fmt((settings.rssUploads * settings.rssMiB) / s.rss.seconds)]];
  });
  const rss = rssRows.length
    ? [
        `Edge RSS on S3 while ${settings.rssUploads} uploads of ${settings.rssMiB} MiB run at once (VmRSS every ${RSS_SAMPLE_MS} ms; bound = base + ${settings.rssUploads} × 2 × ${settings.partSize / MiB} MiB parts)`,
        table(['round', 'base MiB', 'peak MiB', 'peak − base', 'parts per upload', 'bound MiB', 'within', 'total MiB/s'], rssRows, [false, true, true, true, true, true, false, true]),
      ].join('\n')
    : '';

  console.log('');
  console.log(`Storage backends: one edge (bundle) at a time on a private Redis; medians (min–max) over ${settings.repeat} round(s)`);
  console.log(throughput);
  console.log('');
  console.log(requests);
  for (const line of breakdown) console.log(line);
  console.log('Redis commands by name (last round):');
  for (const line of redisBreakdown) console.log(line);
  console.log('Redis: INFO commandstats around the timed uploads (Lua-made commands included; FTP_UPLOAD_EVENTS=off). S3: radosgw\'s access log.');
  if (rss) console.log(`\n${rss}`);
  if (storeUse.length) console.log(`\nradosgw store in use after garbage collection: ${storeUse.join('; ')}`);
  console.log('');
  console.log(`machine busy after the run (bench idle, 2 s): ${await backgroundLoad()} % of one core`);
  return finishRun(failures, started);
}

runBench('storage', main);
