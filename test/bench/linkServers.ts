/**
 * The servers of `npm run bench:links`, each a child process in the root namespace bound only to a test link's server
 * address (test/support/netns.ts): our edge (FTP, explicit FTPS and SFTP in one process), vsftpd (FTP and FTPS, stock
 * options plus TLS) and OpenSSH's sshd with internal-sftp. Stopped by PID (servers.ts's stopServer).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { parse, stringify } from 'yaml';
import { freeBlock } from '../support/processes';
import { FtpClient } from './ftpClient';
import { writeSshdConfig } from './sftpServers';
import { alive, capture, createBenchUser, edgeEntry, prepareVsftpd, REPO_ROOT, stopServer, type RunningServer } from './servers';

export interface LinkServer extends RunningServer {
  /** What it serves: ours all three, vsftpd FTP and FTPS, sshd SFTP. */
  protocols: Set<'ftp' | 'ftps' | 'sftp'>;
  /** SFTP port (ours and sshd). */
  sftpPort?: number;
  /** The user of SFTP sessions (key authentication). */
  sftpUser?: string;
  /** Folder where SFTP sessions start (relative paths land there). */
  sftpRoot?: string;
  /** Uid/gid that must own folders the server's sessions write into (vsftpd's unprivileged user). */
  owner?: { uid: number; gid: number };
  describe: string;
}

export interface SshKeys {
  /** Private host key (ed25519) every SSH server presents. */
  hostKey: string;
  /** The client's private key and its public line. */
  clientKey: string;
  clientPublic: string;
}


/** Polls until `probe` works (bounded), or throws with the server's output. */
async function waitUntil(server: RunningServer, probe: () => Promise<void>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (!alive(server.child)) throw new Error(`${server.name} exited during start-up (${server.child.exitCode ?? server.child.signalCode}):\n${server.output()}`);
    try {
      await probe();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${server.name} not ready after ${timeoutMs} ms: ${(last as Error)?.message}\n${server.output()}`);
}

async function ftpLogin(server: RunningServer) {
  const client = await FtpClient.open(server.host, server.port, 5000);
  await client.login(server.user, server.password);
  await client.quit();
}

/** A TCP connect that reads an SSH banner. */
async function sshBanner(host: string, port: number) {
  const { connect } = await import('node:net');
  await new Promise<void>((resolve, reject) => {
    const s = connect(port, host);
    const timer = setTimeout(() => (s.destroy(), reject(new Error('no SSH banner within 5 s'))), 5000);
    s.once('data', (d: Buffer) => {
      clearTimeout(timer);
      s.destroy();
      if (d.toString('latin1').startsWith('SSH-')) resolve();
      else reject(new Error(`not an SSH banner: ${d.toString('latin1').slice(0, 40)}`));
    });
    s.once('error', (err) => (clearTimeout(timer), reject(err)));
  });
}

async function started(server: LinkServer, probe: () => Promise<void>, timeoutMs: number): Promise<LinkServer> {
  try {
    await waitUntil(server, probe, timeoutMs);
  } catch (err) {
    await stopServer(server);
    throw err;
  }
  return server;
}

export function sshKeys(dir: string): SshKeys {
  const keygen = (file: string, comment: string) => {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  };
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const clientKey = join(dir, 'id_ed25519');
  keygen(hostKey, 'bench-links-host');
  keygen(clientKey, 'bench-links-client');
  return { hostKey, clientKey, clientPublic: readFileSync(`${clientKey}.pub`, 'utf8').trim() };
}

export interface OursOnLink {
  name: string;
  dir: string;
  address: string;
  keys: SshKeys;
  /** Extra FTP_* settings (e.g. to compare a setting). */
  env?: Record<string, string>;
}

/** Our edge (BENCH_EDGE=bundle: the built bundle), FTP + explicit FTPS + SFTP on `address`, embedded state, no fsync. */
export async function startOursOnLink(options: OursOnLink): Promise<LinkServer> {
  const { dataDir, usersFile, password } = createBenchUser(options.dir);
  const doc = parse(readFileSync(usersFile, 'utf8')) as { users: Record<string, Record<string, unknown>> };
  doc.users.bench.public_keys = [options.keys.clientPublic];
  writeFileSync(usersFile, stringify(doc), { mode: 0o600 });
  const root = join(dataDir, 'bench');
  mkdirSync(root, { recursive: true });
  const [port, sftpPort] = [await freeBlock(1, [options.address]), await freeBlock(1, [options.address])];
  const pasv = await freeBlock(100, [options.address]);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    FTP_HOST: options.address,
    FTP_PORT: String(port),
    FTP_PASV_RANGE: `${pasv}-${pasv + 99}`,
    FTP_PASV_ADDRESS: '',
    FTP_SFTP_PORT: String(sftpPort),
    FTP_SFTP_HOST: options.address,
    FTP_SFTP_HOST_KEYS: options.keys.hostKey,
    FTP_TLS_DIR: join(options.dir, 'tls'),
    FTP_DATA_DIR: dataDir,
    FTP_USERS_FILE: usersFile,
    FTP_ADMIN_PORT: '0',
    FTP_LOG_LEVEL: 'warn',
    FTP_MAX_SESSIONS_PER_IP: '0',
    FTP_MAX_UNAUTHENTICATED_PER_IP: '0',
    FTP_BAN_AFTER_FAILURES: '0',
    FTP_FSYNC_UPLOADS: 'false', // vsftpd and sshd never fsync
    FTP_DRAIN_SECONDS: '2',
    FTP_RELAY_PORT: '0',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_SDK_DISABLED: 'true',
    NODE_ENV: 'production',
    ...options.env,
  };
  delete env.REDIS_URL;
  const child = spawn(process.execPath, edgeEntry(), { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const server: LinkServer = {
    name: options.name,
    host: options.address,
    port,
    user: 'bench',
    password,
    root,
    pid: child.pid!,
    child,
    output: capture(child),
    protocols: new Set(['ftp', 'ftps', 'sftp']),
    sftpPort,
    sftpUser: 'bench',
    sftpRoot: root,
    describe: `edge ${process.env.BENCH_EDGE === 'bundle' ? 'bundle (services/ftp-edge/dist/main.js)' : 'from sources (tsx)'}, embedded state, FTP_FSYNC_UPLOADS=false${options.env && Object.keys(options.env).length ? `, ${Object.entries(options.env).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`,
  };
  return started(server, () => ftpLogin(server), 45_000);
}

export function vsftpdVersion(): string {
  const r = spawnSync('sh', ['-c', '/usr/sbin/vsftpd -v 0>&1'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] || 'vsftpd';
}

/** vsftpd with the bench template (stock options) on `address`, plus explicit FTPS with `cert`/`key`; clear FTP allowed. */
export async function startVsftpdOnLink(options: { dir: string; address: string; cert: string; key: string }): Promise<LinkServer> {
  mkdirSync(options.dir, { recursive: true });
  const { binary, account, root, empty } = prepareVsftpd(options.dir, 'SHA512');
  const port = await freeBlock(1, [options.address]);
  const pasv = await freeBlock(100, [options.address]);
  const template = readFileSync(new URL('./vsftpd.conf.template', import.meta.url), 'utf8');
  const values: Record<string, string> = {
    LISTEN_ADDRESS: options.address,
    LISTEN_PORT: String(port),
    LOCAL_ROOT: root,
    SECURE_CHROOT_DIR: empty,
    PASV_MIN_PORT: String(pasv),
    PASV_MAX_PORT: String(pasv + 99),
    LOG_FILE: join(options.dir, 'vsftpd.log'),
  };
  const tls = [
    'ssl_enable=YES',
    `rsa_cert_file=${options.cert}`,
    `rsa_private_key_file=${options.key}`,
    'force_local_logins_ssl=NO',
    'force_local_data_ssl=NO',
    'require_ssl_reuse=YES',
    'ssl_ciphers=HIGH',
  ];
  const conf = template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`vsftpd.conf.template: unknown placeholder ${key}`);
    return values[key];
  });
  const confPath = join(options.dir, 'vsftpd.conf');
  writeFileSync(confPath, `${conf}\n${tls.join('\n')}\n`, { mode: 0o600 });
  const child = spawn(binary, [confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server: LinkServer = {
    name: 'vsftpd',
    host: options.address,
    port,
    user: account.user,
    password: account.password,
    root,
    pid: child.pid!,
    child,
    output: capture(child),
    protocols: new Set(['ftp', 'ftps']),
    owner: { uid: account.uid, gid: account.gid },
    describe: `${vsftpdVersion()}, stock options (vsftpd.conf.template) + ssl_enable, require_ssl_reuse, ssl_ciphers=HIGH`,
  };
  return started(server, () => ftpLogin(server), 15_000);
}

export function sshdVersion(): string {
  const r = spawnSync('/usr/sbin/sshd', ['-V'], { encoding: 'utf8', timeout: 5000 });
  return `${r.stderr}${r.stdout}`.trim().split('\n')[0] || 'sshd';
}

/** OpenSSH's sshd with internal-sftp (sshd_config.template) on `address`, key auth of the current user. */
export async function startSshdOnLink(options: { dir: string; address: string; keys: SshKeys }): Promise<LinkServer> {
  const binary = '/usr/sbin/sshd';
  if (!existsSync(binary)) throw new Error('sshd not found (apt-get install openssh-server)');
  if (!existsSync('/run/sshd')) {
    mkdirSync('/run/sshd', { recursive: true });
    chmodSync('/run/sshd', 0o755);
  }
  mkdirSync(options.dir, { recursive: true });
  const data = join(options.dir, 'data');
  mkdirSync(data, { recursive: true });
  const authorizedKeys = join(options.dir, 'authorized_keys');
  writeFileSync(authorizedKeys, `${options.keys.clientPublic}\n`, { mode: 0o600 });
  const port = await freeBlock(1, [options.address]);
  const user = userInfo().username;
  const configFile = writeSshdConfig(binary, options.dir, {
    LISTEN_ADDRESS: options.address,
    LISTEN_PORT: String(port),
    HOST_KEY: options.keys.hostKey,
    AUTHORIZED_KEYS: authorizedKeys,
    USER: user,
    DATA_DIR: data,
    MAX_STARTUPS: '1000',
  });
  const child = spawn(binary, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server: LinkServer = {
    name: 'openssh',
    host: options.address,
    port,
    user,
    password: '',
    root: data,
    pid: child.pid!,
    child,
    output: capture(child),
    protocols: new Set(['sftp']),
    sftpPort: port,
    sftpUser: user,
    sftpRoot: data,
    describe: `${sshdVersion()}, internal-sftp (sshd_config.template: ForceCommand internal-sftp -d <data>, LogLevel ERROR)`,
  };
  return started(server, () => sshBanner(options.address, port), 15_000);
}
