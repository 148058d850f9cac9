/**
 * Login latency and sessions/s with each user store, in the same run (issue "Control plane": "Login latency and
 * sessions/s with each backend next to the file backend").
 *
 *   npm run bench:user-stores                     # file, postgres, hook (cached), hook (every login asks), 2 rounds
 *   BENCH_STORES=file,postgres BENCH_REPEAT=3 npm run bench:user-stores
 *
 * Every edge is the production bundle pinned to CPU 1 (`taskset`); the client, PostgreSQL's backends and the hook
 * receiver share the other CPU. Per store and round: BENCH_LOGINS logins one after another (connect, greeting, USER,
 * PASS, QUIT; latency from USER to the 230), then BENCH_SESSIONS full sessions (login, TYPE I, EPSV + LIST, EPSV +
 * RETR 4 KiB, QUIT), BENCH_CONCURRENCY at a time. The edges' verified-password cache is on for every store, as in
 * production: only the first login of the bench user pays for scrypt. The hook is a plain HTTP receiver on loopback
 * that checks each request's signature (as a real identity provider must) and answers the bench user.
 */
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyHmacSignature } from '@ftp/signing';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { envInt } from './env';
import { FtpClient } from './ftpClient';
import { median } from './report';
import { createBenchUser, freePort, REPO_ROOT, startOurs, stopServer, type RunningServer } from './servers';
import { percentile, sessions } from './workloads';

const STORES = ['file', 'postgres', 'hook', 'hook-uncached'] as const;
type Store = (typeof STORES)[number];
const settings = {
  stores: (process.env.BENCH_STORES || STORES.join(',')).split(',') as Store[],
  logins: envInt('BENCH_LOGINS', 300),
  sessions: envInt('BENCH_SESSIONS', 1000),
  concurrency: envInt('BENCH_CONCURRENCY', 50),
  repeat: envInt('BENCH_REPEAT', 2),
};
for (const store of settings.stores) if (!STORES.includes(store)) throw new Error(`BENCH_STORES: unknown "${store}" (${STORES.join(', ')})`);
const limits = { opTimeoutMs: 30_000, phaseTimeoutMs: 300_000 };
const HOOK_SECRET = 'bench-hook-secret-0123456789';

interface Sample {
  loginP50: number;
  loginP99: number;
  sessionsPerSec: number;
  edgeCpuMsPerSession: number;
  errors: number;
}

/** The identity provider: the bench user with its password, checked signatures; counts what it answered. */
async function startHook(password: string): Promise<{ url: string; server: Server; answered: () => number }> {
  let answered = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = (name: string) => req.headers[name] as string | undefined;
      if (!verifyHmacSignature(HOOK_SECRET, header(TIMESTAMP_HEADER), body, header(SIGNATURE_HEADER))) return void res.writeHead(401).end();
      const request = JSON.parse(body) as { user: string; password?: string };
      answered++;
      const ok = request.user === 'bench' && request.password === password;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user: ok ? { home: 'bench', permissions: { '/': ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'rmdir'] } } : null }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`, server, answered: () => answered };
}

function ftpctl(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'libs/identity/src/cli/ftpctl.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (result.status !== 0) throw new Error(`ftpctl ${args.join(' ')} failed: ${result.stderr}${result.stdout}`);
}

async function loginLatencies(server: RunningServer, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const client = await FtpClient.open(server.host, server.port, limits.opTimeoutMs);
    try {
      const started = process.hrtime.bigint();
      await client.login(server.user, server.password);
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
      await client.quit();
    } finally {
      client.close();
    }
  }
  return times.sort((a, b) => a - b);
}

async function measure(store: Store, database: TestDatabase): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), 'user-stores-'));
  const taken = new Set<number>();
  const port = await freePort(25000, taken);
  const pasvMin = await freePort(25100, taken);
  const user = createBenchUser(dir);
  const { usersFile, password } = user;
  const env: Record<string, string> = { FTP_UPLOAD_EVENTS: 'off', FTP_USER_STORE: store === 'hook-uncached' ? 'hook' : store };
  let hook: Awaited<ReturnType<typeof startHook>> | undefined;
  if (store === 'postgres') {
    // The file's user (with its scrypt hash) moved into PostgreSQL, as an operator would.
    const storeEnv = { FTP_USERS_DATABASE_URL: database.url };
    ftpctl(['db', 'migrate'], storeEnv);
    ftpctl(['users', 'import', usersFile], storeEnv);
    env.FTP_USERS_DATABASE_URL = database.url;
  } else if (store.startsWith('hook')) {
    hook = await startHook(password);
    Object.assign(env, { FTP_AUTH_HOOK_URL: hook.url, FTP_AUTH_HOOK_SECRET: HOOK_SECRET, FTP_AUTH_HOOK_CACHE_SECONDS: store === 'hook' ? '60' : '0' });
  }
  let server: RunningServer | undefined;
  try {
    server = await startOurs({ name: store, dir, port, pasvRange: { min: pasvMin, max: pasvMin + 99 }, fsync: false, env, cpus: '1', user });
    await loginLatencies(server, 30); // warm-up
    const logins = await loginLatencies(server, settings.logins);
    const result = await sessions(server, settings.sessions, settings.concurrency, limits, { warmup: 200, rampMs: 500 });
    if (store === 'hook-uncached' && hook && hook.answered() < settings.logins) throw new Error(`the hook answered only ${hook.answered()} logins: the cache was on`);
    return {
      loginP50: percentile(logins, 50),
      loginP99: percentile(logins, 99),
      sessionsPerSec: result.sessionsPerSec,
      edgeCpuMsPerSession: ((result.cpu.serverPct ?? NaN) / 100) * (1000 / result.sessionsPerSec),
      errors: result.errors + result.warmupErrors,
    };
  } finally {
    if (server) await stopServer(server);
    hook?.server.close();
    if (store === 'postgres') await database.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (values: number[], digits: number) =>
  `${median(values)!.toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;

async function main() {
  spawnSync('taskset', ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  if (process.env.BENCH_SKIP_BUILD !== '1') {
    const build = spawnSync('npm', ['run', 'build', '--workspace', '@ftp/edge'], { cwd: REPO_ROOT, stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build --workspace @ftp/edge failed');
  }
  process.env.BENCH_EDGE = 'bundle';
  const database = await createTestDatabase('bench_user_stores');
  const samples = new Map<Store, Sample[]>();
  try {
    for (let round = 0; round < settings.repeat; round++) {
      const order = settings.stores.map((_, i) => settings.stores[(i + round) % settings.stores.length]);
      for (const store of order) {
        const s = await measure(store, database);
        samples.set(store, [...(samples.get(store) ?? []), s]);
        console.log(`round ${round + 1} ${store.padEnd(14)} login p50 ${s.loginP50.toFixed(2)} ms p99 ${s.loginP99.toFixed(2)} ms, ${s.sessionsPerSec.toFixed(0)} sessions/s, edge ${s.edgeCpuMsPerSession.toFixed(2)} ms CPU/session, ${s.errors} errors`);
      }
    }
  } finally {
    await database.drop();
  }
  console.log(`\n${settings.logins} logins one after another and ${settings.sessions} sessions (${settings.concurrency} concurrent) per store and round; medians (min–max) of ${settings.repeat} rounds`);
  console.log('store           login p50 ms        login p99 ms        sessions/s          edge CPU ms/session  errors');
  for (const store of settings.stores) {
    const list = samples.get(store)!;
    console.log(
      [
        store.padEnd(15),
        fmt(list.map((s) => s.loginP50), 2).padEnd(19),
        fmt(list.map((s) => s.loginP99), 2).padEnd(19),
        fmt(list.map((s) => s.sessionsPerSec), 0).padEnd(19),
        fmt(list.map((s) => s.edgeCpuMsPerSession), 2).padEnd(20),
        String(list.reduce((a, s) => a + s.errors, 0)),
      ].join(' '),
    );
  }
}

main().catch((err) => {
  console.error('user-stores bench failed:', err);
  process.exitCode = 1;
});
