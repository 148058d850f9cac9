/**
 * `npm run bench`: our FTP edge against vsftpd on loopback, both started here as child processes.
 * See test/bench/README.md for what is measured and how to read the figures.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { envInt, MiB } from './env';
import { backgroundLoad, type CpuSample } from './cpu';
import { median, renderCpu, renderResults, table, verdict, ratioOf, TARGET, type CpuRow, type Row } from './report';
import { checkRangeFree, codeVersion, freePort, killNow, parseRange, startOurs, startVsftpd, stopServer, REPO_ROOT, type RunningServer } from './servers';
import { bigFile, connectBurst, sessions, smallFiles, smallPayloads, type Limits } from './workloads';


const settings = {
  bigMiB: envInt('BENCH_BIG_MB', 1024),
  smallFiles: envInt('BENCH_SMALL_FILES', 2000),
  sessions: envInt('BENCH_SESSIONS', 2000),
  concurrency: envInt('BENCH_CONCURRENCY', 200),
  repeat: envInt('BENCH_REPEAT', 3),
  rampMs: envInt('BENCH_RAMP_MS', 1000, 0),
  burst: envInt('BENCH_BURST', 200, 0),
  smallWarmup: envInt('BENCH_SMALL_WARMUP', 0, 0),
  out: resolve(process.env.BENCH_OUT || '.bench/results.json'),
  only: new Set((process.env.BENCH_ONLY || 'big,small,sessions').split(',').map((s) => s.trim())),
  oursPasv: parseRange(process.env.BENCH_OURS_PASV || '31000-31999'),
  oursNoFsyncPasv: parseRange(process.env.BENCH_OURS_NOFSYNC_PASV || '29000-29199'),
  vsftpdPasv: parseRange(process.env.BENCH_VSFTPD_PASV || '30000-30999'),
  opTimeoutMs: envInt('BENCH_OP_TIMEOUT_S', 30) * 1000,
  phaseTimeoutMs: envInt('BENCH_PHASE_TIMEOUT_S', 240) * 1000,
  keepTmp: process.env.BENCH_KEEP_TMP === '1',
  tmpBase: process.env.BENCH_TMPDIR || tmpdir(),
  profile: process.env.BENCH_PROFILE === '1',
  vsftpdExtra: process.env.BENCH_VSFTPD_EXTRA || '',
  vsftpdCrypt: (process.env.BENCH_VSFTPD_CRYPT || 'SHA512').toUpperCase(),
  /** BENCH_OURS_STREAMS=1: also run ours with FTP_ZERO_COPY=off, in the same rounds (the data path A/B). */
  oursStreams: process.env.BENCH_OURS_STREAMS === '1',
  oursStreamsPasv: parseRange(process.env.BENCH_OURS_STREAMS_PASV || '29200-29399'),
};
for (const phase of settings.only) {
  if (!['big', 'small', 'sessions'].includes(phase)) throw new Error(`BENCH_ONLY: unknown phase "${phase}" (big, small, sessions)`);
}
const limits: Limits = { opTimeoutMs: settings.opTimeoutMs, phaseTimeoutMs: settings.phaseTimeoutMs };
const bigBytes = settings.bigMiB * MiB;

const servers: RunningServer[] = [];
let tmp: string | undefined;
let cleaned = false;

async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  await Promise.all(servers.map((s) => stopServer(s)));
  if (tmp && !settings.keepTmp) rmSync(tmp, { recursive: true, force: true });
  else if (tmp) console.log(`temp folder kept: ${tmp}`);
}

// Whatever happens, the servers do not outlive the bench.
process.on('exit', () => {
  for (const s of servers) killNow(s);
  if (tmp && !settings.keepTmp && !cleaned) rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping servers`);
    void cleanup().finally(() => process.exit(130));
  });
}

function log(message: string) {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

function vsftpdVersion(): string {
  // vsftpd -v writes its version to file descriptor 0.
  const r = spawnSync('sh', ['-c', '/usr/sbin/vsftpd -v 0>&1'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] || 'vsftpd';
}

function preflight() {
  if (process.platform !== 'linux') throw new Error('the bench needs Linux (/proc, vsftpd)');
  if (process.getuid?.() !== 0) throw new Error('run as root: vsftpd must start as root and the bench creates its PAM user');
  const fs = statfsSync(settings.tmpBase);
  const free = fs.bavail * fs.bsize;
  // One big file per server at a time (each round deletes its own), plus the warm-up files and small files.
  const need = (settings.only.has('big') ? 3 * bigBytes + 3 * Math.min(64 * MiB, bigBytes) : 0) + 512 * MiB;
  if (free < need) {
    throw new Error(`${settings.tmpBase} has ${(free / 2 ** 30).toFixed(1)} GiB free, the run needs ${(need / 2 ** 30).toFixed(1)} GiB (lower BENCH_BIG_MB or set BENCH_TMPDIR)`);
  }
}

/** Samples of one figure per server, one per round. */
type Samples = Record<string, number[]>;

interface Measure {
  key: string;
  metric: string;
  unit: string;
  better: 'higher' | 'lower';
  secondary?: boolean;
  /** Server name whose samples are "ours" in this row (ours or ours-nofsync). */
  oursFrom: string;
  samples: Samples;
  cpu: Record<string, CpuSample[]>;
}

async function main() {
  preflight();
  const code = codeVersion();
  log(`measuring ${code.commit}${code.dirty.length ? ` + uncommitted changes in ${code.dirty.join(', ')}` : ''}`);
  const loadBefore = await backgroundLoad();
  log(`background CPU before the run: ${loadBefore}% (of ${cpus().length * 100}%)`);
  tmp = mkdtempSync(join(settings.tmpBase, 'ftp-bench-'));
  chmodSync(tmp, 0o755); // vsftpd's sessions run as the bench user and must reach their root below it
  const profileDir = join(dirname(settings.out), 'profiles');
  if (settings.profile) mkdirSync(profileDir, { recursive: true });

  await checkRangeFree(settings.oursPasv, 'ours');
  await checkRangeFree(settings.oursNoFsyncPasv, 'ours (no fsync)');
  await checkRangeFree(settings.vsftpdPasv, 'vsftpd');
  if (settings.oursStreams) await checkRangeFree(settings.oursStreamsPasv, 'ours (streams)');
  const taken = new Set<number>();
  const nodeArgs = settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];

  log(`starting servers in ${tmp}`);
  const ours = await startOurs({ name: 'ours', dir: join(tmp, 'ours'), port: await freePort(21210, taken), pasvRange: settings.oursPasv, fsync: true, nodeArgs });
  servers.push(ours);
  let oursNoFsync: RunningServer | undefined;
  if (settings.only.has('big') || settings.only.has('small')) {
    oursNoFsync = await startOurs({
      name: 'ours-nofsync',
      dir: join(tmp, 'ours-nofsync'),
      port: await freePort(21310, taken),
      pasvRange: settings.oursNoFsyncPasv,
      fsync: false,
      nodeArgs,
    });
    servers.push(oursNoFsync);
  }
  let oursStreams: RunningServer | undefined;
  if (settings.oursStreams && (settings.only.has('big') || settings.only.has('small'))) {
    oursStreams = await startOurs({
      name: 'ours-streams',
      dir: join(tmp, 'ours-streams'),
      port: await freePort(21510, taken),
      pasvRange: settings.oursStreamsPasv,
      fsync: true,
      nodeArgs,
      env: { FTP_ZERO_COPY: 'off' },
    });
    servers.push(oursStreams);
  }
  const vsftpd = await startVsftpd({
    dir: join(tmp, 'vsftpd'),
    port: await freePort(21410, taken),
    pasvRange: settings.vsftpdPasv,
    extraConfig: settings.vsftpdExtra,
    crypt: settings.vsftpdCrypt,
  });
  servers.push(vsftpd);
  for (const s of servers) log(`${s.name}: pid ${s.pid}, 127.0.0.1:${s.port}, root ${s.root}`);

  const measures: Measure[] = [];
  const details: Record<string, unknown[]> = {};
  const failures: string[] = [];
  const measure = (key: string, metric: string, unit: string, better: Measure['better'], oursFrom = 'ours', secondary = false): Measure => {
    const m: Measure = { key, metric, unit, better, oursFrom, secondary, samples: {}, cpu: {} };
    measures.push(m);
    return m;
  };
  const record = (m: Measure, server: string, value: number | undefined, cpu?: CpuSample) => {
    if (value === undefined || !Number.isFinite(value)) return;
    (m.samples[server] ??= []).push(value);
    if (cpu) (m.cpu[server] ??= []).push(cpu);
  };

  /** Runs one measurement; a failure is reported and the rest of the run goes on. */
  const attempt = async <T>(label: string, fn: () => Promise<T>): Promise<T | undefined> => {
    log(`${label} ...`);
    try {
      const value = await fn();
      (details[label.replace(/ round \d+$/, '')] ??= []).push(value);
      return value;
    } catch (err) {
      const message = `${label}: ${(err as Error).message}`;
      failures.push(message);
      log(`FAILED ${message}`);
      return undefined;
    }
  };
  const rounds = Array.from({ length: settings.repeat }, (_, i) => i + 1);

  if (settings.only.has('big')) {
    const up = measure('big_upload', `upload ${settings.bigMiB} MiB, 1 stream`, 'MiB/s', 'higher');
    const upNoFsync = measure('big_upload_nofsync', `upload ${settings.bigMiB} MiB, ours without fsync`, 'MiB/s', 'higher', 'ours-nofsync', true);
    const down = measure('big_download', `download ${settings.bigMiB} MiB, 1 stream`, 'MiB/s', 'higher');
    const upStreams = oursStreams && measure('big_upload_streams', `upload ${settings.bigMiB} MiB, ours on streams (FTP_ZERO_COPY=off)`, 'MiB/s', 'higher', 'ours-streams', true);
    const downStreams = oursStreams && measure('big_download_streams', `download ${settings.bigMiB} MiB, ours on streams (FTP_ZERO_COPY=off)`, 'MiB/s', 'higher', 'ours-streams', true);
    const warmupBytes = Math.max(MiB, Math.min(64 * MiB, Math.floor(bigBytes / 4 / MiB) * MiB));
    for (const round of rounds) {
      for (const [server, download] of [[ours, true], [vsftpd, true], [oursStreams, true], [oursNoFsync, false]] as const) {
        if (!server) continue;
        const r = await attempt(`big ${server.name} round ${round}`, () => bigFile(server, bigBytes, limits, { download, warmupBytes, round }));
        const upTarget = server === oursNoFsync ? upNoFsync : server === oursStreams ? upStreams! : up;
        record(upTarget, server.name, r?.upload?.mibPerSec, r?.upload?.cpu);
        if (server === vsftpd) record(upNoFsync, server.name, r?.upload?.mibPerSec);
        if (server === vsftpd && upStreams) record(upStreams, server.name, r?.upload?.mibPerSec);
        if (server === vsftpd && downStreams) record(downStreams, server.name, r?.download?.mibPerSec);
        record(server === oursStreams ? downStreams! : down, server.name, r?.download?.mibPerSec, r?.download?.cpu);
      }
    }
  }

  if (settings.only.has('small')) {
    const n = settings.smallFiles;
    const up = measure('small_upload', `${n} x 4 KiB uploads, 1 session`, 'files/s', 'higher');
    const upNoFsync = measure('small_upload_nofsync', `${n} x 4 KiB uploads, ours without fsync`, 'files/s', 'higher', 'ours-nofsync', true);
    const down = measure('small_download', `${n} x 4 KiB downloads, 1 session`, 'files/s', 'higher');
    const upStreams = oursStreams && measure('small_upload_streams', `${n} x 4 KiB uploads, ours on streams (FTP_ZERO_COPY=off)`, 'files/s', 'higher', 'ours-streams', true);
    const payloads = smallPayloads(n);
    const warmup = settings.smallWarmup || Math.max(20, Math.min(200, Math.floor(n / 10)));
    for (const round of rounds) {
      for (const [server, download] of [[ours, true], [vsftpd, true], [oursStreams, false], [oursNoFsync, false]] as const) {
        if (!server) continue;
        const r = await attempt(`small ${server.name} round ${round}`, () => smallFiles(server, payloads, limits, { download, warmup, round }));
        if (server === vsftpd && upStreams) record(upStreams, server.name, r?.upload?.filesPerSec);
        const upTarget = server === oursNoFsync ? upNoFsync : server === oursStreams ? upStreams! : up;
        record(upTarget, server.name, r?.upload?.filesPerSec, r?.upload?.cpu);
        if (server === vsftpd) record(upNoFsync, server.name, r?.upload?.filesPerSec);
        record(down, server.name, r?.download?.filesPerSec, r?.download?.cpu);
      }
    }
  }

  if (settings.only.has('sessions')) {
    const what = `${settings.sessions} sessions, ${settings.concurrency} concurrent`;
    const rate = measure('sessions_per_sec', `sessions/s (${what})`, 'sessions/s', 'higher');
    const lat = (['p50', 'p95', 'p99'] as const).map((p) => ({ p, m: measure(`session_latency_${p}`, `session latency ${p}`, 'ms', 'lower') }));
    const warmup = Math.max(20, Math.min(200, Math.floor(settings.sessions / 10)));
    for (const round of rounds) {
      for (const server of [ours, vsftpd]) {
        const r = await attempt(`sessions ${server.name} round ${round}`, () =>
          sessions(server, settings.sessions, settings.concurrency, limits, { warmup, rampMs: settings.rampMs }),
        );
        if (!r) continue;
        if (r.errors > 0) {
          // A round with failed sessions is not a valid measurement of that server.
          failures.push(`sessions ${server.name} round ${round}: ${r.errors} of ${r.total} sessions failed, first: ${r.firstErrors[0]}`);
          continue;
        }
        if (r.warmupErrors > 0) log(`note: ${r.warmupErrors} warm-up sessions failed, first: ${r.firstErrors[0]}`);
        record(rate, server.name, r.sessionsPerSec, r.cpu);
        for (const { p, m } of lat) record(m, server.name, r.latencyMs[p]);
      }
    }
    // Last, because connections the server never accepts are abandoned half-open.
    if (settings.burst > 0) {
      const waitMs = 5000;
      const burst = measure('connect_burst_greeted', `${settings.burst} simultaneous connects greeted within ${waitMs / 1000} s`, 'connections', 'higher', 'ours', true);
      for (const server of [ours, vsftpd]) {
        const r = await attempt(`burst ${server.name}`, () => connectBurst(server, settings.burst, waitMs));
        record(burst, server.name, r?.greeted);
      }
    }
  }

  await cleanup();
  const loadAfter = await backgroundLoad();

  const rows: Row[] = measures.map((m) => ({
    key: m.key,
    metric: m.metric,
    unit: m.unit,
    better: m.better,
    secondary: m.secondary,
    ours: median(m.samples[m.oursFrom]),
    vsftpd: median(m.samples.vsftpd),
    oursSamples: m.samples[m.oursFrom] ?? [],
    vsftpdSamples: m.samples.vsftpd ?? [],
  }));
  const cpuRows: CpuRow[] = [];
  for (const m of measures) {
    for (const [server, samples] of Object.entries(m.cpu)) {
      const avg = (pick: (c: CpuSample) => number | undefined) => {
        const values = samples.map(pick).filter((v): v is number => v !== undefined);
        return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
      };
      cpuRows.push({
        phase: m.key,
        server,
        cpu: { wallMs: avg((c) => c.wallMs)!, clientPct: avg((c) => c.clientPct)!, serverPct: avg((c) => c.serverPct), machinePct: avg((c) => c.machinePct)!, cores: samples[0].cores },
      });
    }
  }

  console.log('');
  console.log(`FTP benchmark: ours vs ${vsftpdVersion()} — loopback, ${cpus().length} cores, node ${process.version}, kernel ${release()}`);
  console.log(`Code: ${code.commit}${code.dirty.length ? ` + uncommitted changes in ${code.dirty.join(', ')}` : ''}`);
  console.log(`Each figure is the median of ${settings.repeat} round(s) (min-max in the last columns).`);
  console.log('ratio = ours/vsftpd for throughput, vsftpd/ours for latency: above 1 means ours is better.');
  console.log('ours = FTP_FSYNC_UPLOADS=true (226 only after fsync); vsftpd never fsyncs; "without fsync" rows use FTP_FSYNC_UPLOADS=false.');
  console.log(`vsftpd: stock options (see vsftpd.conf.template), bench user's password hashed with ${settings.vsftpdCrypt} (PAM verifies it on every login).`);
  const noisy = Math.max(loadBefore, loadAfter) > 10;
  console.log(
    `Background CPU (other processes, bench idle): ${loadBefore}% before, ${loadAfter}% after, of ${cpus().length * 100}%` +
      (noisy ? ' -- WARNING: the machine was not idle, figures are noisy; rerun on a quiet machine.' : '.'),
  );
  console.log('');
  console.log(renderResults(rows));
  console.log('');
  console.log('CPU during the measured windows (mean over rounds; % of one core):');
  console.log(renderCpu(cpuRows));
  const perGiB = cpuPerGiB(cpuRows, settings.bigMiB);
  if (perGiB) {
    console.log('');
    console.log(`CPU seconds per GiB moved in the big-file rows (mean over rounds): our server process (all its threads), and the machine's busy CPU minus the bench client's (the server and the kernel's loopback work; the only figure vsftpd has):`);
    console.log(perGiB);
  }
  console.log('');
  console.log(verdict(rows.filter((r) => !r.secondary)));
  const secondary = rows.filter((r) => r.secondary && ratioOf(r) !== undefined);
  if (secondary.length) console.log(`Secondary rows (ours without fsync; connect burst): ${verdict(secondary)}`);
  if (failures.length > 0) {
    console.log('');
    console.log(`FAILURES (${failures.length}):`);
    for (const f of failures) console.log(`  - ${f}`);
  }

  mkdirSync(dirname(settings.out), { recursive: true });
  const json = {
    generatedAt: new Date().toISOString(),
    target: TARGET,
    settings: { ...settings, only: [...settings.only], out: undefined, tmpBase: undefined },
    code,
    backgroundCpuPct: { before: loadBefore, after: loadAfter },
    environment: { cores: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(), kernel: release(), node: process.version, vsftpd: vsftpdVersion(), repo: REPO_ROOT },
    results: rows.map((r) => ({ ...r, ratio: ratioOf(r), reachesTarget: ratioOf(r) === undefined ? undefined : ratioOf(r)! >= TARGET })),
    cpu: cpuRows,
    details,
    failures,
  };
  writeFileSync(settings.out, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nresults written to ${settings.out}`);
  if (settings.profile) console.log(`CPU profiles of our server (open in Chrome DevTools, or npx tsx test/bench/profileSummary.ts FILE): ${profileDir}`);
  return failures.length === 0 ? 0 : 1;
}

/** CPU seconds per GiB of the big-file phases, per server, from the mean CPU samples. */
function cpuPerGiB(rows: CpuRow[], bigMiB: number): string | undefined {
  const big = rows.filter((r) => r.phase.startsWith('big_'));
  if (big.length === 0) return undefined;
  const gib = bigMiB / 1024;
  const seconds = (pct: number | undefined, wallMs: number) => (pct === undefined ? '-' : ((pct / 100) * (wallMs / 1000) / gib).toFixed(3));
  return table(
    ['phase', 'server', 'server CPU s/GiB', 'machine - client CPU s/GiB'],
    big.map((r) => [r.phase, r.server, seconds(r.cpu.serverPct, r.cpu.wallMs), seconds(r.cpu.machinePct - r.cpu.clientPct, r.cpu.wallMs)]),
    [false, false, true, true],
  );
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    await cleanup();
    process.exit(1);
  },
);
