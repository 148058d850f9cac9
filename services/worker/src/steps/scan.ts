import { lstat, open, readFile, rename } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { PermanentStepError } from './errors';
import { errnoOf, mkdirInside, resolveInside, syncDir, writeFileAtomic, type ResolvedPath } from './paths';
import type { Step, StepContext, StepResult } from './types';

/**
 * Virus scan with clamd. The file is streamed over TCP with INSTREAM, one chunk in flight at a time, so memory stays
 * at two chunks whatever the file size. An infected file (and its `.sha256`/`.md5` sidecars) is moved to
 * `<dataRoot>/<quarantineDir>/<uploadId>/` with a JSON note, and the pipeline stops there. A clamd that errs, is
 * unreachable or goes quiet makes the step throw, so the job is retried; a path that would leave the data root, or a
 * file that is neither there nor in quarantine, is a PermanentStepError.
 */

export interface ScanOptions {
  /** clamd's TCPAddr and TCPSocket. */
  host: string;
  port: number;
  /** Quarantine folder relative to the data root, e.g. `.quarantine`; must stay inside it. */
  quarantineDir: string;
  /**
   * Longest silence on the clamd connection (connecting, a write clamd does not take, waiting for the verdict)
   * before the step gives up and throws. Not a bound on the whole scan: a big file that keeps moving is fine.
   * Default 60 s.
   */
  timeoutMs?: number;
  /** Bytes per INSTREAM chunk. Default 64 KiB. */
  chunkBytes?: number;
}

export type ScanVerdict = { clean: true } | { clean: false; signature: string };

/** What is written beside a quarantined file as `<basename>.quarantine.json`. */
export interface QuarantineNote {
  uploadId: string;
  signature: string;
  user: string;
  /** Path as the FTP client saw it. */
  path: string;
  /** Where the file was, relative to the data root. */
  originalPath: string;
  size: number;
  /** ISO time of the quarantine. */
  quarantinedAt: string;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_CHUNK_BYTES = 64 * 1024;
/** Files moved along with the upload, as `<file><suffix>`. */
const SIDECARS = ['.sha256', '.md5'];
/** A clamd reply is one short line; more than this is not clamd. */
const MAX_REPLY_BYTES = 4096;
const NOTE_SUFFIX = '.quarantine.json';
/** An uploadId becomes a folder name: one safe segment (a UUID in practice). */
const UPLOAD_ID = /^[A-Za-z0-9._-]{1,200}$/;

// ---------------------------------------------------------------------------------------------------------------
// The clamd protocol (z-commands: NUL-terminated request and reply).

/** Parses an INSTREAM reply (`stream: OK`, `stream: <name> FOUND`); anything else, `… ERROR` included, throws. */
export function parseScanReply(reply: string): ScanVerdict {
  const text = reply.replace(/\0+$/, '').trim();
  if (text === 'stream: OK') return { clean: true };
  const found = /^stream: (.+) FOUND$/.exec(text);
  if (found) return { clean: false, signature: found[1] };
  if (text.endsWith('ERROR')) throw new Error(`clamd: ${text}`);
  throw new Error(`clamd: unexpected reply ${JSON.stringify(text.slice(0, 200))}`);
}

/**
 * One z-command on a fresh connection. `send` writes what follows the command (the INSTREAM chunks); the reply is
 * taken even if clamd answers early and closes while we are still writing (`size limit exceeded. ERROR`).
 */
async function exchange(
  host: string,
  port: number,
  command: string,
  timeoutMs: number,
  signal?: AbortSignal,
  send?: (socket: Socket) => Promise<void>,
): Promise<string> {
  signal?.throwIfAborted();
  const socket = connect({ host, port });
  const onAbort = () => socket.destroy(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`clamd ${host}:${port}: no progress for ${timeoutMs} ms`)));

  const reply = new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    socket.on('data', (data: Buffer) => {
      parts.push(data);
      size += data.length;
      const text = Buffer.concat(parts, size).toString('utf8');
      if (text.includes('\0')) resolve(text.slice(0, text.indexOf('\0')));
      else if (size > MAX_REPLY_BYTES) reject(new Error(`clamd ${host}:${port}: reply too long`));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // clamd answers `size limit exceeded. ERROR` and closes while we are still writing; the reset that follows
      // can reach us before that answer does, and then the answer is lost with the socket.
      const early = send && (err.code === 'EPIPE' || err.code === 'ECONNRESET') ? ' (clamd stopped reading: over its StreamMaxLength?)' : '';
      reject(new Error(`clamd ${host}:${port}: ${err.message}${early}`, { cause: err }));
    });
    socket.once('close', () => reject(new Error(`clamd ${host}:${port}: connection closed without a reply`)));
  });

  // Resolves to the error that stopped sending when it was ours (the file could not be read), not the connection's:
  // a connection failure is the reply's to report, and an early reply wins over the writes it cut short.
  const sent = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed')));
  })
    .then(async () => {
      await write(socket, Buffer.from(`z${command}\0`, 'latin1'));
      await send?.(socket);
    })
    .then(
      () => undefined,
      (err: unknown) => {
        const ours = !socket.destroyed;
        socket.destroy();
        return ours ? err : undefined;
      },
    );

  try {
    return await reply;
  } catch (err) {
    socket.destroy();
    throw (await sent) ?? err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    socket.destroy();
    await sent;
  }
}

/** Resolves when `data` has been handed to the kernel, so its buffer may be reused; this is the backpressure. */
function write(socket: Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
}

/**
 * Streams the file as INSTREAM chunks (4-byte big-endian length, then the bytes) and the zero-length end chunk.
 * Two buffers alternate: the next chunk is read from disk while the previous one is being written, and a buffer is
 * only refilled once its write has completed. No allocation per chunk.
 */
async function sendFile(socket: Socket, path: string, chunkBytes: number): Promise<void> {
  const file = await open(path, 'r');
  try {
    const buffers = [Buffer.allocUnsafe(4 + chunkBytes), Buffer.allocUnsafe(4 + chunkBytes)];
    let pending: Promise<void> = Promise.resolve();
    for (let k = 0; ; k ^= 1) {
      const buffer = buffers[k];
      const { bytesRead } = await file.read(buffer, 4, chunkBytes, null);
      await pending;
      if (bytesRead === 0) break;
      buffer.writeUInt32BE(bytesRead, 0);
      pending = write(socket, buffer.subarray(0, 4 + bytesRead));
      // Awaited on the next turn; until then a failed write (clamd closed early) must not count as unhandled.
      pending.catch(() => {});
    }
    await write(socket, Buffer.alloc(4));
  } finally {
    await file.close();
  }
}

/** Scans one file with INSTREAM. Throws when clamd is unreachable, silent for `timeoutMs`, or answers ERROR. */
export async function clamdScanFile(
  host: string,
  port: number,
  path: string,
  options: { timeoutMs?: number; chunkBytes?: number; signal?: AbortSignal } = {},
): Promise<ScanVerdict> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const reply = await exchange(host, port, 'INSTREAM', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, options.signal, (socket) =>
    sendFile(socket, path, chunkBytes),
  );
  return parseScanReply(reply);
}

/** True when clamd answers PING with PONG within `timeoutMs`; never throws. For the worker's readiness. */
export async function clamdPing(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  try {
    return (await exchange(host, port, 'PING', timeoutMs)) === 'PONG';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The step.

/** The result of an infected file, the first time and on every re-run. */
function infected(target: ResolvedPath, signature: string): StepResult {
  return { filePath: target.path, stop: true, details: { clean: false, signature, quarantine: target.key } };
}

/**
 * Moves the file into quarantine. The order makes a crash at any point safe to retry: the note first (atomically),
 * then the sidecars, the file last; "source gone, quarantine copy present" therefore means done.
 */
async function quarantine(context: StepContext, source: ResolvedPath, target: ResolvedPath, signature: string, size: number) {
  const { event } = context;
  const note: QuarantineNote = {
    uploadId: event.uploadId,
    signature,
    user: event.user,
    path: event.path,
    originalPath: source.key,
    size,
    quarantinedAt: new Date().toISOString(),
  };
  await writeFileAtomic(target.path + NOTE_SUFFIX, `${JSON.stringify(note, null, 2)}\n`);
  for (const suffix of SIDECARS) {
    try {
      await rename(source.path + suffix, target.path + suffix);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }
  await rename(source.path, target.path);
  await Promise.all([syncDir(dirname(target.path)), syncDir(dirname(source.path))]);
}

export function scanStep(options: ScanOptions): Step {
  const { host, port, quarantineDir } = options;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > 0xffffffff) throw new Error(`scan: chunkBytes ${chunkBytes} is not a positive 32-bit integer`);
  if (!quarantineDir || isAbsolute(quarantineDir) || quarantineDir.split(/[\\/]/).includes('..')) {
    throw new Error(`scan: quarantineDir ${JSON.stringify(quarantineDir)} must be a folder inside the data root, relative to it`);
  }

  return {
    name: 'scan',
    async run(context) {
      const { event, dataRoot, log, signal } = context;
      if (!UPLOAD_ID.test(event.uploadId) || /^\.+$/.test(event.uploadId)) throw new PermanentStepError(`scan: unsafe uploadId ${JSON.stringify(event.uploadId)}`);
      const source = await resolveInside(dataRoot, context.filePath);
      const folder = join(quarantineDir, event.uploadId);

      if (!source.exists) {
        // Quarantined by an earlier run of this job that crashed or lost its result: the same answer, no rescan.
        const target = await resolveInside(dataRoot, join(folder, basename(source.path)));
        if (!target.exists) throw new PermanentStepError(`scan: ${source.key} is gone and not in quarantine`);
        const note = await readFile(target.path + NOTE_SUFFIX, 'utf8').then((text) => JSON.parse(text) as QuarantineNote, () => undefined);
        return infected(target, note?.signature ?? 'unknown');
      }
      const stat = await lstat(source.path);
      if (!stat.isFile()) throw new PermanentStepError(`scan: ${source.key} is not a regular file`);

      const started = Date.now();
      const verdict = await clamdScanFile(host, port, source.path, { timeoutMs: options.timeoutMs, chunkBytes, signal });
      if (verdict.clean) {
        log.debug({ uploadId: event.uploadId, bytes: stat.size, ms: Date.now() - started }, 'scan: clean');
        return { details: { clean: true } };
      }
      const dir = await mkdirInside(dataRoot, folder);
      const target = await resolveInside(dataRoot, join(dir.path, basename(source.path)));
      await quarantine(context, source, target, verdict.signature, stat.size);
      log.warn({ uploadId: event.uploadId, user: event.user, path: event.path, signature: verdict.signature, quarantine: target.key }, 'scan: malware found, file quarantined');
      return infected(target, verdict.signature);
    },
  };
}
