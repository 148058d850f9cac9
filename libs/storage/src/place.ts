// Renames and copies that may not replace what is already there, and durable copies, for the local backend.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { DirectoryFlusher } from './dirFlush';
import { errnoOf, ifExists, storageError } from './errors';
import type { FileOps } from './fileOps';
import { partialNameFor } from './partial';

// link(2) not supported by the file system (vfat, some FUSE and network mounts), or a directory.
const NO_HARD_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

export interface PlaceIo {
  io: FileOps;
  fsync: boolean;
  directories: DirectoryFlusher;
}

/**
 * Makes `from` appear at `to` and disappear from `from`. Without `replace` it never clobbers: link(2) fails atomically
 * when `to` exists ('exists'); where hard links are missing (or `from` is a folder), a checked rename.
 */
export async function move(place: PlaceIo, from: string, to: string, replace: boolean): Promise<void> {
  const { io } = place;
  if (replace) {
    await io.rename(from, to);
  } else {
    try {
      await io.link(from, to);
      await io.unlink(from);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'EEXIST') throw storageError('exists', err);
      if (errno === undefined || !NO_HARD_LINK.has(errno)) throw err;
      if (await ifExists(io.lstat(to))) throw storageError('exists');
      await io.rename(from, to);
    }
  }
  await flush(place, path.dirname(to), path.dirname(from));
}

/**
 * Copies file `from` to a hidden temporary name beside `to` (copy_file_range, or a reflink where the file system can),
 * flushes it, then publishes it as move() does: readers see no file or the whole copy, never half of one.
 */
export async function copy(place: PlaceIo, from: string, to: string, replace: boolean): Promise<void> {
  const stat = await place.io.stat(from);
  if (stat.isDirectory()) throw storageError('is-a-directory');
  if (!stat.isFile()) throw storageError('denied');
  // A partial-upload name (hidden from listings), made unique so two copies to one name never share it.
  const tmp = path.join(path.dirname(to), partialNameFor(`${path.basename(to).slice(0, 200)}.${randomBytes(6).toString('hex')}`));
  try {
    await fsp.copyFile(from, tmp, fs.constants.COPYFILE_EXCL);
    if (place.fsync) {
      const fd = await place.io.open(tmp, fs.constants.O_RDONLY);
      try {
        await place.io.fsync(fd);
      } finally {
        await place.io.close(fd);
      }
    }
    await move(place, tmp, to, replace);
  } finally {
    await ifExists(place.io.unlink(tmp));
  }
}

async function flush(place: PlaceIo, ...dirs: string[]): Promise<void> {
  if (!place.fsync) return;
  await Promise.all([...new Set(dirs)].map((dir) => place.directories.flush(dir)));
}
