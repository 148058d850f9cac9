import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Child processes and temp folders for tests. Every child and folder made here is tracked, so a crashed or
 * interrupted test run never leaves a process or a folder behind: on exit, SIGINT, SIGTERM and SIGHUP the children
 * get SIGKILL and the folders are removed.
 */

/** The repository root: default working folder of every child. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const TAIL_LINES = 40;
/** How long stopProcess() waits after its signal before SIGKILL. */
export const STOP_GRACE_MS = 5000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** Resolves once the process has exited, or failed to spawn (then `code` is -1). */
  exited: Promise<ExitInfo>;
  /** Set once it has exited. */
  exit?: ExitInfo;
  /** Last non-empty lines of stdout and stderr together, for error messages. */
  tail: string[];
}

export interface StartOptions {
  /** The child's whole environment. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Default: the repository root. */
  cwd?: string;
  /** Called with every stdout line, without its newline. */
  onStdout?: (line: string) => void;
  /** Called with every stderr line, without its newline. */
  onStderr?: (line: string) => void;
}

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

/** A fresh folder under the system temp folder, removed on exit unless removeTempDir() did it before. */
export function makeTempDir(prefix: string): string {
  installExitHooks();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Calls `each` with every line of `stream` (the last one even without a newline). */
function eachLine(stream: NodeJS.ReadableStream, each: (line: string) => void) {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    const parts = (rest + text).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts) each(line);
  });
  stream.on('end', () => {
    if (rest) each(rest);
  });
}

/** Spawns a tracked child with stdout and stderr piped and read line by line. Never throws: a failed spawn is an exit. */
export function startProcess(name: string, command: string, args: string[], options: StartOptions = {}): Proc {
  installExitHooks();
  const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let settle!: (exit: ExitInfo) => void;
  const proc: Proc = { name, child, tail: [], exited: new Promise<ExitInfo>((resolve) => (settle = resolve)) };
  const keep = (line: string) => {
    if (!line) return;
    proc.tail.push(line);
    if (proc.tail.length > TAIL_LINES) proc.tail.shift();
  };
  const finish = (exit: ExitInfo) => {
    proc.exit ??= exit;
    children.delete(child);
    settle(proc.exit);
  };
  eachLine(child.stdout!, (line) => {
    keep(line);
    options.onStdout?.(line);
  });
  eachLine(child.stderr!, (line) => {
    keep(line);
    options.onStderr?.(line);
  });
  child.once('error', (err) => {
    keep(`spawn ${command}: ${err.message}`);
    finish({ code: -1, signal: null });
  });
  child.once('exit', (code, signal) => finish({ code, signal }));
  return proc;
}

/** Signals the process and waits for its exit; SIGKILL after `graceMs`. Fine on a process that is already gone. */
export async function stopProcess(proc: Proc, signal: NodeJS.Signals = 'SIGTERM', graceMs = STOP_GRACE_MS): Promise<ExitInfo> {
  if (proc.exit) return proc.exit;
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** `name`, whether it runs or how it exited, and its output tail: the body of an error message. */
export function describeProc(proc: Proc): string {
  const state = proc.exit ? `exited (code ${proc.exit.code}, signal ${proc.exit.signal})` : `running (pid ${proc.child.pid})`;
  return `${proc.name} ${state}; last output:\n  ${proc.tail.join('\n  ') || '(none)'}`;
}

/**
 * Polls `probe` until it returns true (a probe that throws counts as false). Rejects after `timeoutMs` with `what`,
 * `detail()`, the process's state and output tail, or as soon as the process exits.
 */
export async function waitFor(
  what: string,
  proc: Proc,
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; pollMs?: number; detail?: () => string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (proc.exit) throw new Error(`${what}: ${describeProc(proc)}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      const detail = options.detail?.();
      throw new Error(`${what}: not within ${options.timeoutMs} ms${detail ? ` (${detail})` : ''}; ${describeProc(proc)}`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 100));
  }
}

/** A program from PATH, or from the sbin folders a non-root PATH lacks (Debian puts haproxy and clamd in /usr/sbin). */
export function findBinary(name: string, install = `apt-get install ${name}`): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin'];
  for (const dir of dirs) if (dir && existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`${name} not found in PATH or the sbin folders; install it (${install})`);
}

/** Lowest ephemeral port of this kernel: client sockets (and their TIME_WAIT remains) live from there up. */
export function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A random block of `size` consecutive ports below the ephemeral range (so outgoing sockets and their TIME_WAIT
 * remains never sit on them), free on every address in `hosts`. Returns the first port.
 */
export async function freeBlock(size: number, hosts: string[]): Promise<number> {
  const low = 10_000;
  const high = ephemeralLow() - size - 1;
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = low + Math.floor(Math.random() * (high - low));
    const checks = hosts.flatMap((host) => Array.from({ length: size }, (_, i) => portFree(host, first + i)));
    if ((await Promise.all(checks)).every(Boolean)) return first;
  }
  throw new Error(`no block of ${size} free ports below ${ephemeralLow()} on ${hosts.join(', ')}`);
}

/** A pino JSON line as an object; a line that is not JSON is kept as `{ raw }`. */
export function parseLogLine(line: string): Record<string, unknown> {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { raw: line };
  }
}
