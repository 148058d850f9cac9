/**
 * The servers of `npm run bench:sftp`, each a child process on 127.0.0.1 inside its own CPU group (cgroup.ts):
 *   - OpenSSH's sshd with internal-sftp (generated config from sshd_config.template, its own host key, `-D -e -f`);
 *   - ours: the edge's SFTP listener (FTP_SFTP_PORT), or, while the edge has none, the SFTP request layer's test
 *     harness (sftpTestServer.ts).
 * Stopped by PID (SIGTERM, then SIGKILL), and whatever is left in their group, by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { parse, stringify } from 'yaml';
import { alive, capture, createBenchUser, edgeEntry, REPO_ROOT } from './servers';
import { CpuGroup } from './cgroup';
import { runSftp, writeBatch, type ClientOptions, type SftpTarget } from './sftpClient';

export const HOST = '127.0.0.1';
export { REPO_ROOT };

export interface SftpServer extends SftpTarget {
  /** 'openssh' | 'ours-edge' | 'ours-testserver' */
  kind: string;
  /** Host folder that is the session's working directory (where relative paths land). */
  root: string;
  pid: number;
  child: ChildProcess;
  group: CpuGroup;
  output(): string;
  /** Free-form facts for the header (version, fsync, entry point). */
  describe: string;
}


/** Polls with `sftp -b` (pwd) until a session works, bounded; throws with the server's output. */
export async function waitReady(server: SftpServer, client: ClientOptions, batchDir: string, timeoutMs: number) {
  const batch = join(batchDir, `ready-${server.name}.batch`);
  writeBatch(batch, ['pwd']);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let attempt = 0; attempt < 200 && Date.now() < deadline; attempt++) {
    if (!alive(server.child)) throw new Error(`${server.name} exited during start-up (${server.child.exitCode ?? server.child.signalCode}):\n${server.output()}`);
    const r = await runSftp(server, batch, client, 10_000);
    if (r.code === 0) return;
    last = r.stderr.trim();
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`${server.name} not ready after ${timeoutMs} ms: ${last}\n${server.output()}`);
}

export function sshdVersion(): string {
  const r = spawnSync('/usr/sbin/sshd', ['-V'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stderr}${r.stdout}`.trim().split('\n')[0] || 'sshd';
}

export function sshKeygen(file: string, comment: string) {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

export function publicKeyOf(privateKeyFile: string): string {
  const r = spawnSync('ssh-keygen', ['-y', '-f', privateKeyFile], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`ssh-keygen -y ${privateKeyFile} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** sshd_config.template filled with `values` into DIR/sshd_config, checked with `sshd -t`; returns its path. */
export function writeSshdConfig(binary: string, dir: string, values: Record<string, string>): string {
  const template = readFileSync(new URL('./sshd_config.template', import.meta.url), 'utf8');
  const config = template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`sshd_config.template: unknown placeholder ${key}`);
    return values[key];
  });
  const configFile = join(dir, 'sshd_config');
  writeFileSync(configFile, config, { mode: 0o600 });
  const check = spawnSync(binary, ['-t', '-f', configFile], { encoding: 'utf8', timeout: 10_000 });
  if (check.status !== 0) throw new Error(`sshd -t rejects ${configFile}: ${check.stderr}`);
  return configFile;
}

export interface SshdOptions {
  name: string;
  dir: string;
  port: number;
  hostKey: string;
  clientPublicKey: string;
}

export async function startSshd(options: SshdOptions, client: ClientOptions): Promise<SftpServer> {
  const binary = '/usr/sbin/sshd';
  if (!existsSync(binary)) throw new Error('sshd not found (apt-get install openssh-server)');
  // sshd's privilege separation directory (compiled in); Debian's service creates it at boot, a container may not.
  if (!existsSync('/run/sshd')) {
    mkdirSync('/run/sshd', { recursive: true });
    chmodSync('/run/sshd', 0o755);
  }
  const data = join(options.dir, 'data');
  mkdirSync(data, { recursive: true });
  const authorizedKeys = join(options.dir, 'authorized_keys');
  writeFileSync(authorizedKeys, `${options.clientPublicKey}\n`, { mode: 0o600 });
  const user = userInfo().username;
  const configFile = writeSshdConfig(binary, options.dir, {
    LISTEN_ADDRESS: HOST,
    LISTEN_PORT: String(options.port),
    HOST_KEY: options.hostKey,
    AUTHORIZED_KEYS: authorizedKeys,
    USER: user,
    DATA_DIR: data,
    MAX_STARTUPS: '1000',
  });

  const group = new CpuGroup(options.name);
  const cmd = group.wrap(binary, ['-D', '-e', '-f', configFile]);
  const child = spawn(cmd.command, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  group.setRoot(child.pid!);
  const server: SftpServer = {
    name: options.name,
    kind: 'openssh',
    host: HOST,
    port: options.port,
    user,
    root: data,
    pid: child.pid!,
    child,
    group,
    output: capture(child),
    describe: `${sshdVersion()}, internal-sftp, ForceCommand internal-sftp -d <data>, no chroot, LogLevel ERROR, MaxStartups 1000`,
  };
  try {
    await waitReady(server, client, options.dir, 15_000);
  } catch (err) {
    await stopServer(server);
    throw err;
  }
  return server;
}

/** The SFTP request layer's test harness as a process (sftpTestServer.ts); its key is the one every client uses. */
export async function startTestServerProcess(name: string, nodeArgs: string[] = []): Promise<{ server: SftpServer; keyFile: string }> {
  const group = new CpuGroup(name);
  const cmd = group.wrap(process.execPath, [...nodeArgs, '--import', 'tsx', 'test/bench/sftpTestServer.ts']);
  const child = spawn(cmd.command, cmd.args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } });
  group.setRoot(child.pid!);
  const output = capture(child);
  const info = await new Promise<{ port: number; root: string; keyFile: string; user: string }>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${name}: no start-up line within 30 s:\n${output()}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited during start-up (${code}):\n${output()}`));
    });
  });
  const server: SftpServer = {
    name,
    kind: 'ours-testserver',
    host: HOST,
    port: info.port,
    user: info.user,
    root: info.root,
    pid: child.pid!,
    child,
    group,
    output,
    describe: 'STAND-IN: libs/sftp-session/src/testServer.ts (ssh2 Server + serveSftp over local storage), not the edge; fsyncs every upload before publishing it (createLocalStorage default)',
  };
  return { server, keyFile: info.keyFile };
}

export interface EdgeOptions {
  name: string;
  dir: string;
  sftpPort: number;
  ftpPort: number;
  pasv: string;
  hostKey: string;
  clientPublicKey: string;
  fsync: boolean;
  nodeArgs?: string[];
}

export async function startEdge(options: EdgeOptions, client: ClientOptions): Promise<SftpServer> {
  const { dataDir, usersFile } = createBenchUser(options.dir);
  // The bench user's public key (authorized_keys line format), as `ftpctl user add-key` would add it.
  const doc = parse(readFileSync(usersFile, 'utf8')) as { users: Record<string, Record<string, unknown>> };
  doc.users.bench.public_keys = [options.clientPublicKey];
  writeFileSync(usersFile, stringify(doc), { mode: 0o600 });

  const tlsDir = join(options.dir, 'tls');
  mkdirSync(tlsDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    FTP_HOST: HOST,
    FTP_PORT: String(options.ftpPort),
    FTP_PASV_RANGE: options.pasv,
    FTP_PASV_ADDRESS: '',
    FTP_SFTP_PORT: String(options.sftpPort),
    FTP_SFTP_HOST: HOST,
    FTP_SFTP_HOST_KEYS: options.hostKey,
    FTP_TLS_DIR: tlsDir,
    FTP_DATA_DIR: dataDir,
    FTP_USERS_FILE: usersFile,
    FTP_ADMIN_PORT: '0',
    FTP_LOG_LEVEL: 'warn',
    FTP_MAX_SESSIONS: '100000',
    FTP_MAX_SESSIONS_PER_IP: '0',
    FTP_MAX_SESSIONS_PER_USER: '0',
    FTP_MAX_UNAUTHENTICATED_PER_IP: '0',
    FTP_BAN_AFTER_FAILURES: '0',
    FTP_FSYNC_UPLOADS: String(options.fsync),
    FTP_DRAIN_SECONDS: '2',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_SDK_DISABLED: 'true',
    NODE_ENV: 'production',
  };
  delete env.REDIS_URL;
  const group = new CpuGroup(options.name);
  const cmd = group.wrap(process.execPath, [...(options.nodeArgs ?? []), ...edgeEntry()]);
  const child = spawn(cmd.command, cmd.args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  group.setRoot(child.pid!);
  const server: SftpServer = {
    name: options.name,
    kind: 'ours-edge',
    host: HOST,
    port: options.sftpPort,
    user: 'bench',
    root: join(dataDir, 'bench'),
    pid: child.pid!,
    child,
    group,
    output: capture(child),
    describe: `edge (${process.env.BENCH_EDGE === 'bundle' ? 'bundle dist/main.js' : 'tsx sources'}), FTP_FSYNC_UPLOADS=${options.fsync}, in-memory cluster state, log level warn`,
  };
  try {
    await waitReady(server, client, options.dir, 45_000);
  } catch (err) {
    await stopServer(server);
    throw err;
  }
  return server;
}

function kill(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM by PID, SIGKILL after `graceMs`, then any process left in its group (by PID); removes the group. */
export async function stopServer(server: SftpServer, graceMs = 5000): Promise<void> {
  const { child } = server;
  if (alive(child)) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    kill(server.pid, 'SIGTERM');
    const ok = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs))]);
    if (!ok && alive(child)) {
      kill(server.pid, 'SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
  }
  for (const pid of server.group.pids()) kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  server.group.remove();
}

/** Synchronous last resort for process 'exit'. */
export function killNow(server: SftpServer) {
  if (alive(server.child)) kill(server.pid, 'SIGKILL');
  for (const pid of server.group.pids()) kill(pid, 'SIGKILL');
  server.group.remove();
}
