/**
 * Starts and stops the servers under test as child processes, each on loopback with its own data folder:
 * our edge (node + tsx, one process) and vsftpd (foreground, generated config).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FtpClient } from './ftpClient';

export interface RunningServer {
  name: string;
  host: string;
  port: number;
  user: string;
  password: string;
  /** Host folder that is `/` for the benchmark user. */
  root: string;
  pid: number;
  child: ChildProcess;
  /** Last lines of the server's stdout/stderr, for error messages. */
  output(): string;
}

const HOST = '127.0.0.1';
export const REPO_ROOT = new URL('../../', import.meta.url).pathname;

/** True if `port` can be bound on loopback right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: HOST, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** First free port from `start` on (at most 500 tries), skipping `taken`. */
export async function freePort(start: number, taken: Set<number>): Promise<number> {
  for (let port = start; port < start + 500; port++) {
    if (taken.has(port)) continue;
    if (await portFree(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${start}-${start + 499}`);
}

/** Fails early when any port of a passive range is already in use (the servers would fail or misbehave). */
export async function checkRangeFree(range: { min: number; max: number }, what: string) {
  const busy: number[] = [];
  for (let port = range.min; port <= range.max; port++) if (!(await portFree(port))) busy.push(port);
  if (busy.length > 0) throw new Error(`${what}: passive ports in use: ${busy.slice(0, 10).join(', ')}${busy.length > 10 ? ' …' : ''}`);
  const [lo] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  if (range.max >= lo) console.warn(`warning: ${what} passive range ${range.min}-${range.max} overlaps the ephemeral port range (from ${lo})`);
}

export function parseRange(raw: string): { min: number; max: number } {
  const m = /^(\d+)-(\d+)$/.exec(raw.trim());
  if (!m || Number(m[1]) > Number(m[2])) throw new Error(`bad port range "${raw}"`);
  return { min: Number(m[1]), max: Number(m[2]) };
}

/** The last 4000 characters of a child's stdout and stderr, for error messages. */
export function capture(child: ChildProcess) {
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => tail;
}

/** Polls until a login succeeds (bounded), or throws with the server's output. */
async function waitReady(server: RunningServer, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`${server.name} exited during start-up (${server.child.exitCode ?? server.child.signalCode}):\n${server.output()}`);
    }
    try {
      const client = await FtpClient.open(server.host, server.port, 5000);
      await client.login(server.user, server.password);
      await client.quit();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${server.name} not ready after ${timeoutMs} ms: ${(last as Error)?.message}\n${server.output()}`);
}

export interface OursOptions {
  name: string;
  dir: string;
  port: number;
  pasvRange: { min: number; max: number };
  fsync: boolean;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** What node runs instead of edgeEntry(), e.g. another commit's bundle (bench:session-rate's baseline). */
  entry?: string[];
  /** Pins the edge to these CPUs (`taskset -c`, which keeps the PID), e.g. '1'. */
  cpus?: string;
  /** A bench user made earlier with createBenchUser (e.g. to import it into another user store first). */
  user?: ReturnType<typeof createBenchUser>;
}

/** Our edge: `node --import tsx services/ftp-edge/src/main.ts` (what `npm start` runs, without the npm/tsx wrappers, so the PID is the server), or its bundle (edgeEntry). */
/**
 * How the edge is started: from its TypeScript sources through tsx, or with BENCH_EDGE=bundle from the esbuild bundle
 * the image runs (`npm run build --workspace @ftp/edge` first), which is what production costs look like: no loader
 * hooks, no source maps.
 */
export function edgeEntry(): string[] {
  if (process.env.BENCH_EDGE_ENTRY) return [process.env.BENCH_EDGE_ENTRY]; // e.g. another commit's bundle
  if (process.env.BENCH_EDGE !== 'bundle') return ['--import', 'tsx', 'services/ftp-edge/src/main.ts'];
  const bundle = join(REPO_ROOT, 'services/ftp-edge/dist/main.js');
  if (!existsSync(bundle)) throw new Error(`BENCH_EDGE=bundle: ${bundle} is missing; run npm run build --workspace @ftp/edge`);
  return [bundle];
}

/** A data folder and a users file under `dir` with user `bench` and a fresh password, made with `ftpctl user add`. */
export function createBenchUser(dir: string): { dataDir: string; usersFile: string; password: string } {
  const dataDir = join(dir, 'data');
  const usersFile = join(dir, 'users.yaml');
  mkdirSync(dataDir, { recursive: true });
  const password = randomBytes(12).toString('base64url');
  const ftpctl = spawnSync(process.execPath, ['--import', 'tsx', 'libs/identity/src/cli/ftpctl.ts', 'user', 'add', 'bench', '--password-stdin'], {
    cwd: REPO_ROOT,
    env: { ...process.env, FTP_USERS_FILE: usersFile },
    input: `${password}\n`,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (ftpctl.status !== 0) throw new Error(`ftpctl user add failed (${ftpctl.status}): ${ftpctl.stderr}${ftpctl.stdout}`);
  return { dataDir, usersFile, password };
}

/** Which code was measured: HEAD and the files changed outside test/ (other work in progress counts too). */
export function codeVersion(): { commit: string; dirty: string[] } {
  const git = (args: string[]) => spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 }).stdout?.trimEnd() ?? '';
  const commit = git(['log', '-1', '--format=%h %s']) || 'unknown';
  const dirty = git(['status', '--porcelain', '--untracked-files=no'])
    .split('\n')
    .map((l) => l.slice(3))
    .filter((f) => f && !f.startsWith('test/'));
  return { commit, dirty };
}

/** Runs a command to its end (bounded: 15 min), output captured; throws with the output's start when it fails. */
export function run(cmd: string, args: string[], cwd: string) {
  const result = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 900_000 });
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}:\n${result.stderr}${result.stdout}`.slice(0, 4000));
}

/**
 * An earlier commit's edge bundle (bench:session-rate, bench:limits), built once into .bench/baseline-<sha>/ (a plain
 * copy of the commit from `git archive`, not a worktree, with its own `npm ci`); the path to give startOurs as `entry`.
 */
export function baselineBundle(commit: string): string {
  const sha = execFileSync('git', ['rev-parse', '--verify', `${commit}^{commit}`], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  const dir = join(REPO_ROOT, '.bench', `baseline-${sha.slice(0, 12)}`);
  const bundle = join(dir, 'services/ftp-edge/dist/main.js');
  if (existsSync(bundle)) return bundle;
  console.log(`building the baseline ${sha.slice(0, 12)} into ${dir} (npm ci + build, once)…`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('sh', ['-c', `git archive ${sha} | tar -x -C '${dir}'`], { cwd: REPO_ROOT });
  run('npm', ['ci', '--no-audit', '--no-fund'], dir);
  run('npm', ['run', 'build', '--workspace', '@ftp/edge'], dir);
  return bundle;
}

export async function startOurs(options: OursOptions): Promise<RunningServer> {
  const { dataDir, usersFile, password } = options.user ?? createBenchUser(options.dir);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    FTP_HOST: HOST,
    FTP_PORT: String(options.port),
    FTP_PASV_RANGE: `${options.pasvRange.min}-${options.pasvRange.max}`,
    FTP_PASV_ADDRESS: '',
    FTP_DATA_DIR: dataDir,
    FTP_USERS_FILE: usersFile,
    FTP_ADMIN_PORT: '0',
    FTP_LOG_LEVEL: 'warn',
    FTP_MAX_SESSIONS: '100000',
    FTP_MAX_SESSIONS_PER_IP: '0',
    // The load comes from one loopback address, tens of sessions logging in at once.
    FTP_MAX_UNAUTHENTICATED_PER_IP: '0',
    FTP_MAX_SESSIONS_PER_USER: '0',
    FTP_SFTP_PORT: '0', // measured by bench:sftp; two edges here would both claim 2222
    FTP_FSYNC_UPLOADS: String(options.fsync),
    FTP_DRAIN_SECONDS: '2',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_SDK_DISABLED: 'true',
    NODE_ENV: 'production',
    ...options.env,
  };
  const command = [process.execPath, ...(options.nodeArgs ?? []), ...(options.entry ?? edgeEntry())];
  if (options.cpus) command.unshift('taskset', '-c', options.cpus);
  const child = spawn(command[0], command.slice(1), {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server: RunningServer = {
    name: options.name,
    host: HOST,
    port: options.port,
    user: 'bench',
    password,
    root: join(dataDir, 'bench'),
    pid: child.pid!,
    child,
    output: capture(child),
  };
  await waitReady(server, 30_000);
  return server;
}

export const VSFTPD_USER = 'benchftp';

/**
 * Creates the system user vsftpd authenticates through PAM (once; left in place), and sets a fresh password hashed
 * with `crypt` (chpasswd -c: SHA512, YESCRYPT, MD5...). The hash decides what every vsftpd login costs in PAM.
 */
export function ensureVsftpdUser(crypt: string): { user: string; password: string; uid: number; gid: number } {
  const exists = spawnSync('id', ['-u', VSFTPD_USER]).status === 0;
  if (!exists) execFileSync('useradd', ['-m', '-s', '/bin/sh', VSFTPD_USER], { stdio: 'inherit' });
  const [, , uid, gid, , home, shell] = execFileSync('getent', ['passwd', VSFTPD_USER], { encoding: 'utf8' }).trim().split(':');
  // vsftpd chdirs to the home before local_root; Debian's PAM stack wants the shell in /etc/shells.
  if (!existsSync(home)) throw new Error(`home ${home} of ${VSFTPD_USER} is missing: vsftpd refuses the login (recreate the user)`);
  if (!readFileSync('/etc/shells', 'utf8').split('\n').includes(shell)) throw new Error(`shell ${shell} of ${VSFTPD_USER} is not in /etc/shells (pam_shells)`);
  const password = randomBytes(12).toString('base64url');
  execFileSync('chpasswd', ['-c', crypt], { input: `${VSFTPD_USER}:${password}\n` });
  return { user: VSFTPD_USER, password, uid: Number(uid), gid: Number(gid) };
}

export interface VsftpdOptions {
  dir: string;
  port: number;
  pasvRange: { min: number; max: number };
  /** Lines appended to the generated config (override defaults). */
  extraConfig?: string;
  /** chpasswd -c method for the bench user's password. */
  crypt: string;
}

/** The vsftpd binary, its bench user, and DIR/data (the user's, its root) and DIR/empty (secure_chroot_dir). */
export function prepareVsftpd(dir: string, crypt: Parameters<typeof ensureVsftpdUser>[0]) {
  const binary = ['/usr/sbin/vsftpd', '/usr/bin/vsftpd'].find(existsSync);
  if (!binary) throw new Error('vsftpd not found (apt-get install vsftpd)');
  const account = ensureVsftpdUser(crypt);
  const root = join(dir, 'data');
  mkdirSync(root, { recursive: true });
  chownSync(root, account.uid, account.gid);
  // secure_chroot_dir: empty, owned by root, not writable by anyone else. Ours, inside the temp dir.
  const empty = join(dir, 'empty');
  mkdirSync(empty, { recursive: true });
  chmodSync(empty, 0o555);
  return { binary, account, root, empty };
}

export async function startVsftpd(options: VsftpdOptions): Promise<RunningServer> {
  const { binary, account, root, empty } = prepareVsftpd(options.dir, options.crypt);

  const template = readFileSync(new URL('./vsftpd.conf.template', import.meta.url), 'utf8');
  const values: Record<string, string> = {
    LISTEN_ADDRESS: HOST,
    LISTEN_PORT: String(options.port),
    LOCAL_ROOT: root,
    SECURE_CHROOT_DIR: empty,
    PASV_MIN_PORT: String(options.pasvRange.min),
    PASV_MAX_PORT: String(options.pasvRange.max),
    LOG_FILE: join(options.dir, 'vsftpd.log'),
  };
  const conf = template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`vsftpd.conf.template: unknown placeholder ${key}`);
    return values[key];
  });
  const confPath = join(options.dir, 'vsftpd.conf');
  writeFileSync(confPath, conf + (options.extraConfig ? `\n${options.extraConfig.replace(/\\n/g, '\n')}\n` : ''), { mode: 0o600 });

  const child = spawn(binary, [confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server: RunningServer = {
    name: 'vsftpd',
    host: HOST,
    port: options.port,
    user: account.user,
    password: account.password,
    root,
    pid: child.pid!,
    child,
    output: capture(child),
  };
  await waitReady(server, 15_000);
  return server;
}

interface ProcId {
  pid: number;
  /** Start time in clock ticks since boot: with the PID, names one process even if the PID is reused later. */
  start: string;
}

/** Parent PID and start time of `pid` from /proc, or undefined if it is gone. */
function procInfo(pid: number): { ppid: number; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), start: fields[19] };
  } catch {
    return undefined;
  }
}

/** Every descendant of `pid` (from /proc), deepest first. */
function descendants(pid: number): ProcId[] {
  const children = new Map<number, ProcId[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = procInfo(Number(entry));
    if (!info) continue;
    const list = children.get(info.ppid) ?? [];
    list.push({ pid: Number(entry), start: info.start });
    children.set(info.ppid, list);
  }
  const out: ProcId[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      walk(c.pid);
      out.push(c);
    }
  };
  walk(pid);
  return out;
}

/** SIGKILL to a process recorded earlier, only if that PID still names the same process. */
function killRecorded(proc: ProcId) {
  if (procInfo(proc.pid)?.start !== proc.start) return;
  try {
    process.kill(proc.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** SIGTERM by PID (and its descendants, by PID), SIGKILL after `graceMs`. Never throws. */
export async function stopServer(server: RunningServer, graceMs = 5000): Promise<void> {
  const { child } = server;
  const stragglers = descendants(server.pid);
  if (alive(child)) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(server.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs));
    const ok = await Promise.race([exited.then(() => true), timer]);
    if (!ok && alive(child)) {
      try {
        process.kill(server.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
  }
  // vsftpd sessions are separate processes that outlive the listener: end any still there.
  for (const proc of stragglers) killRecorded(proc);
}

/** Synchronous last resort for process 'exit': SIGKILL by PID. */
export function killNow(server: RunningServer) {
  for (const proc of descendants(server.pid)) killRecorded(proc);
  if (alive(server.child)) {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A private, unpersisted redis-server on loopback `port` (optionally pinned with `taskset -c`); kill() it when done. */
export async function startRedisServer(port: number, cpus?: string): Promise<ChildProcess> {
  const command = ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (cpus) command.unshift('taskset', '-c', cpus);
  const redis = spawn(command[0], command.slice(1), { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = createConnection(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return redis;
    await new Promise((r) => setTimeout(r, 100));
  }
  redis.kill();
  throw new Error('redis-server did not start');
}

/**
 * The edges and redis-servers a bench started, killed when it exits however it exits (Ctrl-C, an exception): add each
 * one as it starts.
 */
export function killedAtExit(): { servers: Set<RunningServer>; redises: Set<ChildProcess> } {
  const servers = new Set<RunningServer>();
  const redises = new Set<ChildProcess>();
  process.on('exit', () => {
    for (const s of servers) killNow(s);
    for (const r of redises) r.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
  return { servers, redises };
}
