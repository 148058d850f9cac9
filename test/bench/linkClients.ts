/**
 * What `npm run bench:links` measures, with the same real clients for every server, each run in the link's client
 * namespace: curl for FTP and explicit FTPS (`--ssl-reqd`) (lftp for many files in one session), OpenSSH's `sftp -b`
 * (key auth, one KexAlgorithms for every server) for SFTP. Every run is bounded; a run cut by its bound still counts
 * what it moved.
 *
 * - Throughput: bytes from the first byte to the last, by polling the growing file every 20 ms (the client's for a
 *   download, the server's, or its hidden partial, for an upload): session set-up and the first-byte wait are left out,
 *   and a transfer cut at the bound counts the bytes it moved in the time it had.
 * - Small files: N uploads of 4 KiB in one session, files/s between the first and the last per-file mark (lftp's
 *   226 after each upload; sftp's echo of each batch line): (marks - 1) / (last - first).
 * - Set-up: wall time of a session that connects, logs in and ends (curl -I on `/`: USER, PASS, PWD, QUIT; sftp -b
 *   with `pwd`: key exchange, auth, subsystem, SFTP init, REALPATH), client process start included.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Socket } from 'node:net';
import type { ClientRun, Link } from '../support/netns';
import { partialNameFor } from '@ftp/storage';
import type { LinkServer } from './linkServers';

export type Protocol = 'ftp' | 'ftps' | 'sftp';

export interface Target {
  server: LinkServer;
  protocol: Protocol;
}

export interface ClientSettings {
  /** Private key of SFTP sessions. */
  sshKey: string;
  /** `-o KexAlgorithms=…` of every SFTP session ('' = the client's default). */
  kex: string;
  /** Folder of batch files and downloads. */
  workDir: string;
}

export interface Transfer {
  bytes: number;
  /** First byte to last byte. */
  seconds: number;
  complete: boolean;
}

const POLL_MS = 20;

function sizeOf(paths: string[]): number {
  let size = 0;
  for (const p of paths) {
    try {
      size = Math.max(size, statSync(p).size);
    } catch {
      // not there (yet, or any more)
    }
  }
  return size;
}

function curlArgs(t: Target): string[] {
  return ['-sS', '--user', `${t.server.user}:${t.server.password}`, ...(t.protocol === 'ftps' ? ['--ssl-reqd', '-k'] : [])];
}

const ftpUrl = (t: Target, path: string) => `ftp://${t.server.host}:${t.server.port}/${path}`;

let batchCount = 0;

/** `sftp -b BATCH` argv (key auth, no config files, no host key checks). */
function sftpArgs(t: Target, c: ClientSettings, lines: string[], extra: string[] = []): string[] {
  const batch = join(c.workDir, `batch-${batchCount++}`);
  writeFileSync(batch, `${lines.join('\n')}\n`);
  const o = (v: string) => ['-o', v];
  return [
    '-b', batch,
    '-i', c.sshKey,
    '-P', String(t.server.sftpPort),
    '-F', '/dev/null',
    ...extra, // ssh keeps the first value of an option: these win
    ...o('StrictHostKeyChecking=no'),
    ...o('UserKnownHostsFile=/dev/null'),
    ...o('BatchMode=yes'),
    ...o('IdentitiesOnly=yes'),
    ...o('Compression=no'),
    ...o('LogLevel=ERROR'),
    ...(c.kex ? o(`KexAlgorithms=${c.kex}`) : []),
    `${t.server.sftpUser}@${t.server.host}`,
  ];
}

function failure(what: string, t: Target, r: ClientRun): Error {
  const why = r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`;
  return new Error(`${what} ${t.protocol} ${t.server.name}: ${why}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
}

/** Connect, log in, end: the session's wall time in ms. */
export async function setupMs(link: Link, t: Target, c: ClientSettings, timeoutMs: number): Promise<number> {
  const r =
    t.protocol === 'sftp'
      ? await link.runClient('sftp', sftpArgs(t, c, ['pwd']), { timeoutMs })
      : await link.runClient('curl', [...curlArgs(t), '-I', ftpUrl(t, '')], { timeoutMs });
  if (r.code !== 0) throw failure('set-up', t, r);
  return r.ms;
}

/** The key exchange and cipher an SFTP session negotiates, from one verbose (untimed) session. */
export async function negotiated(link: Link, t: Target, c: ClientSettings): Promise<string> {
  const r = await link.runClient('sftp', sftpArgs(t, c, ['pwd'], ['-o', 'LogLevel=DEBUG1']), { timeoutMs: 60_000 });
  if (r.code !== 0) return `probe failed: ${failure('probe', t, r).message}`;
  const pick = (re: RegExp) => re.exec(r.stderr)?.[1]?.trim() ?? '?';
  return `${pick(/remote software version (\S+)/)}; kex ${pick(/kex: algorithm: (\S+)/)}; cipher ${pick(/kex: server->client cipher: (.*?) MAC/)}`;
}

/** Polls `paths` while `run` goes: the time of the first byte and of the last size change. */
async function timed(run: Promise<ClientRun>, paths: string[], expected: number): Promise<{ r: ClientRun; transfer: Transfer }> {
  let first: number | undefined;
  let last = 0;
  let bytes = 0;
  const poll = () => {
    const size = sizeOf(paths);
    const now = performance.now();
    if (size > 0 && first === undefined) first = now - POLL_MS / 2;
    if (size !== bytes) {
      bytes = size;
      last = now;
    }
  };
  const timer = setInterval(poll, POLL_MS);
  const r = await run.finally(() => clearInterval(timer));
  poll();
  const seconds = first === undefined ? 0 : Math.max(POLL_MS / 1000, (last - first) / 1000);
  return { r, transfer: { bytes, seconds, complete: r.code === 0 && bytes === expected } };
}

/** Downloads `remote` (of `size` bytes) into `local`, cut at `boundMs`. */
export async function download(link: Link, t: Target, c: ClientSettings, remote: string, local: string, size: number, boundMs: number): Promise<Transfer> {
  const run =
    t.protocol === 'sftp'
      ? link.runClient('sftp', sftpArgs(t, c, [`get ${remote} ${local}`]), { timeoutMs: boundMs })
      : link.runClient('curl', [...curlArgs(t), '-o', local, ftpUrl(t, remote)], { timeoutMs: boundMs });
  const { r, transfer } = await timed(run, [local], size);
  if (r.code !== 0 && !r.timedOut) throw failure('download', t, r);
  return transfer;
}

/** Uploads `local` (of `size` bytes) as `remote` in the server's root, cut at `boundMs`; polls the server's file. */
export async function upload(link: Link, t: Target, c: ClientSettings, local: string, remote: string, size: number, boundMs: number): Promise<Transfer> {
  const root = t.protocol === 'sftp' ? t.server.sftpRoot! : t.server.root;
  const paths = [join(root, remote), join(root, partialNameFor(remote))];
  const run =
    t.protocol === 'sftp'
      ? link.runClient('sftp', sftpArgs(t, c, [`put ${local} ${remote}`]), { timeoutMs: boundMs })
      : link.runClient('curl', [...curlArgs(t), '-T', local, ftpUrl(t, remote)], { timeoutMs: boundMs });
  const { r, transfer } = await timed(run, paths, size);
  if (r.code !== 0 && !r.timedOut) throw failure('upload', t, r);
  // A published upload has its final name; one cut short may be a partial (ours) or the name itself (vsftpd, sshd).
  if (transfer.complete && !existsSync(paths[0])) transfer.complete = false;
  return transfer;
}

export interface SmallFiles {
  /** Files marked done (lftp's 226) or started (sftp's echo) before the end or the bound. */
  marks: number;
  /** (marks - 1) / time between the first and the last mark. */
  filesPerSec: number;
  complete: boolean;
}

/**
 * lftp's script for one FTP/FTPS session: explicit TLS with protected data for FTPS, no certificate check, and no
 * time stamps after each upload (lftp sends MFMT to servers that offer it, ours, and tries SITE UTIME once on others:
 * one more round trip per file for ours only), no retries; its protocol log (debug 5) on stderr, line by line.
 */
function lftpScript(t: Target, commands: string[]): string {
  const ftps = t.protocol === 'ftps';
  return [
    `set ftp:ssl-allow ${ftps}`,
    `set ftp:ssl-force ${ftps}`,
    `set ftp:ssl-protect-data ${ftps}`,
    'set ssl:verify-certificate no',
    'set ftp:use-mfmt no',
    'set ftp:use-site-utime no',
    'set ftp:use-site-utime2 no',
    'set net:max-retries 1',
    'set net:timeout 30',
    'set cmd:fail-exit yes',
    'debug 5',
    `open -u "${t.server.user},${t.server.password}" -p ${t.server.port} ${t.server.host}`,
    ...commands,
    'quit',
  ].join('; ');
}

/**
 * Uploads `count` files `dir/f1.bin`…`dir/f<count>.bin` (local) into the existing `remoteDir`, one session, bounded.
 * FTP and FTPS with lftp's `mput` (curl 7.88 cannot: in one FTPS session it offers the TLS 1.3 session it already
 * resumed once, which OpenSSL clients use only once, so every second data connection is refused by either server:
 * vsftpd then ends the session, ours goes on refusing), SFTP with `sftp -b` and one `put` per file.
 */
export async function smallUploads(link: Link, t: Target, c: ClientSettings, dir: string, count: number, remoteDir: string, boundMs: number): Promise<SmallFiles> {
  const marks: number[] = [];
  // sftp echoes each batch line as it starts it; lftp logs each 226 (the upload before it is stored).
  const mark = t.protocol === 'sftp' ? (line: string) => line.startsWith('sftp> put') : (line: string) => line.startsWith('<--- 226');
  const onLine = (line: string) => {
    if (mark(line)) marks.push(performance.now());
  };
  const r =
    t.protocol === 'sftp'
      ? // stdbuf: sftp writes its echo through stdio, which a pipe would otherwise buffer until exit.
        await link.runClient('stdbuf', ['-oL', 'sftp', ...sftpArgs(t, c, Array.from({ length: count }, (_, i) => `put ${dir}/f${i + 1}.bin ${remoteDir}/f${i + 1}.bin`))], { timeoutMs: boundMs, onStdout: onLine })
      : await link.runClient('lftp', ['-c', lftpScript(t, [`lcd ${dir}`, `cd ${remoteDir}`, 'mput f*.bin'])], { timeoutMs: boundMs, onStderr: onLine });
  if (r.code !== 0 && !r.timedOut) throw failure('small uploads', t, r);
  const span = marks.length >= 2 ? (marks[marks.length - 1] - marks[0]) / 1000 : 0;
  return { marks: marks.length, filesPerSec: span > 0 ? (marks.length - 1) / span : 0, complete: r.code === 0 && marks.length === count };
}

/**
 * The link's own ceiling: one TCP stream from this process (root namespace, the server's address) to a node reader in
 * the client namespace, `bytes` or `boundMs`, whichever comes first; first byte to last.
 */
export async function tcpCeiling(link: Link, bytes: number, boundMs: number): Promise<Transfer> {
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    let sent = 0;
    socket.on('error', () => undefined);
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, link.serverAddress, () => resolve()));
  const port = (server.address() as { port: number }).port;
  const reader = `
    const s = require('node:net').connect(${port}, '${link.serverAddress}');
    let n = 0, first = 0, last = 0;
    s.on('data', (d) => { const t = performance.now(); if (!first) first = t; last = t; n += d.length; });
    const report = () => { console.log(JSON.stringify({ bytes: n, seconds: (last - first) / 1000 })); process.exit(0); };
    s.on('end', report); s.on('error', report); setTimeout(report, ${Math.max(1000, boundMs - 2000)});`;
  try {
    const r = await link.runClient(process.execPath, ['-e', reader], { timeoutMs: boundMs + 5000 });
    if (r.code !== 0) throw new Error(`tcp reader: exit ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    const out = JSON.parse(r.stdout.trim()) as { bytes: number; seconds: number };
    return { bytes: out.bytes, seconds: out.seconds, complete: out.bytes >= bytes };
  } finally {
    server.close();
    for (const socket of sockets) socket.destroy();
  }
}
