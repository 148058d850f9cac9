import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import type { FileContent } from '../ledger';

/**
 * What a partner does over one connection, the same for FTP, FTPS and SFTP, and the pieces both clients share:
 * deadlines on every operation, the byte meter on raw TCP sockets, and synthetic file contents.
 */

export interface Session {
  /** Names in a folder. */
  list(dir: string): Promise<string[]>;
  /**
   * Sends `bytes` bytes to `path` (appending with `append`). With `cutAfter`, sends that many and then resets the
   * connection (TCP RST) as a broken link would: the session is dead afterwards.
   */
  upload(path: string, bytes: number, options?: UploadOptions): Promise<void>;
  /** The size the server reports (a partial upload's bytes too). */
  size(path: string): Promise<number>;
  /** Reads the whole file; resolves with the bytes received. `onData` sees them in file order. */
  download(path: string, options?: { onData?: (chunk: Buffer) => void }): Promise<number>;
  remove(path: string): Promise<void>;
  /** Creates a folder and its parents; an existing folder is fine. */
  mkdir(dir: string): Promise<void>;
  /** QUIT (SFTP: close the channel and the connection), bounded. */
  close(): Promise<void>;
  /** Resets every connection at once. */
  destroy(): void;
}

export interface UploadOptions {
  append?: boolean;
  cutAfter?: number;
  /** The file's contents (the ledger's unique ones); default: slices of the thread's random block. */
  content?: FileContent;
  /** With `content`: where in it the bytes sent start (a resumed upload sends the rest of its file). Default 0. */
  from?: number;
}

/** What an upload sends, as a function of the position in what it sends. */
export function sliceOf(options: UploadOptions): (pos: number, len: number) => Buffer {
  const { content, from = 0 } = options;
  return content ? (pos, len) => content.at(from + pos, len) : contentAt;
}

export interface Login {
  user: string;
  password?: string;
  /** Private key text (PEM or OpenSSH), SFTP only: a string survives the copy into a VU thread as it is. */
  privateKey?: string;
}

export interface Timeouts {
  connect: number;
  operation: number;
  /** A transfer may run longer than `operation` while bytes move; it fails after this long without any. */
  stall: number;
}

export interface ConnectArgs {
  host: string;
  port: number;
  login: Login;
  tls: boolean;
  timeouts: Timeouts;
  meter: ByteMeter;
  signal: AbortSignal;
}

/** An error with a short, groupable reason (the summary counts errors by reason). */
export function loadError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export const INTERRUPTED = 'INTERRUPTED';

/**
 * Runs `op` with a deadline: `timeoutMs` in all, or with `progress`, `stallMs` without `progress()` changing. On
 * expiry or abort it calls `kill` (which must make `op` settle) and rejects at once.
 */
export function bounded<T>(
  what: string,
  op: () => Promise<T>,
  o: { signal: AbortSignal; timeoutMs: number; kill: () => void; progress?: () => number; stallMs?: number },
): Promise<T> {
  if (o.signal.aborted) return Promise.reject(loadError(INTERRUPTED, `${what}: interrupted`));
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let last = o.progress?.() ?? 0;
    let lastMoved = Date.now();
    const finish = (err: Error | undefined, value?: T) => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      o.signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value as T);
    };
    const expire = (err: Error) => {
      finish(err);
      o.kill();
    };
    const onAbort = () => expire(loadError(INTERRUPTED, `${what}: interrupted`));
    const started = Date.now();
    const timer = setInterval(
      () => {
        const now = Date.now();
        if (o.progress) {
          const moved = o.progress();
          if (moved !== last) [last, lastMoved] = [moved, now];
          if (now - lastMoved >= (o.stallMs ?? o.timeoutMs)) expire(loadError('TIMEOUT', `${what}: no byte moved for ${Math.round((now - lastMoved) / 1000)} s`));
        } else if (now - started >= o.timeoutMs) expire(loadError('TIMEOUT', `${what}: no answer within ${o.timeoutMs} ms`));
      },
      Math.max(20, Math.min(500, (o.progress ? (o.stallMs ?? o.timeoutMs) : o.timeoutMs) / 4)),
    );
    o.signal.addEventListener('abort', onAbort, { once: true });
    op().then(
      (value) => finish(undefined, value),
      (err: Error) => finish(err),
    );
  });
}

/**
 * Counts the bytes of raw TCP sockets (what is on the wire: control, data and SSH connections, TLS and SSH framing
 * included), as k6's data_sent / data_received do. `take()` returns what moved since the last call.
 */
export interface ByteMeter {
  track(socket: Socket): void;
  take(): { sent: number; received: number };
}

export function byteMeter(): ByteMeter {
  const live = new Set<Socket>();
  let closedSent = 0;
  let closedReceived = 0;
  let reportedSent = 0;
  let reportedReceived = 0;
  return {
    track(socket) {
      live.add(socket);
      socket.once('close', () => {
        live.delete(socket);
        closedSent += socket.bytesWritten;
        closedReceived += socket.bytesRead;
      });
    },
    take() {
      let sent = closedSent;
      let received = closedReceived;
      for (const s of live) {
        sent += s.bytesWritten;
        received += s.bytesRead;
      }
      const delta = { sent: sent - reportedSent, received: received - reportedReceived };
      [reportedSent, reportedReceived] = [sent, received];
      return delta;
    },
  };
}

/** Bytes moved on a set of sockets so far: the progress of a transfer. */
export function movedOn(sockets: Iterable<Socket>): number {
  let n = 0;
  for (const s of sockets) n += s.bytesWritten + s.bytesRead;
  return n;
}

/** Resets (RST) a TCP socket, or destroys it where no TCP handle is left. */
export function reset(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

// ---- synthetic file contents: slices of one random block per thread, never copied ----

export const CHUNK = 64 * 1024;
const PATTERN = randomBytes(16 * CHUNK);

/** `len` bytes (at most CHUNK) of file content at offset `pos` of the file (pos a multiple of CHUNK, or the tail). */
export function contentAt(pos: number, len: number): Buffer {
  const at = pos % PATTERN.length;
  return at + len <= PATTERN.length ? PATTERN.subarray(at, at + len) : PATTERN.subarray(0, len);
}

/**
 * A stream of `bytes` bytes of file content (`slice`, default the thread's block); with `hold`, it stops there
 * without ending and calls `hold` once drained.
 */
export function contentStream(bytes: number, hold?: () => void, slice: (pos: number, len: number) => Buffer = contentAt): Readable {
  let pos = 0;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (pos >= bytes) {
        if (hold) hold();
        else this.push(null);
        hold = undefined; // called once; the stream then waits forever for its connection to be reset
        return;
      }
      const len = Math.min(CHUNK, bytes - pos);
      this.push(slice(pos, len));
      pos += len;
    },
  });
}

/** A sink that counts what it is given (and shows it to `onData`) and keeps nothing. */
export function countingSink(onData?: (chunk: Buffer) => void): Writable & { bytes: number } {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      sink.bytes += chunk.length;
      onData?.(chunk);
      done();
    },
  }) as Writable & { bytes: number };
  sink.bytes = 0;
  return sink;
}
