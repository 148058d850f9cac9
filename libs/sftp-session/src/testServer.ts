// Test harness (not exported from the package): a real ssh2 Server on 127.0.0.1:0 whose sftp subsystem is served by
// serveSftp over a local storage in a temporary folder, plus clients to drive it: ssh2's own and OpenSSH's `sftp -b`.
import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import fsp from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Permission, User } from '@ftp/identity';
import { createLocalStorage, type Storage } from '@ftp/storage';
import ssh2, { type Connection, type SFTPWrapper } from 'ssh2';
import { localDiskSpace } from '@ftp/session-core';
import { serveSftp } from './session';
import type { SftpContext, SftpLogger, SftpSession, SftpTransfer } from './types';

const { Client, Server, utils } = ssh2;

export const ALL: Permission[] = ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'rmdir'];
export const SECRET = 'top secret\n';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message?: string;
}

export interface TestServerOptions {
  /** Permissions by folder (default: everything on `/`). */
  permissions?: Record<string, Permission[]>;
  /** Wrap the storage (to slow it down, count calls, make it fail). */
  wrapStorage?: (storage: Storage) => Storage;
  onUploadCommitted?: SftpContext['onUploadCommitted'];
  /** Called with each accepted SFTP stream before serveSftp sees it (to watch events). */
  onStream?: (sftp: SFTPWrapper) => void;
}

export interface TestServer {
  port: number;
  /** Host folder served as `/`. */
  root: string;
  /** Host folder beside the root with `secret.txt`, which no request may reach. */
  outside: string;
  userName: string;
  password: string;
  /** OpenSSH private key file (mode 0600) whose public key the server accepts. */
  keyFile: string;
  logs: LogLine[];
  transfers: SftpTransfer[];
  sessions: SftpSession[];
  stop(): Promise<void>;
}

/** ssh2 (1.17) writes 1 ed25519 key in 256 without the zero byte its public key starts with, unparseable: skip those. */
function ed25519Pair() {
  for (;;) {
    const pair = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair;
  }
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'sftp-session-test-'));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  await fsp.mkdir(root);
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'secret.txt'), SECRET);

  const userName = 'partner';
  const password = 'test-password';
  const clientKey = ed25519Pair();
  const keyFile = path.join(base, 'id_ed25519');
  await fsp.writeFile(keyFile, clientKey.private, { mode: 0o600 });
  const allowedKey = utils.parseKey(clientKey.public);
  if (allowedKey instanceof Error) throw allowedKey;

  const user: User = {
    name: userName,
    root,
    permissions: options.permissions ?? { '/': ALL },
    groups: [],
    allowFrom: [],
    requireTls: false,
    anonymous: false,
  };
  const logs: LogLine[] = [];
  const log: SftpLogger = {
    debug: (fields, message) => logs.push({ level: 'debug', fields: fields as Record<string, unknown>, message }),
    info: (fields, message) => logs.push({ level: 'info', fields: fields as Record<string, unknown>, message }),
    warn: (fields, message) => logs.push({ level: 'warn', fields: fields as Record<string, unknown>, message }),
    error: (fields, message) => logs.push({ level: 'error', fields: fields as Record<string, unknown>, message }),
  };
  const local = createLocalStorage({ root });
  const storage = options.wrapStorage ? options.wrapStorage(local) : local;
  const transfers: SftpTransfer[] = [];
  const sessions: SftpSession[] = [];
  const clients = new Set<Connection>();

  const server = new Server({ hostKeys: [ed25519Pair().private] }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => undefined);
    client.on('authentication', (auth) => {
      if (auth.username !== userName) return auth.reject();
      if (auth.method === 'password' && auth.password === password) return auth.accept();
      if (auth.method === 'publickey') {
        const key = allowedKey.getPublicSSH();
        const sameKey = auth.key.algo === allowedKey.type && auth.key.data.length === key.length && timingSafeEqual(auth.key.data, key);
        if (sameKey && (!auth.signature || allowedKey.verify(auth.blob!, auth.signature, auth.hashAlgo) === true)) return auth.accept();
      }
      auth.reject(['password', 'publickey']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          options.onStream?.(sftp);
          sessions.push(
            serveSftp(sftp, {
              user,
              storage,
              log,
              onUploadCommitted: options.onUploadCommitted,
              onTransferEnded: (t) => transfers.push(t),
              diskSpace: localDiskSpace(root),
            }),
          );
        });
        // Anything else a session channel asks for (exec, shell, pty, env, other subsystems) is refused by ssh2.
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    port,
    root,
    outside,
    userName,
    password,
    keyFile,
    logs,
    transfers,
    sessions,
    async stop() {
      for (const client of clients) client.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(sessions.map((s) => s.closed));
      await fsp.rm(base, { recursive: true, force: true });
    },
  };
}

/** An ssh2 client logged in with the password, and its SFTP channel. */
export async function connectSftp(server: TestServer): Promise<{ client: InstanceType<typeof Client>; sftp: SFTPWrapper }> {
  const client = new Client();
  return new Promise((resolve, reject) => {
    client.once('error', reject);
    client.once('ready', () =>
      client.sftp((err, sftp) => {
        if (err) return reject(err);
        resolve({ client, sftp });
      }),
    );
    client.connect({ host: '127.0.0.1', port: server.port, username: server.userName, password: server.password });
  });
}

/** Promise form of an ssh2 client SFTP call with a node-style callback. */
export function call<T = void>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** The SSH_FX_* code of a failed ssh2 client call. */
export async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
  return 0;
}

export interface BatchResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run OpenSSH's `sftp -b` with the harness key. Lines starting with `-` may fail without stopping the batch. The
 * client (sftp and the ssh it starts) is killed after `timeoutMs`, or as soon as `killWhen()` says so (polled).
 */
export async function runOpenSsh(
  server: TestServer,
  lines: string[],
  options: { cwd?: string; timeoutMs?: number; extraArgs?: string[]; killWhen?: () => boolean } = {},
): Promise<BatchResult> {
  const batch = path.join(await fsp.mkdtemp(path.join(os.tmpdir(), 'sftp-batch-')), 'batch');
  await fsp.writeFile(batch, lines.join('\n') + '\n');
  const args = [
    '-b', batch, '-i', server.keyFile, '-P', String(server.port), '-F', '/dev/null',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', ...(options.extraArgs ?? []),
    `${server.userName}@127.0.0.1`,
  ];
  // Its own process group, so that a kill takes the ssh it runs too, as when a client machine dies.
  const child = spawn('sftp', args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timeout = setTimeout(kill, options.timeoutMs ?? 120_000);
  const watch = options.killWhen && setInterval(() => options.killWhen!() && kill(), 20);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timeout);
  if (watch) clearInterval(watch);
  await fsp.rm(path.dirname(batch), { recursive: true, force: true });
  return { code, stdout, stderr };
}
