/**
 * Sessions per CPU-second of the edge, this code against an earlier commit's, in the same run (issue "Capacity" §2:
 * "at least 2 × the sessions/s per CPU of today's figure, measured with the bundle, same run, same client, in
 * embedded and in cluster mode").
 *
 *   npm run bench:session-rate                         # baseline aa17809 (before the Capacity work), 3 rounds
 *   BENCH_BASELINE=<commit> BENCH_SESSIONS=2000 npm run bench:session-rate
 *
 * Both edges run as production bundles (the baseline's is built once from `git archive` of the commit into
 * .bench/baseline-<sha>/, with its own `npm ci`), pinned to CPU 1 with `taskset` so that each has exactly one CPU; the
 * client and (cluster mode) a private redis-server share CPU 0. Each round runs, per mode, the baseline, this code and
 * this code again (an A/A control: the spread between the two runs of the same code is the noise floor), in an order
 * that rotates per round. A run: BENCH_SESSIONS complete sessions (connect, login, TYPE I, EPSV + LIST, EPSV + RETR 4 KiB,
 * QUIT), BENCH_CONCURRENCY at a time, after a warm-up; the edge's CPU (every thread, from /proc) over the window gives
 * CPU per session and sessions per CPU-second. Redis' CPU per session is printed beside it.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envInt } from './env';
import { median } from './report';
import { baselineBundle, codeVersion, edgeEntry, freePort, REPO_ROOT, run, startOurs, startRedisServer, stopServer, type RunningServer } from './servers';
import { sessions } from './workloads';

const settings = {
  baseline: process.env.BENCH_BASELINE || 'aa17809',
  sessions: envInt('BENCH_SESSIONS', 1500),
  concurrency: envInt('BENCH_CONCURRENCY', 50),
  repeat: envInt('BENCH_REPEAT', 3),
  modes: (process.env.BENCH_MODES || 'embedded,cluster').split(','),
  edgeCpu: process.env.BENCH_EDGE_CPU || '1',
  clientCpu: process.env.BENCH_CLIENT_CPU || '0',
};
const limits = { opTimeoutMs: 30_000, phaseTimeoutMs: 300_000 };

interface Edge {
  name: string;
  entry: string[];
}

interface Sample {
  sessionsPerSec: number;
  edgeCpuMsPerSession: number;
  redisCpuMsPerSession?: number;
  clientPct: number;
  errors: number;
}

function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime of every thread, USER_HZ 100
}

async function measure(edge: Edge, mode: string): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), 'session-rate-'));
  const taken = new Set<number>();
  const port = await freePort(24000, taken);
  const pasvMin = await freePort(24100, taken);
  let redis: ChildProcess | undefined;
  const env: Record<string, string> = { FTP_UPLOAD_EVENTS: 'off' };
  if (mode === 'cluster') {
    const redisPort = await freePort(24900, taken);
    redis = await startRedisServer(redisPort, settings.clientCpu);
    env.REDIS_URL = `redis://127.0.0.1:${redisPort}`;
  }
  let server: RunningServer | undefined;
  try {
    server = await startOurs({
      name: edge.name,
      dir,
      port,
      pasvRange: { min: pasvMin, max: pasvMin + 99 },
      fsync: false,
      env,
      entry: edge.entry,
      cpus: settings.edgeCpu,
    });
    const redisCpu0 = redis?.pid ? processCpuMs(redis.pid) : 0;
    const result = await sessions(server, settings.sessions, settings.concurrency, limits, { warmup: 300, rampMs: 500 });
    const redisCpuMs = redis?.pid ? processCpuMs(redis.pid) - redisCpu0 : undefined;
    const serverPct = result.cpu.serverPct ?? NaN;
    return {
      sessionsPerSec: result.sessionsPerSec,
      edgeCpuMsPerSession: (serverPct / 100) * (1000 / result.sessionsPerSec),
      // Redis' CPU from the start of the warm-up: per session of everything that ran (warm-up included).
      redisCpuMsPerSession: redisCpuMs === undefined ? undefined : redisCpuMs / (settings.sessions + 300),
      clientPct: result.cpu.clientPct,
      errors: result.errors + result.warmupErrors,
    };
  } finally {
    if (server) await stopServer(server);
    redis?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (values: number[], digits: number) => {
  const m = median(values);
  return `${m === undefined ? '-' : m.toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
};

async function main() {
  // The client (this process) keeps to its CPU; the edge gets the other one to itself.
  execFileSync('taskset', ['-p', '-c', settings.clientCpu, String(process.pid)], { stdio: 'ignore' });
  if (process.env.BENCH_SKIP_BUILD !== '1') run('npm', ['run', 'build', '--workspace', '@ftp/edge'], REPO_ROOT);
  process.env.BENCH_EDGE = 'bundle';
  const edges: Edge[] = [
    { name: `baseline ${settings.baseline}`, entry: [baselineBundle(settings.baseline)] },
    { name: 'this code', entry: edgeEntry() },
    { name: 'this code (A/A)', entry: edgeEntry() },
  ];
  const version = codeVersion();
  console.log(`this code: ${version.commit}${version.dirty.length ? ` + uncommitted ${version.dirty.join(', ')}` : ''}`);
  console.log(`${settings.sessions} sessions × ${settings.repeat} rounds, ${settings.concurrency} concurrent; edge on CPU ${settings.edgeCpu}, client and Redis on CPU ${settings.clientCpu}`);
  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < settings.repeat; round++) {
    for (const mode of settings.modes) {
      const order = edges.map((_, i) => edges[(i + round) % edges.length]);
      for (const edge of order) {
        const sample = await measure(edge, mode);
        const key = `${mode}|${edge.name}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        console.log(
          `round ${round + 1} ${mode.padEnd(8)} ${edge.name.padEnd(18)} ${sample.sessionsPerSec.toFixed(0).padStart(5)} sessions/s, edge ${sample.edgeCpuMsPerSession.toFixed(2)} ms CPU/session${sample.redisCpuMsPerSession === undefined ? '' : `, redis ${sample.redisCpuMsPerSession.toFixed(2)}`}, client ${sample.clientPct}% CPU, ${sample.errors} errors`,
        );
      }
    }
  }
  console.log('\nmode      edge                sessions/s          edge CPU ms/session  sessions per edge CPU-s  vs baseline  redis CPU ms/session  errors');
  for (const mode of settings.modes) {
    const base = samples.get(`${mode}|${edges[0].name}`)!;
    const basePerCpu = median(base.map((s) => 1000 / s.edgeCpuMsPerSession))!;
    for (const edge of edges) {
      const list = samples.get(`${mode}|${edge.name}`)!;
      const perCpu = list.map((s) => 1000 / s.edgeCpuMsPerSession);
      const redis = list.map((s) => s.redisCpuMsPerSession).filter((v): v is number => v !== undefined);
      console.log(
        [
          mode.padEnd(9),
          edge.name.padEnd(19),
          fmt(list.map((s) => s.sessionsPerSec), 0).padEnd(19),
          fmt(list.map((s) => s.edgeCpuMsPerSession), 2).padEnd(20),
          fmt(perCpu, 0).padEnd(24),
          `${(median(perCpu)! / basePerCpu).toFixed(2)}×`.padEnd(12),
          (redis.length ? fmt(redis, 2) : '-').padEnd(21),
          String(list.reduce((a, s) => a + s.errors, 0)),
        ].join(' '),
      );
    }
  }
  console.log('\nmedians (min–max) over rounds; "vs baseline" is the ratio of medians of sessions per edge CPU-second. The two runs of this code show the noise floor.');
}

main().catch((err) => {
  console.error('session-rate bench failed:', err);
  process.exitCode = 1;
});
