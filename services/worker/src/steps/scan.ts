import { connect, type Socket } from 'node:net';
import type { Storage } from '@ftp/storage';
import { PermanentStepError } from './errors';
import { basenameOf, isStorageError, joinPath, keyOf, makeFolders, publishedAt, readSmallFile, readStream, writeSmallFile } from './files';
import type { Step, StepContext, StepResult } from './types';

/**
 * Virus scan with clamd. The file is streamed from the storage over TCP with INSTREAM, one chunk in flight at a time,
 * so memory stays at a read buffer whatever the file size. An infected file (and its `.sha256`/`.md5` sidecars) is
 * moved to `/<quarantineDir>/<uploadId>/` of the data root with a JSON note, and the pipeline stops there. A clamd that errs, is
 * unreachable or goes quiet makes the step throw, so the job is retried; a path that would leave the data root, or a
 * file that is neither there nor in quarantine, is a PermanentStepError.
 */

export interface ScanOptions {
  /** clamd's TCPAddr and TCPSocket. */
  host: string;
  port: number;
  /** Quarantine folder of the data root, e.g. `.quarantine` (no `..`). */
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
const MAX_NOTE_BYTES = 64 * 1024;
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
 * Streams `data` as INSTREAM chunks (4-byte big-endian length, then at most `chunkBytes` bytes) and the zero-length
 * end chunk. Each write is awaited before the next, which is the backpressure.
 */
async function sendStream(socket: Socket, data: Iterable<Buffer> | AsyncIterable<Buffer>, chunkBytes: number): Promise<void> {
  const header = Buffer.alloc(4);
  for await (const buffer of data) {
    for (let at = 0; at < buffer.length; at += chunkBytes) {
      const chunk = buffer.subarray(at, at + chunkBytes);
      header.writeUInt32BE(chunk.length, 0);
      socket.cork();
      socket.write(Buffer.from(header));
      const written = write(socket, chunk);
      socket.uncork();
      await written;
    }
  }
  await write(socket, Buffer.alloc(4));
}

/** Scans a stream of bytes with INSTREAM. Throws when clamd is unreachable, silent for `timeoutMs`, or answers ERROR. */
export async function clamdScan(
  host: string,
  port: number,
  data: Iterable<Buffer> | AsyncIterable<Buffer>,
  options: { timeoutMs?: number; chunkBytes?: number; signal?: AbortSignal } = {},
): Promise<ScanVerdict> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const reply = await exchange(host, port, 'INSTREAM', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, options.signal, (socket) =>
    sendStream(socket, data, chunkBytes),
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
function infected(target: string, signature: string): StepResult {
  return { path: target, stop: true, details: { clean: false, signature, quarantine: keyOf(target) } };
}

/** rename that finds nothing to do on a retry. */
async function moveIfThere(storage: Storage, from: string, to: string): Promise<void> {
  await storage.rename(from, to).catch((err: unknown) => (isStorageError(err, 'not-found') ? undefined : Promise.reject(err)));
}

/**
 * Moves the file into quarantine. The order makes a crash at any point safe to retry: the note first (whole), then
 * the sidecars, the file last; "source gone, quarantine copy present" therefore means done.
 */
async function quarantine(context: StepContext, target: string, signature: string, size: number) {
  const { event, storage, path: source } = context;
  const note: QuarantineNote = {
    uploadId: event.uploadId,
    signature,
    user: event.user,
    path: event.path,
    originalPath: keyOf(source),
    size,
    quarantinedAt: new Date().toISOString(),
  };
  await writeSmallFile(storage, target + NOTE_SUFFIX, `${JSON.stringify(note, null, 2)}\n`);
  for (const suffix of SIDECARS) await moveIfThere(storage, source + suffix, target + suffix);
  await storage.rename(source, target);
}

export function scanStep(options: ScanOptions): Step {
  const { host, port } = options;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > 0xffffffff) throw new Error(`scan: chunkBytes ${chunkBytes} is not a positive 32-bit integer`);
  const quarantineDir = options.quarantineDir.replace(/^\/+|\/+$/g, '');
  if (!quarantineDir || quarantineDir.split(/[\\/]/).some((s) => s === '..' || s === '.' || s === '') || quarantineDir.includes('\0')) {
    throw new Error(`scan: quarantineDir ${JSON.stringify(options.quarantineDir)} must be a folder of the data root (no ..)`);
  }

  return {
    name: 'scan',
    async run(context) {
      const { event, storage, path: source, log, signal } = context;
      if (!UPLOAD_ID.test(event.uploadId) || /^\.+$/.test(event.uploadId)) throw new PermanentStepError(`scan: unsafe uploadId ${JSON.stringify(event.uploadId)}`);
      const folder = `/${quarantineDir}/${event.uploadId}`;
      const target = joinPath(folder, basenameOf(source));
      const file = await publishedAt(storage, source);

      if (!file) {
        // Quarantined by an earlier run of this job that crashed or lost its result: the same answer, no rescan.
        if ((await publishedAt(storage, target))?.type !== 'file') throw new PermanentStepError(`scan: ${keyOf(source)} is gone and not in quarantine`);
        const note = await readSmallFile(storage, target + NOTE_SUFFIX, MAX_NOTE_BYTES).then(
          (text) => JSON.parse(text.toString('utf8')) as QuarantineNote,
          () => undefined,
        );
        return infected(target, note?.signature ?? 'unknown');
      }
      if (file.type !== 'file') throw new PermanentStepError(`scan: ${keyOf(source)} is not a regular file`);

      const started = Date.now();
      const verdict = await clamdScan(host, port, await readStream(storage, source, signal), { timeoutMs: options.timeoutMs, chunkBytes, signal });
      if (verdict.clean) {
        log.debug({ uploadId: event.uploadId, bytes: file.size, ms: Date.now() - started }, 'scan: clean');
        return { details: { clean: true } };
      }
      await makeFolders(storage, folder);
      await quarantine(context, target, verdict.signature, file.size);
      log.warn({ uploadId: event.uploadId, user: event.user, path: event.path, signature: verdict.signature, quarantine: keyOf(target) }, 'scan: malware found, file quarantined');
      return infected(target, verdict.signature);
    },
  };
}
