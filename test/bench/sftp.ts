/**
 * `npm run bench:sftp`: our SFTP server next to OpenSSH's sshd (internal-sftp), same run, same client (OpenSSH's
 * `sftp -b` with a key), plus a second sshd as an A/A control. See test/bench/README.md ("SFTP benchmark").
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, createReadStream, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { envInt, MiB } from './env';
import { CpuGroup, describeAccounting, machineTicks, startWindow, type Window } from './cgroup';
import { negotiated, percentile, runSftpOk, sessionLoop, writeBatch, type ClientOptions } from './sftpClient';
import { median, renderCpu, renderRows, rowControl, rowRatio, verdict, type CpuLine, type SftpRow } from './sftpReport';
import { codeVersion, freePort } from './servers';
import {
  killNow,
  publicKeyOf,
  REPO_ROOT,
  sshdVersion,
  sshKeygen,
  startEdge,
  startSshd,
  startTestServerProcess,
  stopServer,
  waitReady,
  type SftpServer,
} from './sftpServers';

const quick = process.env.BENCH_QUICK === '1';
const settings = {
  bigMiB: envInt('BENCH_BIG_MB', quick ? 128 : 1024),
  smallFiles: envInt('BENCH_SMALL_FILES', quick ? 200 : 2000),
  sessions: envInt('BENCH_SESSIONS', quick ? 200 : 1000),
  concurrency: envInt('BENCH_CONCURRENCY', 50),
  repeat: envInt('BENCH_REPEAT', 3),
  only: new Set((process.env.BENCH_SFTP_ONLY || 'big,small,sessions').split(',').map((s) => s.trim())),
  ciphers: (process.env.BENCH_SFTP_CIPHERS || 'default,aes128-gcm@openssh.com').split(',').map((s) => s.trim()).filter(Boolean),
  kex: process.env.BENCH_SFTP_KEX ?? 'curve25519-sha256',
  ours: (process.env.BENCH_SFTP_OURS || 'edge') as 'edge' | 'testserver',
  control: process.env.BENCH_SFTP_CONTROL !== '0',
  fsyncVariant: process.env.BENCH_SFTP_FSYNC !== '0',
  verify: process.env.BENCH_SFTP_VERIFY !== '0',
  profile: process.env.BENCH_PROFILE === '1',
  opTimeoutMs: envInt('BENCH_OP_TIMEOUT_S', 600) * 1000,
  sessionTimeoutMs: envInt('BENCH_SESSION_TIMEOUT_S', 60) * 1000,
  phaseTimeoutMs: envInt('BENCH_PHASE_TIMEOUT_S', 600) * 1000,
  out: resolve(process.env.BENCH_OUT || '.bench/sftp-results.json'),
  keepTmp: process.env.BENCH_KEEP_TMP === '1',
  tmpBase: process.env.BENCH_TMPDIR || tmpdir(),
};
for (const phase of settings.only) {
  if (!['big', 'small', 'sessions'].includes(phase)) throw new Error(`BENCH_SFTP_ONLY: unknown phase "${phase}" (big, small, sessions)`);
}
if (!['edge', 'testserver'].includes(settings.ours)) throw new Error('BENCH_SFTP_OURS must be edge or testserver');
const bigBytes = settings.bigMiB * MiB;
const MB = 1e6;
const SMALL_BYTES = 4096;

const servers: SftpServer[] = [];
const clientGroup = new CpuGroup('clients');
let tmp: string | undefined;
let cleaned = false;

function log(message: string) {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  await Promise.all(servers.map((s) => stopServer(s)));
  clientGroup.remove();
  if (tmp && !settings.keepTmp) rmSync(tmp, { recursive: true, force: true });
  else if (tmp) console.log(`temp folder kept: ${tmp}`);
}

process.on('exit', () => {
  for (const s of servers) killNow(s);
  clientGroup.remove();
  if (tmp && !settings.keepTmp && !cleaned) rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping servers`);
    void cleanup().finally(() => process.exit(130));
  });
}

const taken = new Set<number>();

function nativeCrypto(): string {
  try {
    const require = createRequire(join(REPO_ROOT, 'libs/sftp-session/package.json'));
    const crypto = require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean };
    const version = (require('ssh2/package.json') as { version: string }).version;
    return `ssh2 ${version}, native crypto binding (sshcrypto.node) ${crypto.bindingAvailable ? 'AVAILABLE and used' : 'NOT built (pure JS/OpenSSL fallbacks)'}`;
  } catch (err) {
    return `ssh2 not loadable: ${(err as Error).message}`;
  }
}

const syncDisks = () => execFileSync('sync', { timeout: 300_000 });

async function backgroundLoad(ms = 2000): Promise<number> {
  const a = machineTicks();
  await new Promise((r) => setTimeout(r, ms));
  const b = machineTicks();
  return Math.round(((b.busy - a.busy) * 10 * 1000) / ms) / 10;
}

function sha256File(file: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(file, { highWaterMark: MiB })
      .on('data', (d) => h.update(d))
      .on('end', () => res(h.digest('hex')))
      .on('error', rej);
  });
}
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The big source file: random 1 MiB chunks, each stamped with its index (so a reordering would show). */
function writeBigSource(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'w');
  try {
    const chunk = randomBytes(MiB);
    for (let i = 0; i < settings.bigMiB; i++) {
      chunk.writeUInt32BE(i, 0);
      writeSync(fd, chunk);
      h.update(chunk);
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

const pad = (i: number) => `f${String(i).padStart(5, '0')}`;

function preflight() {
  if (process.platform !== 'linux') throw new Error('needs Linux');
  if (process.getuid?.() !== 0) throw new Error('run as root: sshd must start as root (it logs the bench in as root, key only)');
  for (const bin of ['sftp', 'ssh', 'ssh-keygen']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) throw new Error(`${bin} not found (apt-get install openssh-client)`);
  }
  const fs = statfsSync(settings.tmpBase);
  const free = fs.bavail * fs.bsize;
  const need = (settings.only.has('big') ? 3 * bigBytes : 0) + 256 * MiB;
  if (free < need) throw new Error(`${settings.tmpBase} has ${(free / 2 ** 30).toFixed(1)} GiB free, the run needs ${(need / 2 ** 30).toFixed(1)} GiB (lower BENCH_BIG_MB)`);
}

/** Samples of every row, CPU windows of every (phase, server). */
const rows: SftpRow[] = [];
const cpuWindows = new Map<string, { phase: string; server: string; unit: string; units: number; windows: Window[] }>();
const failures: string[] = [];

function row(key: string, metric: string, unit: string, better: SftpRow['better'], target?: number, oursFrom = 'ours', secondary = false): SftpRow {
  const r: SftpRow = { key, metric, unit, better, target, oursFrom, secondary, samples: {} };
  rows.push(r);
  return r;
}
function record(r: SftpRow, server: string, value: number | undefined) {
  if (value === undefined || !Number.isFinite(value) || value <= 0) return;
  (r.samples[server] ??= []).push(value);
}
function recordCpu(phase: string, server: SftpServer, unit: string, units: number, w: Window) {
  const key = `${phase}\u0000${server.name}`;
  const entry = cpuWindows.get(key) ?? { phase, server: server.name, unit, units, windows: [] };
  entry.windows.push(w);
  cpuWindows.set(key, entry);
}

async function attempt<T>(label: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const message = `${label}: ${(err as Error).message}`;
    failures.push(message);
    log(`FAILED ${message}`);
    return undefined;
  }
}

/** Round r's order of the measured servers: rotated, so that none is always first (or last) after a phase change. */
function order<T>(list: T[], round: number): T[] {
  const k = (round - 1) % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

async function main() {
  preflight();
  const code = codeVersion();
  log(`measuring ${code.commit}${code.dirty.length ? ` + uncommitted changes in ${code.dirty.length} files outside test/` : ''}`);
  log(`CPU accounting: ${describeAccounting()}`);
  const loadBefore = await backgroundLoad();
  log(`background CPU before the run: ${loadBefore}% (of ${cpus().length * 100}%)`);
  tmp = mkdtempSync(join(settings.tmpBase, 'sftp-bench-'));
  const clientDir = join(tmp, 'client');
  mkdirSync(clientDir);
  // Every sftp/ssh this process spawns from now on is born in the client group (and this process is in it too).
  clientGroup.joinSelf();

  // One client key for all servers; with the stand-in, the harness generates it and accepts only that one.
  const useEdge = settings.ours === 'edge';
  const hostKey = join(tmp, 'ssh_host_ed25519_key');
  sshKeygen(hostKey, 'bench host key');
  const profileDir = join(dirname(settings.out), 'profiles');
  if (settings.profile) mkdirSync(profileDir, { recursive: true });
  const nodeArgs = settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];

  let keyFile = join(clientDir, 'id_ed25519');
  let ours!: SftpServer;
  let oursFsync: SftpServer | undefined;
  const baseClient = (key: string): ClientOptions => ({ keyFile: key, kex: settings.kex || undefined });
  if (useEdge) {
    sshKeygen(keyFile, 'bench client key');
    const pub = publicKeyOf(keyFile);
    log('starting ours: the edge (FTP_SFTP_PORT)');
    ours = await startEdge(
      { name: 'ours', dir: join(tmp, 'ours'), sftpPort: await freePort(22220, taken), ftpPort: await freePort(21220, taken), pasv: '32000-32009', hostKey, clientPublicKey: pub, fsync: false, nodeArgs },
      baseClient(keyFile),
    );
    servers.push(ours);
    if (settings.fsyncVariant && (settings.only.has('big') || settings.only.has('small'))) {
      oursFsync = await startEdge(
        { name: 'ours-fsync', dir: join(tmp, 'ours-fsync'), sftpPort: await freePort(22320, taken), ftpPort: await freePort(21320, taken), pasv: '32010-32019', hostKey, clientPublicKey: publicKeyOf(keyFile), fsync: true },
        baseClient(keyFile),
      );
      servers.push(oursFsync);
    }
  } else {
    log('starting ours: STAND-IN libs/sftp-session/src/testServer.ts (BENCH_SFTP_OURS=testserver)');
    const t = await startTestServerProcess('ours', nodeArgs);
    ours = t.server;
    servers.push(ours);
    keyFile = join(clientDir, 'id_ed25519');
    writeFileSync(keyFile, readFileSync(t.keyFile), { mode: 0o600 });
    await waitReady(ours, baseClient(keyFile), tmp, 30_000);
  }
  const clientPub = publicKeyOf(keyFile);
  const client = baseClient(keyFile);
  const openssh = await startSshd({ name: 'openssh', dir: join(tmp, 'openssh'), port: await freePort(22420, taken), hostKey, clientPublicKey: clientPub }, client);
  servers.push(openssh);
  let opensshB: SftpServer | undefined;
  if (settings.control) {
    opensshB = await startSshd({ name: 'openssh-b', dir: join(tmp, 'openssh-b'), port: await freePort(22520, taken), hostKey, clientPublicKey: clientPub }, client);
    servers.push(opensshB);
  }
  const measured = [ours, openssh, ...(opensshB ? [opensshB] : [])];
  for (const s of servers) log(`${s.name}: pid ${s.pid}, 127.0.0.1:${s.port}, cwd ${s.root}; ${s.describe}`);

  const emptyBatch = join(clientDir, 'empty.batch');
  writeBatch(emptyBatch, ['pwd']);
  const cipherOptions = (cipher: string): ClientOptions => (cipher === 'default' ? client : { ...client, cipher });
  const algorithms: Record<string, Record<string, string>> = {};
  for (const cipher of settings.ciphers) {
    for (const s of servers) (algorithms[cipher] ??= {})[s.name] = await negotiated(s, emptyBatch, cipherOptions(cipher));
  }
  for (const [cipher, byServer] of Object.entries(algorithms)) for (const [s, what] of Object.entries(byServer)) log(`negotiated (${cipher}) ${s}: ${what}`);

  /** Connect + auth + one request + quit: subtracted from transfer sessions so that they time the transfer. */
  const sessionOverheadMs = async (s: SftpServer, opts: ClientOptions) => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) times.push((await runSftpOk(s, emptyBatch, opts, 30_000)).ms);
    return median(times)!;
  };

  // ---- one big file, up and down -------------------------------------------------------------------------------
  if (settings.only.has('big')) {
    const source = join(clientDir, 'big.bin');
    log(`writing the ${settings.bigMiB} MiB source file`);
    const sourceHash = writeBigSource(source);
    for (const cipher of settings.ciphers) {
      const label = cipher === 'default' ? 'default cipher' : cipher.replace('@openssh.com', '');
      const up = row(`big_upload_${cipher}`, `upload ${settings.bigMiB} MiB, 1 stream, ${label}`, 'MB/s', 'higher', 0.8);
      const down = row(`big_download_${cipher}`, `download ${settings.bigMiB} MiB, 1 stream, ${label}`, 'MB/s', 'higher', 0.8);
      const upCpu = row(`big_upload_cpu_${cipher}`, `server CPU per MB, upload, ${label}`, 'ms/MB', 'lower');
      const downCpu = row(`big_download_cpu_${cipher}`, `server CPU per MB, download, ${label}`, 'ms/MB', 'lower');
      const upFsync = oursFsync ? row(`big_upload_fsync_${cipher}`, `upload ${settings.bigMiB} MiB, ${label}, ours with fsync`, 'MB/s', 'higher', 0.8, 'ours-fsync', true) : undefined;
      const opts = cipherOptions(cipher);
      for (let round = 1; round <= settings.repeat; round++) {
        for (const s of [...order(measured, round), ...(oursFsync ? [oursFsync] : [])]) {
          const remote = `big-${round}.bin`;
          const label2 = `big ${label} ${s.name} round ${round}`;
          log(`${label2} ...`);
          await attempt(label2, async () => {
            const overhead = await sessionOverheadMs(s, opts);
            const upBatch = join(clientDir, `up-${s.name}.batch`);
            writeBatch(upBatch, [`put ${source} ${remote}`]);
            syncDisks();
            let w = startWindow([s.group, clientGroup]);
            const u = await runSftpOk(s, upBatch, opts, settings.opTimeoutMs);
            let win = w.stop();
            const size = statSync(join(s.root, remote)).size;
            if (size !== bigBytes) throw new Error(`upload: ${size} bytes on disk, expected ${bigBytes}`);
            const upMBs = bigBytes / MB / ((u.ms - overhead) / 1000);
            record(s === oursFsync ? upFsync! : up, s.name, upMBs);
            if (s === openssh && upFsync) record(upFsync, s.name, upMBs);
            if (s !== oursFsync) record(upCpu, s.name, win.groups[s.name] / (bigBytes / MB));
            recordCpu(`upload ${label}`, s, 'MB', bigBytes / MB, win);
            let downMBs: number | undefined;
            if (s !== oursFsync) {
              const downBatch = join(clientDir, `down-${s.name}.batch`);
              writeBatch(downBatch, [`get ${remote} /dev/null`]);
              syncDisks();
              w = startWindow([s.group, clientGroup]);
              const d = await runSftpOk(s, downBatch, opts, settings.opTimeoutMs);
              win = w.stop();
              downMBs = bigBytes / MB / ((d.ms - overhead) / 1000);
              record(down, s.name, downMBs);
              record(downCpu, s.name, win.groups[s.name] / (bigBytes / MB));
              recordCpu(`download ${label}`, s, 'MB', bigBytes / MB, win);
              if (settings.verify && round === 1 && cipher === settings.ciphers[0]) {
                // Off the clock: the same download into a file, compared with the source.
                const local = join(clientDir, `verify-${s.name}.bin`);
                writeBatch(downBatch, [`get ${remote} ${local}`]);
                await runSftpOk(s, downBatch, opts, settings.opTimeoutMs);
                const [lsize, lhash] = [statSync(local).size, await sha256File(local)];
                rmSync(local, { force: true });
                if (lsize !== bigBytes || lhash !== sourceHash) throw new Error(`download verify: ${lsize} bytes, sha256 ${lhash.slice(0, 12)}… differs from the source`);
              }
            }
            log(`  up ${upMBs.toFixed(0)} MB/s${downMBs ? `, down ${downMBs.toFixed(0)} MB/s` : ''} (session overhead ${overhead.toFixed(0)} ms subtracted)`);
          });
          rmSync(join(s.root, remote), { force: true });
        }
      }
    }
    rmSync(source, { force: true });
  }

  // ---- many small files in one session ---------------------------------------------------------------------------
  const smallCipher = settings.ciphers[0];
  const smallOpts = cipherOptions(smallCipher);
  if (settings.only.has('small')) {
    const n = settings.smallFiles;
    const localSmall = join(clientDir, 'small');
    mkdirSync(localSmall);
    const payloads: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const p = randomBytes(SMALL_BYTES);
      payloads.push(p);
      writeFileSync(join(localSmall, pad(i)), p);
    }
    const up = row('small_upload', `${n} x 4 KiB uploads, 1 session`, 'files/s', 'higher', 1.0);
    const down = row('small_download', `${n} x 4 KiB downloads, 1 session`, 'files/s', 'higher', 1.0);
    const upFsync = oursFsync ? row('small_upload_fsync', `${n} x 4 KiB uploads, ours with fsync`, 'files/s', 'higher', 1.0, 'ours-fsync', true) : undefined;
    const warm = Math.max(20, Math.min(200, Math.floor(n / 10)));
    for (let round = 1; round <= settings.repeat; round++) {
      for (const s of [...order(measured, round), ...(oursFsync ? [oursFsync] : [])]) {
        const label = `small ${s.name} round ${round}`;
        log(`${label} ...`);
        await attempt(label, async () => {
          const dir = `small-${round}`;
          // Warm-up (untimed): a session of the same shape on another folder.
          const warmBatch = join(clientDir, `warm-${s.name}.batch`);
          writeBatch(warmBatch, [`-mkdir warm-${round}`, `cd warm-${round}`, `lcd ${localSmall}`, ...Array.from({ length: warm }, (_, i) => `put ${pad(i)}`)]);
          await runSftpOk(s, warmBatch, smallOpts, settings.opTimeoutMs);
          rmSync(join(s.root, `warm-${round}`), { recursive: true, force: true });
          const overhead = await sessionOverheadMs(s, smallOpts);

          const upBatch = join(clientDir, `small-up-${s.name}.batch`);
          writeBatch(upBatch, [`mkdir ${dir}`, `cd ${dir}`, `lcd ${localSmall}`, ...Array.from({ length: n }, (_, i) => `put ${pad(i)}`)]);
          syncDisks();
          let w = startWindow([s.group, clientGroup]);
          const u = await runSftpOk(s, upBatch, smallOpts, settings.opTimeoutMs);
          let win = w.stop();
          const remoteDir = join(s.root, dir);
          const names = readdirSync(remoteDir).filter((f) => f.startsWith('f'));
          if (names.length !== n) throw new Error(`upload: ${names.length} files on disk, expected ${n}`);
          for (const i of [0, 1, Math.floor(n / 2), n - 2, n - 1]) {
            if (sha256(readFileSync(join(remoteDir, pad(i)))) !== sha256(payloads[i])) throw new Error(`upload: ${dir}/${pad(i)} differs on disk`);
          }
          const upRate = n / ((u.ms - overhead) / 1000);
          record(s === oursFsync ? upFsync! : up, s.name, upRate);
          if (s === openssh && upFsync) record(upFsync, s.name, upRate);
          recordCpu('small uploads', s, 'file', n, win);
          let downRate: number | undefined;
          if (s !== oursFsync) {
            const localDown = join(clientDir, `dl-${s.name}-${round}`);
            mkdirSync(localDown);
            const downBatch = join(clientDir, `small-down-${s.name}.batch`);
            writeBatch(downBatch, [`cd ${dir}`, `lcd ${localDown}`, ...Array.from({ length: n }, (_, i) => `get ${pad(i)}`)]);
            syncDisks();
            w = startWindow([s.group, clientGroup]);
            const d = await runSftpOk(s, downBatch, smallOpts, settings.opTimeoutMs);
            win = w.stop();
            const got = readdirSync(localDown).length;
            if (got !== n) throw new Error(`download: ${got} files, expected ${n}`);
            for (const i of [0, 1, Math.floor(n / 2), n - 2, n - 1]) {
              if (sha256(readFileSync(join(localDown, pad(i)))) !== sha256(payloads[i])) throw new Error(`download: ${pad(i)} differs`);
            }
            rmSync(localDown, { recursive: true, force: true });
            downRate = n / ((d.ms - overhead) / 1000);
            record(down, s.name, downRate);
            recordCpu('small downloads', s, 'file', n, win);
          }
          log(`  up ${upRate.toFixed(0)} files/s${downRate ? `, down ${downRate.toFixed(0)} files/s` : ''}`);
        });
        rmSync(join(s.root, `small-${round}`), { recursive: true, force: true });
      }
    }
  }

  // ---- sessions/s ---------------------------------------------------------------------------------------------
  if (settings.only.has('sessions')) {
    const payload = randomBytes(SMALL_BYTES);
    for (const s of measured) writeFileSync(join(s.root, 'small.bin'), payload);
    const batch = join(clientDir, 'session.batch');
    writeBatch(batch, ['ls', 'get small.bin /dev/null', 'quit']);
    const what = `${settings.sessions} sessions, ${settings.concurrency} concurrent`;
    const rate = row('sessions_per_sec', `sessions/s (${what})`, 'sessions/s', 'higher', 2.0);
    const lat = (['p50', 'p95', 'p99'] as const).map((p) => ({ p, r: row(`session_latency_${p}`, `session latency ${p}`, 'ms', 'lower') }));
    const cpuPer = row('session_server_cpu', 'server CPU per session', 'ms', 'lower');
    const warmup = Math.max(settings.concurrency, Math.min(200, Math.floor(settings.sessions / 5)));
    const check = (r: { stdout: string }) => (r.stdout.includes('small.bin') ? undefined : `ls did not list small.bin: ${r.stdout.slice(0, 200)}`);
    for (let round = 1; round <= settings.repeat; round++) {
      for (const s of order(measured, round)) {
        const label = `sessions ${s.name} round ${round}`;
        log(`${label} ...`);
        await attempt(label, async () => {
          const limits = { timeoutMs: settings.sessionTimeoutMs, deadlineMs: settings.phaseTimeoutMs, check };
          const wu = await sessionLoop(s, batch, smallOpts, warmup, settings.concurrency, limits);
          if (wu.errors > 0) log(`  note: ${wu.errors} of ${wu.total} warm-up sessions failed, first: ${wu.firstErrors[0]}`);
          const w = startWindow([s.group, clientGroup]);
          const r = await sessionLoop(s, batch, smallOpts, settings.sessions, settings.concurrency, limits);
          const win = w.stop();
          if (r.errors > 0) throw new Error(`${r.errors} of ${r.total} sessions failed, first: ${r.firstErrors.join(' || ')}`);
          const perSec = r.total / (r.wallMs / 1000);
          const sorted = [...r.latencies].sort((a, b) => a - b);
          record(rate, s.name, perSec);
          for (const { p, r: lr } of lat) record(lr, s.name, percentile(sorted, Number(p.slice(1))));
          record(cpuPer, s.name, win.groups[s.name] / r.total);
          recordCpu('sessions', s, 'session', r.total, win);
          log(`  ${perSec.toFixed(1)} sessions/s, p50 ${percentile(sorted, 50)!.toFixed(0)} ms, p99 ${percentile(sorted, 99)!.toFixed(0)} ms; server ${(win.groups[s.name] / r.total).toFixed(1)} ms CPU/session, clients ${(win.groups.clients / r.total).toFixed(1)} ms CPU/session`);
        });
      }
    }
  }

  const oursDescribe = ours.describe;
  await cleanup();
  const loadAfter = await backgroundLoad();

  // ---- report ----------------------------------------------------------------------------------------------
  const cores = cpus().length;
  const cpuLines: CpuLine[] = [...cpuWindows.values()].map((e) => {
    const mean = (f: (w: Window) => number) => e.windows.reduce((a, w) => a + f(w), 0) / e.windows.length;
    return {
      phase: e.phase,
      server: e.server,
      unit: e.unit,
      units: e.units,
      wallS: mean((w) => w.wallMs) / 1000,
      serverMs: mean((w) => w.groups[e.server]),
      clientMs: mean((w) => w.groups.clients),
      benchMs: mean((w) => w.benchMs),
      machinePct: mean((w) => (100 * w.machineMs) / w.wallMs),
    };
  });
  console.log('');
  console.log(`SFTP benchmark: ours vs ${sshdVersion()} (internal-sftp) — loopback, ${cores} cores (${cpus()[0]?.model}), node ${process.version}, kernel ${release()}`);
  console.log(`Code: ${code.commit}${code.dirty.length ? ` + uncommitted changes in ${code.dirty.join(', ')}` : ''}`);
  console.log(`ours: ${oursDescribe}`);
  if (!useEdge) console.log('*** "ours" IS THE STAND-IN (libs/sftp-session test harness: ssh2 Server + serveSftp), NOT THE EDGE: no identity/cluster/limits/events/telemetry ***');
  console.log(`openssh, openssh-b: ${openssh.describe}`);
  console.log(`${nativeCrypto()}`);
  console.log(`Client: OpenSSH sftp -b (batch file, stdin /dev/null), ed25519 key, -o KexAlgorithms=${settings.kex || '(default)'} for every server; ciphers: ${settings.ciphers.join(', ')}`);
  for (const [cipher, byServer] of Object.entries(algorithms)) console.log(`  negotiated with ${cipher}: ${Object.entries(byServer).map(([s, w]) => `${s}: ${w}`).join('; ')}`);
  console.log(`CPU: ${describeAccounting()}; client = every sftp+ssh process and this bench process (its share in "(bench)").`);
  console.log(`Durability: sshd never fsyncs (the OpenSSH client does not ask for fsync@openssh.com); headline "ours" ${useEdge ? 'runs FTP_FSYNC_UPLOADS=false, the "ours with fsync" rows FTP_FSYNC_UPLOADS=true' : '(the stand-in) fsyncs every upload at CLOSE (local storage default; it has no switch), so its upload rows carry an fsync that sshd does not do'}.`);
  console.log(`Each figure is the median of ${settings.repeat} round(s); server order rotates per round. MB = 10^6 bytes. Transfer times exclude the session's set-up (median of 3 empty sessions, subtracted).`);
  console.log(`ratio = ours/openssh (throughput) or openssh/ours (latency, CPU): above 1 is better for ours. A/A = openssh-b vs openssh, same direction: the noise floor.`);
  const noisy = Math.max(loadBefore, loadAfter) > 10;
  console.log(`Background CPU (bench idle): ${loadBefore}% before, ${loadAfter}% after, of ${cores * 100}%${noisy ? ' -- WARNING: machine not idle, figures are noisy' : ''}.`);
  console.log('');
  console.log(renderRows(rows));
  console.log('* secondary row: context (ours with fsync against sshd, which does not fsync)');
  console.log('');
  console.log('CPU during the measured windows (mean over rounds; % of one core; server = its whole cgroup, client = sftp+ssh processes + bench; others = machine - both: work outside the bench, i.e. noise):');
  console.log(renderCpu(cpuLines, cores));
  const sess = (server: string) => cpuLines.find((l) => l.phase === 'sessions' && l.server === server);
  const [so, ss] = [sess('ours'), sess('openssh')];
  if (so && ss) {
    const per = (l: CpuLine) => ({ server: l.serverMs / l.units, client: l.clientMs / l.units, machine: l.machinePct });
    const [po, ps] = [per(so), per(ss)];
    console.log('');
    console.log(
      `Sessions: server CPU per session ours ${po.server.toFixed(1)} ms, sshd ${ps.server.toFixed(1)} ms (sshd: ${(ps.server / po.server).toFixed(1)}x); ` +
        `client CPU per session ${po.client.toFixed(1)} / ${ps.client.toFixed(1)} ms; machine ${po.machine.toFixed(0)}% / ${ps.machine.toFixed(0)}% of ${cores * 100}%.`,
    );
    if (Math.min(po.machine, ps.machine) > 0.85 * cores * 100) {
      console.log(
        `  The machine was saturated, so sessions/s is bound by client+server CPU on the same ${cores} cores: the highest ratio this machine can ` +
          `show is about (client+sshd)/(client+ours) = ${((ps.client + ps.server) / (po.client + po.server)).toFixed(2)}; ` +
          `the server's own capacity ratio (sessions per server CPU-second) is ${(ps.server / po.server).toFixed(2)}.`,
      );
    }
  }
  console.log('');
  console.log(verdict(rows));
  if (failures.length) {
    console.log('');
    console.log(`FAILURES (${failures.length}):`);
    for (const f of failures) console.log(`  - ${f}`);
  }
  mkdirSync(dirname(settings.out), { recursive: true });
  writeFileSync(
    settings.out,
    `${JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        ours: useEdge ? 'edge' : 'testserver (stand-in)',
        settings: { ...settings, only: [...settings.only], out: undefined, tmpBase: undefined },
        code,
        environment: { cores, cpuModel: cpus()[0]?.model, kernel: release(), node: process.version, sshd: sshdVersion(), ssh2: nativeCrypto(), accounting: describeAccounting() },
        negotiated: algorithms,
        backgroundCpuPct: { before: loadBefore, after: loadAfter },
        rows: rows.map((r) => ({ ...r, ours: median(r.samples[r.oursFrom]), openssh: median(r.samples.openssh), ratio: rowRatio(r), control: rowControl(r) })),
        cpu: cpuLines,
        /** Measured windows (CLOCK_MONOTONIC µs): cut a .cpuprofile of ours to them with sftpProfileSlice.ts. */
        windows: [...cpuWindows.values()].flatMap((e) => e.windows.map((w) => ({ phase: e.phase, server: e.server, startUs: w.startUs, endUs: w.endUs }))),
        failures,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nresults written to ${settings.out}`);
  if (settings.profile) console.log(`CPU profiles of ours: ${profileDir} (npx tsx test/bench/profileSummary.ts FILE)`);
  return failures.length ? 1 : 0;
}

main().then(
  (c) => process.exit(c),
  async (err) => {
    console.error(`bench:sftp failed: ${(err as Error).stack ?? err}`);
    await cleanup();
    process.exit(1);
  },
);
