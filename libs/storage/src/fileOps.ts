import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { promisify } from 'node:util';

/**
 * The metadata calls the local backend makes, plus positional reads and writes. Two flavours with one shape, chosen
 * per storage:
 * - `async`: every call is a thread-pool round trip. Right for network file systems (NFS, EFS, CephFS), where one
 *   call can take milliseconds and must not stall the event loop.
 * - `sync`: the call runs on the event loop. On a local disk these take microseconds, while a thread-pool round trip
 *   costs 40–400 µs on a VM (measured: creating a file 215 µs sync, 634 µs async), which dominates small transfers.
 *   Reads and writes of up to SMALL_IO_BYTES are as cheap as a stat on a local disk (page cache), so they run on the
 *   loop too; bigger ones stay on the thread pool.
 */
export interface FileOps {
  realpath(path: string): Promise<string>;
  stat(path: string): Promise<fs.Stats>;
  lstat(path: string): Promise<fs.Stats>;
  open(path: string, flags: number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  fstat(fd: number): Promise<fs.Stats>;
  ftruncate(fd: number, length: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  /** Data and the metadata needed to read it back (size, allocation), not timestamps: see commit() in upload.ts. */
  fdatasync(fd: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** link(2): fails with EEXIST when `to` exists, which makes it the atomic no-replace publish. */
  link(existing: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** A directory's entries, up to `size` at a time, through one open handle (closed when the iteration ends or stops). */
  readdirBatches(path: string, size: number): AsyncIterable<fs.Dirent[]>;
  utimes(path: string, atime: Date, mtime: Date): Promise<void>;
  /** pwritev: the bytes written (a regular file may take fewer than offered). */
  writev(fd: number, chunks: readonly Uint8Array[], position: number): Promise<number>;
  /** pread into `buffer` from its start: the bytes read, 0 at the end. */
  read(fd: number, buffer: Uint8Array, length: number, position: number): Promise<number>;
}

/** Reads and writes up to this size run on the event loop in the sync flavour (a stat's cost on a local disk). */
export const SMALL_IO_BYTES = 64 * 1024;

const writevOnPool = (fd: number, chunks: readonly Uint8Array[], position: number) =>
  new Promise<number>((resolve, reject) => fs.writev(fd, chunks as Uint8Array[], position, (err, n) => (err ? reject(err) : resolve(n))));
const readOnPool = (fd: number, buffer: Uint8Array, length: number, position: number) =>
  new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
const byteLength = (chunks: readonly Uint8Array[]) => chunks.reduce((sum, c) => sum + c.length, 0);

export const asyncFileOps: FileOps = {
  realpath: (p) => fsp.realpath(p),
  stat: (p) => fsp.stat(p),
  lstat: (p) => fsp.lstat(p),
  open: promisify(fs.open) as (path: string, flags: number, mode?: number) => Promise<number>,
  close: promisify(fs.close),
  fstat: promisify(fs.fstat) as (fd: number) => Promise<fs.Stats>,
  ftruncate: promisify(fs.ftruncate),
  fsync: promisify(fs.fsync),
  fdatasync: promisify(fs.fdatasync),
  rename: (a, b) => fsp.rename(a, b),
  link: (a, b) => fsp.link(a, b),
  unlink: (p) => fsp.unlink(p),
  mkdir: async (p) => void (await fsp.mkdir(p)),
  rmdir: (p) => fsp.rmdir(p),
  async *readdirBatches(p, size) {
    const dir = await fsp.opendir(p, { bufferSize: size });
    try {
      yield* batches(() => dir.read(), size);
    } finally {
      await dir.close();
    }
  },
  utimes: (p, a, m) => fsp.utimes(p, a, m),
  writev: writevOnPool,
  read: readOnPool,
};

/** Synchronous calls behind the same promise-returning shape (errors become rejections, as with asyncFileOps). */
export const syncFileOps: FileOps = {
  realpath: async (p) => fs.realpathSync.native(p),
  stat: async (p) => fs.statSync(p),
  lstat: async (p) => fs.lstatSync(p),
  open: async (p, flags, mode) => fs.openSync(p, flags, mode),
  close: async (fd) => fs.closeSync(fd),
  fstat: async (fd) => fs.fstatSync(fd),
  ftruncate: async (fd, length) => fs.ftruncateSync(fd, length),
  // fsync and fdatasync wait for the disk: they stay on the thread pool even here.
  fsync: promisify(fs.fsync),
  fdatasync: promisify(fs.fdatasync),
  rename: async (a, b) => fs.renameSync(a, b),
  link: async (a, b) => fs.linkSync(a, b),
  unlink: async (p) => fs.unlinkSync(p),
  mkdir: async (p) => void fs.mkdirSync(p),
  rmdir: async (p) => fs.rmdirSync(p),
  async *readdirBatches(p, size) {
    const dir = fs.opendirSync(p, { bufferSize: size });
    try {
      yield* batches(async () => dir.readSync(), size);
    } finally {
      dir.closeSync();
    }
  },
  utimes: async (p, a, m) => fs.utimesSync(p, a, m),
  writev: async (fd, chunks, position) =>
    byteLength(chunks) <= SMALL_IO_BYTES ? fs.writevSync(fd, chunks as Uint8Array[], position) : writevOnPool(fd, chunks, position),
  read: async (fd, buffer, length, position) =>
    length <= SMALL_IO_BYTES ? fs.readSync(fd, buffer, 0, length, position) : readOnPool(fd, buffer, length, position),
};

/** Groups what `read` returns into arrays of up to `size` entries, until it returns null. */
async function* batches(read: () => Promise<fs.Dirent | null>, size: number): AsyncGenerator<fs.Dirent[]> {
  for (;;) {
    const batch: fs.Dirent[] = [];
    while (batch.length < size) {
      const entry = await read();
      if (!entry) break;
      batch.push(entry);
    }
    if (batch.length > 0) yield batch;
    if (batch.length < size) return; // the directory's end
  }
}
