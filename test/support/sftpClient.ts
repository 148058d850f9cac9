// Clients for the SFTP end-to-end tests: OpenSSH (`sftp -b`, `scp`, `ssh`), curl (libssh2), Python paramiko, ssh2's own
// client in Node, and raw TCP for what happens before the SSH banner. Every child runs in its own process group so that
// a kill takes the `ssh` that `sftp`/`scp` start, as when a client machine dies; groups left running at exit are killed.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readdirSync, statSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import ssh2, { type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { hashPassword } from '@ftp/identity';
import { makeTempDir } from './processes';
import { startTestServer, type TestServer, type TestServerOptions } from './server';

const { Client } = ssh2;
export type SshClient = InstanceType<typeof Client>;

/** Loopback only; every OpenSSH client call gets these (no user config, no known_hosts, no agent). */
export const SSH_COMMON = [
  '-F', '/dev/null',
  '-o', 'StrictHostKeyChecking=no',
  '-o', 'UserKnownHostsFile=/dev/null',
  '-o', 'GlobalKnownHostsFile=/dev/null',
  '-o', 'LogLevel=ERROR',
  '-o', 'ConnectTimeout=60',
  '-o', 'ServerAliveInterval=0',
];

/** Debian's python3 with python3-paramiko (the pyenv `python3` on PATH lacks it). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

const groups = new Set<number>();
process.on('exit', () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when `killWhen` or the timeout killed the process group. */
  killed: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the process group after this long (default 120 s): a hung client fails its test instead of the run. */
  timeoutMs?: number;
  /** Polled every 20 ms; true kills the process group (a client dying mid-transfer). */
  killWhen?: () => boolean;
  /** Written to stdin; without it stdin is /dev/null. */
  input?: string;
}

/** Runs a program in its own process group and collects its output. Never rejects for a non-zero exit. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const env = { ...(options.env ?? process.env) };
  delete env.SSH_AUTH_SOCK; // never offer an agent's keys
  const child = spawn(command, args, {
    cwd: options.cwd,
    env,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid) groups.add(child.pid);
  if (options.input !== undefined) child.stdin!.end(options.input);
  let stdout = '';
  let stderr = '';
  let killed = false;
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = () => {
    killed = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timeout = setTimeout(kill, options.timeoutMs ?? 120_000);
  const watch = options.killWhen && setInterval(() => !killed && options.killWhen!() && kill(), 20);
  return new Promise((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timeout);
      if (watch) clearInterval(watch);
      if (child.pid) {
        // The group may still hold the ssh that sftp started: nothing of it may outlive the call.
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
        groups.delete(child.pid);
      }
      resolve({ code, signal, stdout, stderr, killed });
    };
    child.once('error', (err) => {
      stderr += `spawn ${command}: ${err.message}`;
      done(-1, null);
    });
    child.once('close', done);
  });
}

/** How an OpenSSH client proves who it is: a private key file, a password (through sshpass), or both. */
export interface Credentials {
  user: string;
  key?: string;
  password?: string;
  /** Source address (127.0.0.x) of the connection. */
  bindAddress?: string;
}

/**
 * The command and arguments for an OpenSSH client (`sftp`, `scp`, `ssh`) with `creds`: key auth with IdentitiesOnly;
 * a password goes through `sshpass -e` (SSHPASS in the environment). `sftp -b` forces BatchMode=yes, which turns
 * password and keyboard-interactive auth off: `-o BatchMode=no` placed *before* `-b` turns them back on (after it, ssh
 * has already taken sftp's BatchMode=yes and keeps it).
 */
export function openSshCommand(
  program: 'sftp' | 'scp' | 'ssh',
  creds: Credentials,
  options: string[],
  operands: string[],
): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  // ssh keeps the first value it gets for an option: a caller's `options` win over these defaults.
  const auth: string[] = [];
  const methods: string[] = [];
  if (creds.key) {
    auth.push('-i', creds.key, '-o', 'IdentitiesOnly=yes');
    methods.push('publickey');
  } else {
    auth.push('-o', 'PubkeyAuthentication=no');
  }
  if (creds.password !== undefined) {
    auth.push('-o', 'NumberOfPasswordPrompts=1');
    methods.push('password', 'keyboard-interactive');
  }
  auth.push('-o', `PreferredAuthentications=${methods.join(',') || 'none'}`);
  if (creds.bindAddress) auth.push('-o', `BindAddress=${creds.bindAddress}`);
  // `sftp -b` passes BatchMode=yes to ssh as it reads -b, and ssh keeps the first value: BatchMode=no must come first.
  const batchModeOff = creds.password !== undefined ? ['-o', 'BatchMode=no'] : [];
  const args = [...batchModeOff, ...options, ...SSH_COMMON, ...auth, ...operands];
  if (creds.password === undefined) return { command: program, args, env: process.env };
  return { command: 'sshpass', args: ['-e', program, ...args], env: { ...process.env, SSHPASS: creds.password } };
}

/**
 * OpenSSH's `sftp -b` with a batch of `lines` (a line starting with `-` may fail without stopping the batch), stdin
 * from /dev/null, against 127.0.0.1:`port`.
 */
export async function sftpBatch(port: number, creds: Credentials, lines: string[], options: RunOptions & { extraArgs?: string[] } = {}): Promise<RunResult> {
  const dir = await fsp.mkdtemp(path.join(options.cwd ?? '/tmp', '.batch-'));
  const batch = path.join(dir, 'batch');
  await fsp.writeFile(batch, lines.join('\n') + '\n');
  try {
    const c = openSshCommand('sftp', creds, ['-b', batch, '-P', String(port), ...(options.extraArgs ?? [])], [`${creds.user}@127.0.0.1`]);
    return await run(c.command, c.args, { ...options, env: c.env });
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** `ssh` with `args` (before the destination) and an optional remote command after it. */
export function sshRun(port: number, creds: Credentials, args: string[], remote: string[] = [], options: RunOptions = {}): Promise<RunResult> {
  const c = openSshCommand('ssh', creds, ['-p', String(port), ...args], [`${creds.user}@127.0.0.1`, ...remote]);
  return run(c.command, c.args, { ...options, env: c.env });
}

/** `scp` (OpenSSH 9: SFTP underneath) from `from` to `to`; a remote side is written `:PATH` and gets user@host added. */
export function scpRun(port: number, creds: Credentials, from: string, to: string, options: RunOptions = {}): Promise<RunResult> {
  const remote = (p: string) => (p.startsWith(':') ? `${creds.user}@127.0.0.1${p}` : p);
  const c = openSshCommand('scp', creds, ['-P', String(port), '-q'], [remote(from), remote(to)]);
  return run(c.command, c.args, { ...options, env: c.env });
}

/** An OpenSSH key pair made by `ssh-keygen` (private key mode 0600) and its `authorized_keys` line. */
export interface KeyPair {
  privateKey: string;
  publicLine: string;
}

export function makeKeyPair(dir: string, name: string, type: 'ed25519' | 'rsa' = 'ed25519', bits?: number): KeyPair {
  const privateKey = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', `${name}@e2e`, '-f', privateKey], { stdio: 'ignore' });
  return { privateKey, publicLine: execFileSync('cat', [`${privateKey}.pub`]).toString().trim() };
}

export interface UserSpec {
  password?: string;
  publicKeys?: string[];
  authMethods?: string[];
  permissions?: Record<string, string[]>;
  maxSessions?: number;
  home?: string;
}

/** A users-file entry (YAML under `users:`) for startTestServer's `extraUsers`. */
export async function userYaml(name: string, spec: UserSpec): Promise<string> {
  const lines = [`  ${name}:`, `    home: ${spec.home ?? name}`];
  if (spec.password !== undefined) lines.push(`    password: "${await hashPassword(spec.password)}"`);
  if (spec.publicKeys?.length) lines.push('    public_keys:', ...spec.publicKeys.map((k) => `      - ${k}`));
  if (spec.authMethods) lines.push(`    auth_methods: [${spec.authMethods.join(', ')}]`);
  if (spec.maxSessions !== undefined) lines.push(`    max_sessions: ${spec.maxSessions}`);
  if (spec.permissions) {
    lines.push('    permissions:');
    for (const [folder, perms] of Object.entries(spec.permissions)) lines.push(`      ${folder}: [${perms.join(', ')}]`);
  }
  return lines.join('\n') + '\n';
}

/** ed25519 and RSA-3072 host keys made once by ssh-keygen, for FTP_SFTP_HOST_KEYS (saves a key generation per server). */
export function makeHostKeys(dir: string): { files: string[]; env: Record<string, string> } {
  const files = [makeKeyPair(dir, 'ssh_host_ed25519_key').privateKey, makeKeyPair(dir, 'ssh_host_rsa_key', 'rsa', 3072).privateKey];
  return { files, env: { FTP_SFTP_HOST_KEYS: files.join(',') } };
}

// ---------------------------------------------------------------------------------------------------------------------
// ssh2's client

/** Connects ssh2's client; resolves when authenticated, rejects with the error (or 'closed before ready'). */
export function sshConnect(config: ConnectConfig & { onKeyboard?: (prompts: { prompt: string }[]) => string[] }): Promise<SshClient> {
  const client = new Client();
  return new Promise((resolve, reject) => {
    let settled = false;
    client.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    client.once('close', () => {
      if (!settled) {
        settled = true;
        reject(Object.assign(new Error('connection closed before ready'), { level: 'closed' }));
      }
    });
    client.once('ready', () => {
      settled = true;
      resolve(client);
    });
    if (config.onKeyboard) {
      const answer = config.onKeyboard;
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => finish(answer(prompts)));
    }
    client.connect({ host: '127.0.0.1', readyTimeout: 60_000, ...config });
  });
}

export function sftpOf(client: SshClient): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

// The ssh2 promise helpers of the SFTP library's own test harness.
export { call, statusOf } from '../../libs/sftp-session/src/testServer';

/** Closes an ssh2 client and waits for the socket to go. */
export async function closeClient(client: SshClient): Promise<void> {
  await new Promise<void>((resolve) => {
    client.once('close', () => resolve());
    client.end();
    setTimeout(() => {
      client.destroy();
      resolve();
    }, 5000).unref();
  });
}

export const SSH_FX = { OK: 0, EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, OP_UNSUPPORTED: 8 } as const;

// ---------------------------------------------------------------------------------------------------------------------
// paramiko and curl

const PARAMIKO_SCRIPT = String.raw`
import json, sys, paramiko
spec = json.loads(sys.argv[1])
t = paramiko.Transport((spec['host'], spec['port']))
t.banner_timeout = 60
t.start_client(timeout=60)
if spec.get('key'):
    t.auth_publickey(spec['user'], paramiko.Ed25519Key.from_private_key_file(spec['key']))
else:
    t.auth_password(spec['user'], spec['password'])
sftp = paramiko.SFTPClient.from_transport(t)
results = []
for op in spec['ops']:
    try:
        kind = op[0]
        if kind == 'put': sftp.put(op[1], op[2]); results.append(['ok'])
        elif kind == 'get': sftp.get(op[1], op[2]); results.append(['ok'])
        elif kind == 'listdir': results.append(['ok', sorted(sftp.listdir(op[1]))])
        elif kind == 'remove': sftp.remove(op[1]); results.append(['ok'])
        elif kind == 'mkdir': sftp.mkdir(op[1]); results.append(['ok'])
        elif kind == 'rename': sftp.posix_rename(op[1], op[2]); results.append(['ok'])
        elif kind == 'stat': results.append(['ok', sftp.stat(op[1]).st_size])
        elif kind == 'normalize': results.append(['ok', sftp.normalize(op[1])])
        else: results.append(['error', -1, 'unknown op'])
    except IOError as e:
        results.append(['error', e.errno, str(e)])
sftp.close()
t.close()
print(json.dumps(results))
`;

export type ParamikoOp = ['put' | 'get' | 'rename', string, string] | ['listdir' | 'remove' | 'mkdir' | 'stat' | 'normalize', string];
/** One entry per op: ['ok', value?] or ['error', errno, message] (IOError: errno 13 = permission denied, 2 = no such file). */
export type ParamikoResult = ['ok', unknown?] | ['error', number, string];

export async function paramiko(port: number, creds: { user: string; password?: string; key?: string }, ops: ParamikoOp[], cwd?: string): Promise<ParamikoResult[]> {
  const spec = { host: '127.0.0.1', port, user: creds.user, password: creds.password, key: creds.key, ops };
  const result = await run(SYSTEM_PYTHON, ['-c', PARAMIKO_SCRIPT, JSON.stringify(spec)], { cwd });
  if (result.code !== 0) throw new Error(`paramiko failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as ParamikoResult[];
}

// ---------------------------------------------------------------------------------------------------------------------
// files, logs, raw TCP

export async function writeRandom(file: string, size: number): Promise<void> {
  const out = createWriteStream(file);
  for (let left = size; left > 0; left -= 1024 * 1024) {
    if (!out.write(randomBytes(Math.min(left, 1024 * 1024)))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await new Promise<void>((resolve, reject) => out.on('finish', () => resolve()).on('error', reject));
}

export async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Relative paths of every file under `root`, sorted. */
export function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

export function sizeOf(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.size ?? -1;
}

export type LogLine = Record<string, unknown>;

/** Waits until a log line matches (lines logged before the call count); rejects after `timeoutMs` with a tail. */
export async function waitForLog(server: Pick<TestServer, 'logs'>, match: (line: LogLine) => boolean, what: string, timeoutMs = 30_000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = server.logs.find(match);
    if (found) return found;
    if (Date.now() > deadline) {
      const tail = server.logs.slice(-15).map((l) => JSON.stringify(l)).join('\n  ');
      throw new Error(`no log line "${what}" within ${timeoutMs} ms; last lines:\n  ${tail}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Polls `probe` until true; rejects after `timeoutMs` naming `what`. */
export async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface RawSsh {
  /** Everything the server sent so far. */
  received(): string;
  closed(): boolean;
  /** When the server closed it (ms since connect), once closed. */
  closedAfterMs?: number;
  waitClosed(timeoutMs?: number): Promise<number>;
  /** Resolves with the server's identification line (`SSH-2.0-…`), or rejects if the connection closes first. */
  banner(timeoutMs?: number): Promise<string>;
  destroy(): void;
}

/** A TCP connection to the SFTP port that sends nothing: what does the server say, and when does it hang up? */
export function rawSsh(port: number, localAddress = '127.0.0.1'): Promise<RawSsh> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    let closed = false;
    const raw: RawSsh = {
      received: () => text,
      closed: () => closed,
      async waitClosed(timeoutMs = 30_000) {
        await until('the server closes the connection', () => closed, timeoutMs);
        return raw.closedAfterMs!;
      },
      async banner(timeoutMs = 30_000) {
        await until('an SSH banner or a close', () => text.includes('\n') || closed, timeoutMs);
        const line = text.split('\r\n')[0];
        if (!line.startsWith('SSH-')) throw new Error(`no SSH banner (closed: ${closed}, received ${JSON.stringify(text)})`);
        return line;
      },
      destroy: () => socket.destroy(),
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('close', () => {
      closed = true;
      raw.closedAfterMs = Date.now() - started;
    });
    socket.once('connect', () => resolve(raw));
    socket.on('error', (err) => {
      if (!closed && !socket.connecting) return;
      reject(err);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// the edge

let hostKeys: { dir: string; env: Record<string, string> } | undefined;

/**
 * ed25519 and RSA host keys made once per test process (FTP_SFTP_HOST_KEYS), so that each server does not generate an
 * RSA-3072 key of its own on a busy machine. Removed at exit.
 */
export function sharedHostKeys(): Record<string, string> {
  if (!hostKeys) {
    const dir = makeTempDir('sftp-hostkeys-');
    hostKeys = { dir, env: makeHostKeys(dir).env };
  }
  return hostKeys.env;
}

/** startTestServer with SFTP on, the shared host keys, and `options.env` on top. */
export function startSftpServer(options: TestServerOptions = {}): Promise<TestServer> {
  return startTestServer({ ...options, sftp: true, env: { ...sharedHostKeys(), ...options.env } });
}
