import fs from 'node:fs';
import { errnoOf } from './errors';
import type { FileOps } from './fileOps';

/**
 * Makes renames durable. A rename changes only its directory, so it survives a crash once that directory has been
 * fsynced; fsyncing the file (before or after) does not cover its name. One directory fsync covers every change made
 * to that directory before the fsync started, so concurrent uploads into one directory share flushes (group commit).
 */
export interface DirectoryFlusher {
  /**
   * Resolves once an fsync of `dir` that STARTED after this call has completed; rejects if that fsync failed.
   * Call it after the rename has completed (its promise resolved): the flush that answers then covers the rename.
   */
  flush(dir: string): Promise<void>;
}

/**
 * Per directory, at most one flush runs and at most one waits:
 * - flush(dir) joins the waiting flush, or creates it. A waiting flush has not issued its fsync yet, so when it does,
 *   that is after every caller that joined it made its call (hence after their renames completed).
 * - A running flush is never joined: its fsync may have started before the caller's rename completed.
 * - The waiting flush starts as soon as the running one ends, or, with none running, at the next turn of the event loop
 *   (setImmediate), so renames completing in the same turn share it. Under load this batches by itself: every
 *   rename landing in the directory while one fsync runs shares the next one, whichever session it belongs to.
 * With N concurrent commits into one directory this makes at most N flushes, and usually far fewer; a lone commit
 * waits one event-loop turn more than with a private fsync. Directories are keyed by host path; entries are dropped
 * once idle.
 */
export function createDirectoryFlusher(io: FileOps): DirectoryFlusher {
  const dirs = new Map<string, DirState>();

  const start = (dir: string, state: DirState) => {
    const batch = state.waiting;
    if (!batch || state.running) return;
    state.waiting = undefined;
    state.running = true;
    syncDirectory(io, dir)
      .then(batch.resolve, batch.reject)
      .finally(() => {
        state.running = false;
        if (state.waiting) start(dir, state);
        else dirs.delete(dir);
      });
  };

  return {
    flush(dir) {
      let state = dirs.get(dir);
      if (!state) dirs.set(dir, (state = { running: false }));
      if (!state.waiting) {
        state.waiting = batchOf();
        const idle = state;
        if (!idle.running) setImmediate(() => start(dir, idle));
      }
      return state.waiting.promise;
    },
  };
}

const shared = new WeakMap<FileOps, DirectoryFlusher>();

/** One flusher per metadata-io flavour for the whole process, so uploads of every session share directory flushes. */
export function sharedDirectoryFlusher(io: FileOps): DirectoryFlusher {
  let flusher = shared.get(io);
  if (!flusher) shared.set(io, (flusher = createDirectoryFlusher(io)));
  return flusher;
}

interface DirState {
  running: boolean;
  waiting?: Batch;
}

interface Batch {
  promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function batchOf(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

const O_DIRECTORY = fs.constants.O_DIRECTORY ?? 0;
/** open(dir) refused: directories cannot be opened here (Windows: EISDIR/EPERM), or the directory was moved away meanwhile. */
const CANNOT_OPEN = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOENT', 'ENOTDIR']);
/** fsync of a directory is not supported by this file system; the rename itself has happened. */
const CANNOT_SYNC = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EBADF']);

/** open + fsync + close of `dir` through `io` (open/close on the loop or the pool as `io` says; fsync on the pool). */
async function syncDirectory(io: FileOps, dir: string): Promise<void> {
  let fd: number;
  try {
    fd = await io.open(dir, fs.constants.O_RDONLY | O_DIRECTORY);
  } catch (err) {
    if (CANNOT_OPEN.has(errnoOf(err) ?? '')) return;
    throw err;
  }
  try {
    await io.fsync(fd);
  } catch (err) {
    // Anything else (EIO above all) means the name may not survive a crash: the commit must not report success.
    if (!CANNOT_SYNC.has(errnoOf(err) ?? '')) throw err;
  } finally {
    await io.close(fd).catch(() => undefined);
  }
}
