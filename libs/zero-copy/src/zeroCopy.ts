import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The native binding (src/zero_copy.c). Each call starts a move on a thread of its own and returns its cancel function. */
interface Binding {
  sendFile(fileFd: number, socketFd: number, position: number, length: number, progressMs: number, onEvent: EventCallback): () => void;
  /** `toPosition` -1: the output is a socket (or pipe); otherwise a file written from that position on. */
  splice(fromFd: number, toFd: number, toPosition: number, progressMs: number, onEvent: EventCallback): () => void;
}

type EventCallback = (kind: 'progress' | 'end', bytes: number, reason: 'done' | 'eof' | 'cancelled' | 'error', errno: number) => void;

/** How a move ended well: every byte asked for moved (`done`), or its input ended first (`eof`). */
export type MoveEnd = 'done' | 'eof';

export interface MoveResult {
  /** Bytes that reached the output (sendfile: accepted by the socket; splice: written to the file or socket). */
  bytes: number;
  end: MoveEnd;
}

export interface MoveOptions {
  /** Cancels the move: it stops within one chunk and rejects with a MoveError named AbortError (with its bytes). */
  signal?: AbortSignal;
  /**
   * Told the bytes moved since the last call, at most once per `progressMs` while bytes move, and once more before the
   * move settles with the rest: the calls add up to the final byte count exactly.
   */
  onProgress?(bytes: number): void;
  /** Default 250. */
  progressMs?: number;
}

/** A move that failed or was cancelled, with what it moved before (exact). `code` is the errno name (EPIPE, ENOSPC…), or ABORT_ERR. */
export class MoveError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly bytes: number,
  ) {
    super(message);
    this.name = code === 'ABORT_ERR' ? 'AbortError' : 'MoveError';
  }
}

/**
 * Zero-copy byte movers between file descriptors (Linux), off the event loop. The descriptors stay the caller's: a
 * move works on its own duplicates, made when it starts and closed before it settles, so the caller may close its
 * own meanwhile without hurting anything, and once the promise settles closing them really closes the connection.
 * Socket descriptors are expected non-blocking (Node's are): the move waits for readiness itself. Nothing else may
 * read from the input or write to the output while a move runs (see lendSocket for a Node socket).
 */
export interface ZeroCopy {
  /** sendfile(2): `length` bytes of file `fileFd` from `position` to a socket. Ends 'eof' if the file was shorter. */
  sendFile(fileFd: number, socketFd: number, position: number, length: number, options?: MoveOptions): Promise<MoveResult>;
  /**
   * splice(2) socket → pipe → file: everything the socket sends until its EOF, written at `position` and on. A cancel
   * first writes what the pipe already holds, so bytes taken from the socket are bytes stored.
   */
  spliceToFile(socketFd: number, fileFd: number, position: number, options?: MoveOptions): Promise<MoveResult>;
  /** splice(2) socket → pipe → socket, until the input's EOF (which is not passed on: shut the output down yourself). */
  spliceToSocket(fromFd: number, toFd: number, options?: MoveOptions): Promise<MoveResult>;
}

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));

function move(start: (onEvent: EventCallback) => () => void, options: MoveOptions = {}): Promise<MoveResult> {
  const { signal, onProgress } = options;
  if (signal?.aborted) return Promise.reject(new MoveError('move cancelled', 'ABORT_ERR', 0));
  return new Promise((resolve, reject) => {
    let reported = 0;
    let cancel: (() => void) | undefined;
    const onAbort = () => cancel?.();
    const onEvent: EventCallback = (kind, bytes, reason, errno) => {
      if (bytes > reported) {
        const delta = bytes - reported;
        reported = bytes;
        onProgress?.(delta);
      }
      if (kind !== 'end') return;
      signal?.removeEventListener('abort', onAbort);
      cancel = undefined;
      if (reason === 'done' || reason === 'eof') resolve({ bytes, end: reason });
      else if (reason === 'cancelled') reject(new MoveError('move cancelled', 'ABORT_ERR', bytes));
      else {
        const code = errnoNames.get(errno) ?? `E${errno}`;
        reject(new MoveError(`zero-copy move failed: ${code}`, code, bytes));
      }
    };
    try {
      cancel = start(onEvent);
    } catch (err) {
      reject(new MoveError((err as Error).message, 'ESTART', 0));
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function wrap(binding: Binding): ZeroCopy {
  const ms = (options?: MoveOptions) => options?.progressMs ?? 250;
  return {
    sendFile: (fileFd, socketFd, position, length, options) =>
      move((onEvent) => binding.sendFile(fileFd, socketFd, position, length, ms(options), onEvent), options),
    spliceToFile: (socketFd, fileFd, position, options) => move((onEvent) => binding.splice(socketFd, fileFd, position, ms(options), onEvent), options),
    spliceToSocket: (fromFd, toFd, options) => move((onEvent) => binding.splice(fromFd, toFd, -1, ms(options), onEvent), options),
  };
}

export interface LoadOptions {
  /** The .node file; default: build/Release/zero_copy.node of this package. */
  file?: string;
  /** Told why the addon is not there (not built, another platform, a load failure). */
  onUnavailable?(reason: string): void;
}

/** The package folder: found through the package name (works from the bundle, whose own URL is elsewhere), or beside this file. */
function packageDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('@ftp/zero-copy/package.json'));
  } catch {
    return join(dirname(fileURLToPath(import.meta.url)), '..');
  }
}

/** Loads the addon; null when it is absent (no compiler at install time), on another platform, or fails to load. */
export function loadZeroCopy(options: LoadOptions = {}): ZeroCopy | null {
  const unavailable = (reason: string) => {
    options.onUnavailable?.(reason);
    return null;
  };
  if (process.platform !== 'linux') return unavailable(`not on Linux (${process.platform})`);
  const file = options.file ?? join(packageDir(), 'build', 'Release', 'zero_copy.node');
  if (!existsSync(file)) return unavailable(`${file} is missing (not built: python3, make and g++ are needed at npm install)`);
  try {
    const binding = createRequire(import.meta.url)(file) as Partial<Binding>;
    if (typeof binding.sendFile !== 'function' || typeof binding.splice !== 'function') return unavailable(`${file} is not the zero-copy addon`);
    return wrap(binding as Binding);
  } catch (err) {
    return unavailable(`${file} failed to load: ${(err as Error).message}`);
  }
}
