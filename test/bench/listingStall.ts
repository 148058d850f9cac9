/**
 * `npx tsx test/bench/listingStall.ts`: how much one user's huge listings slow every other session of the same edge.
 * Starts our edge (child process, default settings: FTP_STORAGE_METADATA_IO=sync), puts BENCH_LIST_ENTRIES (20,000)
 * folders in `/big`, then per scenario runs 0, 1 or 4 sessions that loop `STAT /big` (listing on the control
 * connection) or `LIST /big` (data connection) in a second child process, while this process times another session's
 * NOOP round trips (one every 5 ms). Also times CWD into a folder 250 and 1,700 levels deep.
 * See test/bench/README.md ("Listing stall").
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeBlock } from '../support/processes';
import { envInt } from './env';
import { FtpClient } from './ftpClient';
import { median } from './report';
import { killNow, REPO_ROOT, startOurs, stopServer, type RunningServer } from './servers';
import { percentile } from './workloads';

const settings = {
  entries: envInt('BENCH_LIST_ENTRIES', 20_000),
  seconds: envInt('BENCH_LIST_SECONDS', 5),
  repeat: envInt('BENCH_REPEAT', 3),
  deep: envInt('BENCH_LIST_DEEP', 1700),
  gapMs: envInt('BENCH_NOOP_GAP_MS', 5, 0),
  metadataIo: process.env.BENCH_METADATA_IO || 'sync',
};
const HOST = '127.0.0.1';
const TIMEOUT_MS = 60_000;

type Command = 'STAT' | 'LIST';
interface Scenario {
  name: string;
  command?: Command;
  sessions: number;
}
const SCENARIOS: Scenario[] = [
  { name: 'idle (no listing)', sessions: 0 },
  { name: '1 session looping STAT /big', command: 'STAT', sessions: 1 },
  { name: '4 sessions looping STAT /big', command: 'STAT', sessions: 4 },
  { name: '1 session looping LIST /big', command: 'LIST', sessions: 1 },
  { name: '4 sessions looping LIST /big', command: 'LIST', sessions: 4 },
];

interface Figures {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  listingsPerSecond: number;
  listingReply: string;
}

// ---- the listers (second child process: their reply parsing must not delay the probe's event loop) ----

async function runListers(argv: string[]) {
  const [port, user, password, command, sessions, seconds] = argv;
  const clients = await Promise.all(
    Array.from({ length: Number(sessions) }, async () => {
      const c = await FtpClient.open(HOST, Number(port), TIMEOUT_MS);
      await c.login(user, password);
      return c;
    }),
  );
  process.stdout.write('ready\n');
  const deadline = Date.now() + Number(seconds) * 1000;
  let listings = 0;
  let reply = '';
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < deadline) {
        if (command === 'STAT') {
          c.send('STAT /big');
          const r = await c.read();
          reply = `${r.code} (${r.text.split('\r\n').length} lines)`;
        } else {
          try {
            const r = await c.list('/big');
            reply = `226 (${r.data?.toString().split('\r\n').length ?? 0} lines)`;
          } catch (err) {
            reply = (err as Error).message;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        listings++;
      }
      c.close();
    }),
  );
  process.stdout.write(`${JSON.stringify({ listings, reply })}\n`);
  process.exit(0);
}

// ---- the probe (this process) ----

async function probe(server: RunningServer, scenario: Scenario): Promise<Figures> {
  const client = await FtpClient.open(HOST, server.port, TIMEOUT_MS);
  await client.login(server.user, server.password);
  let listers: ReturnType<typeof spawn> | undefined;
  let result: Promise<{ listings: number; reply: string }> = Promise.resolve({ listings: 0, reply: '-' });
  if (scenario.command) {
    listers = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'test/bench/listingStall.ts'), 'listers', String(server.port), server.user, server.password, scenario.command, String(scenario.sessions), String(settings.seconds + 1)],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    const ready = new Promise<void>((resolve, reject) => {
      listers!.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('ready\n')) resolve();
      });
      listers!.once('exit', (code) => reject(new Error(`listers exited (${code}) before they were ready`)));
    });
    result = new Promise((resolve, reject) => {
      listers!.once('exit', (code) => {
        const last = out.trim().split('\n').pop() ?? '';
        if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last));
        else reject(new Error(`listers exited with ${code}: ${out}`));
      });
    });
    await ready;
    await new Promise((r) => setTimeout(r, 500)); // the listings are under way
  }
  const samples: number[] = [];
  const end = Date.now() + (settings.seconds - (scenario.command ? 0.5 : 0)) * 1000;
  try {
    while (Date.now() < end) {
      const started = process.hrtime.bigint();
      await client.command('NOOP', 200);
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (settings.gapMs) await new Promise((r) => setTimeout(r, settings.gapMs));
    }
    const { listings, reply } = await result;
    samples.sort((a, b) => a - b);
    return {
      p50: percentile(samples, 50),
      p99: percentile(samples, 99),
      max: samples[samples.length - 1],
      samples: samples.length,
      listingsPerSecond: listings / (settings.seconds + 0.5),
      listingReply: reply,
    };
  } finally {
    client.close();
    if (listers && listers.exitCode === null && listers.signalCode === null) listers.kill('SIGKILL'); // by its PID
  }
}

/** CWD into `path` `times` times: the median duration and the replies seen. */
async function timeCwd(server: RunningServer, path: string, times: number): Promise<{ ms: number; replies: string }> {
  const client = await FtpClient.open(HOST, server.port, TIMEOUT_MS);
  await client.login(server.user, server.password);
  const durations: number[] = [];
  const replies = new Set<string>();
  try {
    for (let i = 0; i < times; i++) {
      const started = process.hrtime.bigint();
      client.send(`CWD ${path}`);
      const r = await client.read();
      durations.push(Number(process.hrtime.bigint() - started) / 1e6);
      replies.add(`${r.code} ${r.text.slice(0, 60)}`);
      client.send('CWD /');
      await client.read();
    }
  } finally {
    client.close();
  }
  return { ms: median(durations)!, replies: [...replies].join(' | ') };
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'ftp-listing-stall-'));
  let server: RunningServer | undefined;
  const stop = () => {
    if (server) killNow(server);
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', stop);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
  try {
    const port = await freeBlock(21, [HOST]); // the control port, then 20 passive ports
    const pasv = port + 1;
    server = await startOurs({
      name: 'ours',
      dir,
      port,
      pasvRange: { min: pasv, max: pasv + 19 },
      fsync: false,
      env: { FTP_STORAGE_METADATA_IO: settings.metadataIo },
    });
    const big = join(server.root, 'big');
    mkdirSync(big, { recursive: true });
    for (let i = 0; i < settings.entries; i++) mkdirSync(join(big, `folder-${String(i).padStart(6, '0')}`));
    const deepLevels = Math.max(settings.deep, 250);
    mkdirSync(join(server.root, ...Array.from({ length: deepLevels }, () => 'd')), { recursive: true });
    console.log(`edge pid ${server.pid}, FTP_STORAGE_METADATA_IO=${settings.metadataIo}, ${settings.entries} folders in /big, ${settings.seconds} s per scenario, NOOP every ${settings.gapMs} ms`);

    const rounds: Figures[][] = [];
    const cwd: { name: string; ms: number[]; replies: string }[] = [
      { name: 'CWD 250 levels deep', ms: [], replies: '' },
      { name: `CWD ${settings.deep} levels deep`, ms: [], replies: '' },
    ];
    for (let round = 1; round <= settings.repeat; round++) {
      const figures: Figures[] = [];
      for (const scenario of SCENARIOS) {
        const f = await probe(server, scenario);
        figures.push(f);
        console.log(
          `round ${round}  ${scenario.name.padEnd(30)} NOOP p50 ${fmt(f.p50)} ms  p99 ${fmt(f.p99)} ms  max ${fmt(f.max)} ms  (${f.samples} NOOPs; ${f.listingsPerSecond.toFixed(1)} listings/s, ${f.listingReply})`,
        );
      }
      rounds.push(figures);
      for (const [i, levels] of [250, settings.deep].entries()) {
        const r = await timeCwd(server, `/${Array.from({ length: levels }, () => 'd').join('/')}`, 10);
        cwd[i].ms.push(r.ms);
        cwd[i].replies = r.replies;
        console.log(`round ${round}  ${cwd[i].name.padEnd(30)} ${fmt(r.ms)} ms  (${r.replies})`);
      }
    }
    console.log('\nmedian of rounds (NOOP latency of another session, ms):');
    console.log(`${'scenario'.padEnd(32)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}  listings/s`);
    SCENARIOS.forEach((s, i) => {
      const m = (key: keyof Figures) => median(rounds.map((r) => r[i][key] as number))!;
      console.log(`${s.name.padEnd(32)} ${fmt(m('p50')).padStart(8)} ${fmt(m('p99')).padStart(8)} ${fmt(m('max')).padStart(8)}  ${m('listingsPerSecond').toFixed(1)}`);
    });
    for (const c of cwd) console.log(`${c.name.padEnd(32)} ${fmt(median(c.ms)!).padStart(8)} ms per CWD (${c.replies})`);
  } finally {
    if (server) await stopServer(server);
    server = undefined;
  }
}

if (process.argv[2] === 'listers') await runListers(process.argv.slice(3));
else await main();
