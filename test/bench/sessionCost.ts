/**
 * What one FTP session costs the edge, split by phase: Redis round trips (and the commands Lua runs for them), and
 * the main thread's CPU. Sessions run one after another, so every Redis call and every CPU sample falls in the phase
 * of the session that caused it (a phase lasts from its first command until the next phase starts).
 *
 *   npm run bench:session-cost                     # cluster mode (a private redis-server) and embedded mode
 *   BENCH_SESSIONS=300 BENCH_EDGE=bundle npm run bench:session-cost
 *
 * A session: connect + greeting, USER + PASS, TYPE I, EPSV + LIST, EPSV + RETR of 4 KiB, QUIT. CPU per phase comes
 * from a V8 CPU profile of the edge (--cpu-prof, 100 µs sampling; V8's timestamps and process.hrtime are both
 * CLOCK_MONOTONIC), so it is the main thread's on-CPU time; the whole process's CPU per session (every thread, from
 * /proc) and sessions/s over the same loop are printed beside it. Profiling slows the edge: compare runs with each
 * other, not with the sessions/s of `npm run bench`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FtpClient } from './ftpClient';
import { freePort, startOurs, startRedisServer, stopServer, type RunningServer } from './servers';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 300);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 50);
const MODES = (process.env.BENCH_MODES ?? 'cluster,embedded').split(',');
const PHASES = ['connect', 'login', 'type', 'list', 'retr', 'quit'] as const;
type Phase = (typeof PHASES)[number];
const PAYLOAD = Buffer.alloc(4096, 7);
/** BENCH_TOP=list,retr prints those phases' costliest functions (self time per session). */
const TOP_PHASES = (process.env.BENCH_TOP ?? '').split(',').filter(Boolean) as Phase[];

interface Mark {
  phase: Phase;
  /** process.hrtime in µs (CLOCK_MONOTONIC), and the wall clock in µs for Redis MONITOR's timestamps. */
  monoUs: number;
  wallUs: number;
}

function now(): { monoUs: number; wallUs: number } {
  return { monoUs: Number(process.hrtime.bigint() / 1000n), wallUs: Math.round((performance.timeOrigin + performance.now()) * 1000) };
}

async function oneSession(server: RunningServer, marks: Mark[] | undefined) {
  const mark = (phase: Phase) => marks?.push({ phase, ...now() });
  mark('connect');
  const client = await FtpClient.open(server.host, server.port, 10_000);
  try {
    mark('login');
    await client.login(server.user, server.password);
    mark('type');
    await client.command('TYPE I', 200);
    mark('list');
    await client.list();
    mark('retr');
    const got = await client.retr('cost.bin');
    if (got.bytes !== PAYLOAD.length) throw new Error(`RETR gave ${got.bytes} bytes`);
    mark('quit');
    await client.quit();
  } finally {
    client.close();
  }
}

/** Which phase a timestamp falls in: the last mark at or before it. */
function phaseAt(marks: Mark[], key: 'monoUs' | 'wallUs', t: number): Phase | undefined {
  let lo = 0;
  let hi = marks.length - 1;
  if (hi < 0 || t < marks[0][key]) return undefined;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (marks[mid][key] <= t) lo = mid;
    else hi = mid - 1;
  }
  return marks[lo].phase;
}

function processCpuMs(pid: number): number {
  let ticks = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the thread ended between readdir and read
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** Redis MONITOR lines: `<unix s.µs> [db addr] "cmd" …`; Lua's inner calls say `[0 lua]`. */
function monitor(port: number) {
  const child = spawn('redis-cli', ['-p', String(port), 'monitor']);
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString('latin1')));
  return {
    stop() {
      child.kill();
      return text
        .split('\n')
        .map((line) => /^(\d+)\.(\d+) \[\d+ (\S+)\] "([^"]+)"/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ wallUs: Number(m[1]) * 1e6 + Number(m[2]), lua: m[3] === 'lua', command: m[4].toLowerCase() }));
    },
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url?: string };
}

interface PhaseCpu {
  us: number;
  /** Self time by function (name and file), for BENCH_TOP. */
  byFunction: Map<string, number>;
}

function cpuByPhase(profileFile: string, marks: Mark[]): Map<Phase, PhaseCpu> {
  const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const idle = new Set(profile.nodes.filter((n) => ['(idle)', '(program)'].includes(n.callFrame.functionName)).map((n) => n.id));
  const nameOf = new Map(profile.nodes.map((n) => [n.id, `${n.callFrame.functionName || '(anonymous)'} ${(n.callFrame.url ?? '').replace(/^.*\/(node_modules|libs|services)\//, '$1/')}`]));
  const out = new Map<Phase, PhaseCpu>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    const delta = profile.timeDeltas[i + 1] ?? 0; // a sample stands for the time until the next one
    if (idle.has(profile.samples[i])) continue;
    const phase = phaseAt(marks, 'monoUs', t);
    if (!phase) continue;
    const entry = out.get(phase) ?? { us: 0, byFunction: new Map<string, number>() };
    entry.us += delta;
    const name = nameOf.get(profile.samples[i]) ?? '?';
    entry.byFunction.set(name, (entry.byFunction.get(name) ?? 0) + delta);
    out.set(phase, entry);
  }
  return out;
}

async function runMode(mode: string) {
  const dir = mkdtempSync(join(tmpdir(), 'session-cost-'));
  const profileDir = join(dir, 'profile');
  const taken = new Set<number>();
  const port = await freePort(23000, taken);
  const pasvMin = await freePort(23100, taken);
  let redis: ChildProcess | undefined;
  const env: Record<string, string> = { FTP_LOG_LEVEL: 'warn', FTP_SFTP_PORT: '0', FTP_MAX_UNAUTHENTICATED_PER_IP: '0', FTP_UPLOAD_EVENTS: 'off' };
  let redisPort = 0;
  if (mode === 'cluster') {
    redisPort = await freePort(23900, taken);
    redis = await startRedisServer(redisPort);
    env.REDIS_URL = `redis://127.0.0.1:${redisPort}`;
  }
  const server = await startOurs({
    name: `ours-${mode}`,
    dir,
    port,
    pasvRange: { min: pasvMin, max: pasvMin + 50 },
    fsync: false,
    nodeArgs: ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', profileDir],
    env,
  });
  try {
    const setup = await FtpClient.open(server.host, server.port, 10_000);
    await setup.login(server.user, server.password);
    await setup.command('TYPE I', 200);
    await setup.stor('cost.bin', PAYLOAD);
    await setup.quit();
    setup.close();
    for (let i = 0; i < WARMUP; i++) await oneSession(server, undefined);

    const marks: Mark[] = [];
    const mon = redisPort ? monitor(redisPort) : undefined;
    await new Promise((r) => setTimeout(r, 200));
    const cpu0 = processCpuMs(server.pid);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < SESSIONS; i++) await oneSession(server, marks);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuMs = processCpuMs(server.pid) - cpu0;
    marks.push({ phase: 'quit', ...now() });
    await new Promise((r) => setTimeout(r, 300)); // the last session's close reaches Redis
    const calls = mon?.stop() ?? [];

    await stopServer(server); // writes the profile
    const profile = readdirSync(profileDir).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)); // thread 0: the main thread
    const cpu = profile ? cpuByPhase(join(profileDir, profile), marks) : new Map<Phase, PhaseCpu>();

    const trips = new Map<Phase, Map<string, number>>();
    const luaCalls = new Map<Phase, number>();
    const start = marks[0].wallUs;
    for (const call of calls) {
      if (call.wallUs < start || call.command === 'monitor') continue;
      const phase = phaseAt(marks, 'wallUs', call.wallUs);
      if (!phase) continue;
      if (call.lua) {
        luaCalls.set(phase, (luaCalls.get(phase) ?? 0) + 1);
        continue;
      }
      const byCommand = trips.get(phase) ?? new Map<string, number>();
      byCommand.set(call.command, (byCommand.get(call.command) ?? 0) + 1);
      trips.set(phase, byCommand);
    }

    console.log(`\n${mode} (${mode === 'cluster' ? 'Redis cluster state' : 'in-memory state, no Redis'}): ${SESSIONS} sessions one after another, ${(SESSIONS / seconds).toFixed(0)} sessions/s, process CPU ${((cpuMs * 1000) / SESSIONS).toFixed(0)} µs/session (all threads, 10 ms ticks)`);
    console.log('phase     Redis round trips/session (by command)               Lua calls  main-thread CPU µs/session');
    let totalTrips = 0;
    let totalLua = 0;
    let totalCpu = 0;
    for (const phase of PHASES) {
      const byCommand = trips.get(phase) ?? new Map<string, number>();
      const n = [...byCommand.values()].reduce((a, b) => a + b, 0) / SESSIONS;
      const detail = [...byCommand].map(([c, k]) => `${c} ${(k / SESSIONS).toFixed(2)}`).join(', ');
      const lua = (luaCalls.get(phase) ?? 0) / SESSIONS;
      const us = (cpu.get(phase)?.us ?? 0) / SESSIONS;
      totalTrips += n;
      totalLua += lua;
      totalCpu += us;
      console.log(`${phase.padEnd(9)} ${n.toFixed(2).padStart(5)}  ${detail.padEnd(52).slice(0, 52)} ${lua.toFixed(1).padStart(6)}  ${us.toFixed(0).padStart(8)}`);
    }
    console.log(`${'total'.padEnd(9)} ${totalTrips.toFixed(2).padStart(5)}  ${''.padEnd(52)} ${totalLua.toFixed(1).padStart(6)}  ${totalCpu.toFixed(0).padStart(8)}`);
    for (const phase of TOP_PHASES) {
      const top = [...(cpu.get(phase)?.byFunction ?? [])].sort((a, b) => b[1] - a[1]).slice(0, 12);
      console.log(`  ${phase}: ${top.map(([name, us]) => `${(us / SESSIONS).toFixed(0)} µs ${name}`).join(' | ')}`);
    }
  } finally {
    await stopServer(server).catch(() => undefined);
    redis?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  for (const mode of MODES) await runMode(mode);
}

main().catch((err) => {
  console.error('session-cost bench failed:', err);
  process.exitCode = 1;
});
