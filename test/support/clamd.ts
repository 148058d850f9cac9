import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * A real clamd for tests, as a child process on 127.0.0.1 with a throwaway config and its own tiny signature
 * database: no official database, no freshclam, no network. It knows one thing, the EICAR test string, anywhere in
 * a file (signature `Test.EICAR.Body.UNOFFICIAL`) or as the whole 68-byte file (`Test.EICAR.Hash.UNOFFICIAL`).
 */

export interface ClamdOptions {
  /** clamd's StreamMaxLength (`100M`, `1M`…): an INSTREAM over it gets `size limit exceeded. ERROR`. Default 100M. */
  streamMaxLength?: string;
  /** Bound on the start-up wait (spawn until PING answers PONG). Default 30 s. */
  startTimeoutMs?: number;
}

export interface Clamd {
  host: '127.0.0.1';
  port: number;
  /** Ms from spawn until the first PONG. */
  startupMs: number;
  /** SIGTERM (SIGKILL after a grace), then removes the temp folder. Fine to call twice. */
  stop(): Promise<void>;
}

/** The EICAR anti-virus test file: 68 bytes, harmless, detected by every scanner. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

const EICAR_MD5 = '44d88612fea8a8f36de82e1278abb02f';
const TAIL_LINES = 40;
const STOP_GRACE_MS = 5000;
const POLL_MS = 50;

// Every child is tracked so a crashed test run never leaves a clamd behind.
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let hooksInstalled = false;

function installExitHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      // The handler is gone now, so this ends the process the way the signal would have.
      process.kill(process.pid, signal);
    });
  }
}

/** clamd from PATH or from /usr/sbin, which a non-root PATH lacks. */
function findClamd(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) if (dir && existsSync(join(dir, 'clamd'))) return join(dir, 'clamd');
  throw new Error('clamd not found in PATH or /usr/sbin; install it (apt-get install --no-install-recommends clamav-daemon)');
}

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A random free port below the ephemeral range, so client sockets in TIME_WAIT never sit on it. */
async function freePort(): Promise<number> {
  const low = 10_000;
  const high = ephemeralLow() - 1;
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await portFree(port)) return port;
  }
  throw new Error(`no free port below ${ephemeralLow()} on 127.0.0.1`);
}

/** True when clamd answers `zPING\0` with `PONG\0`. Kept apart from the scan step's own ping on purpose. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('zPING\0'));
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      reply += text;
      if (reply.includes('\0')) done(reply === 'PONG\0');
    });
    socket.once('end', () => done(reply === 'PONG\0'));
  });
}

function writeFiles(dir: string, port: number, streamMaxLength: string): string {
  const db = join(dir, 'db');
  mkdirSync(db);
  // .ndb body signature: the EICAR bytes at any offset of any file type, so it matches inside larger files too.
  writeFileSync(join(db, 'test.ndb'), `Test.EICAR.Body:0:*:${Buffer.from(EICAR, 'latin1').toString('hex')}\n`);
  // .hdb hash signature: MD5:size:name of the exact 68-byte file.
  writeFileSync(join(db, 'test.hdb'), `${EICAR_MD5}:${EICAR.length}:Test.EICAR.Hash\n`);
  const conf = join(dir, 'clamd.conf');
  // No LogFile: in the foreground clamd logs to stdout/stderr, which we keep as the tail (LogFile /dev/stderr is
  // refused: clamd opens log files with O_NOFOLLOW). No User: clamd runs as whoever runs the tests.
  writeFileSync(
    conf,
    [
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      'Foreground yes',
      `DatabaseDirectory ${db}`,
      `StreamMaxLength ${streamMaxLength}`,
      'MaxThreads 4',
      'ConcurrentDatabaseReload no',
      'SelfCheck 0',
      '',
    ].join('\n'),
  );
  return conf;
}

/** Starts clamd and resolves once it answers PING; rejects with its output tail if it exits or the deadline passes. */
export async function startClamd(options: ClamdOptions = {}): Promise<Clamd> {
  const binary = findClamd();
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), 'clamd-'));
  tempDirs.add(dir);
  installExitHooks();
  const port = await freePort();
  const conf = writeFiles(dir, port, options.streamMaxLength ?? '100M');

  const started = Date.now();
  const child = spawn(binary, ['-c', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const tail: string[] = [];
  const keep = (text: string) => {
    for (const line of text.split('\n')) if (line) tail.push(line);
    tail.splice(0, Math.max(0, tail.length - TAIL_LINES));
  };
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  let exit: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      exit ??= `spawn failed: ${err.message}`;
      children.delete(child);
      resolve();
    });
    child.once('exit', (code, signal) => {
      exit ??= `exited (code ${code}, signal ${signal})`;
      children.delete(child);
      resolve();
    });
  });
  const describe = () => `clamd ${exit ?? `running (pid ${child.pid})`}; last output:\n  ${tail.join('\n  ') || '(none)'}`;

  const stop = async () => {
    if (!exit) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };

  const deadline = started + timeoutMs;
  for (;;) {
    if (exit) {
      const message = `clamd did not start: ${describe()}`;
      await stop();
      throw new Error(message);
    }
    if (await pong(port)) break;
    if (Date.now() > deadline) {
      const message = `clamd did not answer PING within ${timeoutMs} ms: ${describe()}`;
      await stop();
      throw new Error(message);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return { host: '127.0.0.1', port, startupMs: Date.now() - started, stop };
}
