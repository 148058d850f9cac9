import type { Upload } from '@ftp/storage';
import { SftpError, STATUS } from './status';

/**
 * Serves WRITE requests of one handle: queued in arrival order and written one batch at a time, contiguous requests
 * coalesced into one pwritev. Nothing is buffered beyond what the client sent and the session's flow control allows.
 */
export interface FileWriter {
  /** Write `data` at `offset` (in append mode at the current end, whatever `offset` says). Resolves once written. */
  write(offset: number, data: Buffer): Promise<void>;
  /** Resolves when nothing is queued or being written. */
  idle(): Promise<void>;
  /** A write failed: the file has a hole or lacks bytes the client sent, so it must not be published. */
  failed(): boolean;
  /** The end of the furthest byte written, at least the size kept at open. */
  size(): number;
  /** Bytes written by this handle. */
  bytes(): number;
  /** Once the queued writes are in, cut or extend the file to `size` bytes (FSETSTAT of the size). */
  truncate(size: number): Promise<void>;
}

interface Pending {
  position: number;
  data: Buffer;
  resolve(): void;
  reject(err: unknown): void;
}

const MAX_BATCH_REQUESTS = 64;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export function createFileWriter(upload: Upload, options: { append: boolean; backlog(delta: number): void }): FileWriter {
  const queue: Pending[] = [];
  let running = false;
  let failure: unknown;
  let end = upload.startOffset;
  let appendAt = upload.startOffset;
  let written = 0;
  let idleWaiters: Array<() => void> = [];

  const drain = async () => {
    running = true;
    while (queue.length > 0) {
      const batch = [queue.shift()!];
      let next = batch[0].position + batch[0].data.length;
      let bytes = batch[0].data.length;
      while (queue.length > 0 && queue[0].position === next && batch.length < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES) {
        const p = queue.shift()!;
        batch.push(p);
        next += p.data.length;
        bytes += p.data.length;
      }
      try {
        if (failure !== undefined) throw failure; // after one failure the rest is refused, not written around the hole
        await upload.writeAt(batch[0].position, batch.map((p) => p.data));
        end = Math.max(end, next);
        written += bytes;
        for (const p of batch) p.resolve();
      } catch (err) {
        failure ??= err;
        for (const p of batch) p.reject(err);
      } finally {
        options.backlog(-bytes);
      }
    }
    running = false;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  };

  return {
    write(offset, data) {
      const position = options.append ? appendAt : offset;
      if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(position + data.length)) {
        return Promise.reject(new SftpError(STATUS.FAILURE, 'Invalid offset'));
      }
      if (options.append) appendAt += data.length;
      return new Promise<void>((resolve, reject) => {
        queue.push({ position, data, resolve, reject });
        options.backlog(data.length);
        if (!running) void drain();
      });
    },
    idle: () => (running ? new Promise<void>((resolve) => idleWaiters.push(resolve)) : Promise.resolve()),
    failed: () => failure !== undefined,
    size: () => end,
    bytes: () => written,
    async truncate(size) {
      while (running || queue.length > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
      if (failure !== undefined) throw failure;
      await upload.truncate(size);
      end = size;
      appendAt = size;
    },
  };
}
