/**
 * The one client of `npm run bench:sftp`: OpenSSH's `sftp -b BATCH` (it runs `ssh` underneath), stdin from
 * /dev/null, key authentication, the same options for every server. Every run is bounded by a timeout that kills
 * its process group (sftp and its ssh), by PID.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export interface SftpTarget {
  name: string;
  host: string;
  port: number;
  user: string;
}

export interface ClientOptions {
  keyFile: string;
  /** `-o Ciphers=…`; undefined = the client's default list. */
  cipher?: string;
  /** `-o KexAlgorithms=…`, the same for every server. */
  kex?: string;
  /** Extra ssh options (`-o` values). */
  extra?: string[];
  verbose?: boolean;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  stdout: string;
  stderr: string;
}

export function sftpArgs(target: SftpTarget, batchFile: string, options: ClientOptions): string[] {
  const o = (v: string) => ['-o', v];
  return [
    '-b', batchFile,
    '-i', options.keyFile,
    '-P', String(target.port),
    '-F', '/dev/null',
    ...o('StrictHostKeyChecking=no'),
    ...o('UserKnownHostsFile=/dev/null'),
    ...o('BatchMode=yes'),
    ...o('IdentitiesOnly=yes'),
    ...o('Compression=no'),
    ...o(options.verbose ? 'LogLevel=DEBUG1' : 'LogLevel=ERROR'),
    ...(options.kex ? o(`KexAlgorithms=${options.kex}`) : []),
    ...(options.cipher ? o(`Ciphers=${options.cipher}`) : []),
    ...(options.extra ?? []).flatMap(o),
    ...(options.verbose ? ['-v'] : []),
    `${target.user}@${target.host}`,
  ];
}

/** Runs one `sftp -b`; resolves with its exit status, wall time and output (kept up to 64 KiB each). */
export function runSftp(target: SftpTarget, batchFile: string, options: ClientOptions, timeoutMs: number, cwd?: string): Promise<RunResult> {
  const start = process.hrtime.bigint();
  const child = spawn('sftp', sftpArgs(target, batchFile, options), { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    if (stdout.length < 65536) stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 65536) stderr += d.toString();
  });
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, timeoutMs);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ms: Number(process.hrtime.bigint() - start) / 1e6, stdout, stderr });
    });
  });
}

/** Like runSftp, but a non-zero exit is an error (with the client's stderr). */
export async function runSftpOk(target: SftpTarget, batchFile: string, options: ClientOptions, timeoutMs: number, cwd?: string): Promise<RunResult> {
  const r = await runSftp(target, batchFile, options, timeoutMs, cwd);
  if (r.code !== 0) {
    const why = r.signal ? `killed (${r.signal}, timeout ${timeoutMs / 1000} s?)` : `exit ${r.code}`;
    throw new Error(`sftp to ${target.name}: ${why}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  }
  return r;
}

export function writeBatch(file: string, lines: string[]) {
  writeFileSync(file, `${lines.join('\n')}\n`);
}

/** The negotiated key exchange and ciphers, from one verbose (untimed) session. */
export async function negotiated(target: SftpTarget, batchFile: string, options: ClientOptions): Promise<string> {
  const r = await runSftp(target, batchFile, { ...options, verbose: true }, 30_000);
  const pick = (re: RegExp) => re.exec(r.stderr)?.[1]?.trim();
  const kex = pick(/kex: algorithm: (\S+)/);
  const c2s = pick(/kex: client->server cipher: (.*?) compression/);
  const version = pick(/remote software version (\S+)/);
  if (r.code !== 0) return `probe failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
  return `${version ?? '?'}; kex ${kex ?? '?'}; cipher ${c2s ?? '?'}`;
}

export interface SessionStats {
  total: number;
  errors: number;
  firstErrors: string[];
  wallMs: number;
  latencies: number[];
}

/**
 * `count` sessions, `concurrency` client processes at a time (closed loop: each worker starts the next when its
 * last one exits). Each session is one `sftp -b` of the given batch file. Bounded by count and by `deadlineMs`.
 */
export async function sessionLoop(
  target: SftpTarget,
  batchFile: string,
  options: ClientOptions,
  count: number,
  concurrency: number,
  opts: { timeoutMs: number; deadlineMs: number; check?: (r: RunResult) => string | undefined },
): Promise<SessionStats> {
  let next = 0;
  const latencies: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  const start = process.hrtime.bigint();
  const end = Date.now() + opts.deadlineMs;
  const worker = async () => {
    while (next < count && Date.now() < end) {
      next++;
      const r = await runSftp(target, batchFile, options, opts.timeoutMs);
      const problem = r.code !== 0 ? `exit ${r.code ?? r.signal}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` : opts.check?.(r);
      if (problem) {
        errors++;
        if (firstErrors.length < 3) firstErrors.push(problem);
      } else latencies.push(r.ms);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  if (next < count) {
    errors += count - next;
    firstErrors.push(`deadline: only ${next} of ${count} sessions started within ${opts.deadlineMs / 1000} s`);
  }
  return { total: count, errors, firstErrors, wallMs, latencies };
}

export function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
