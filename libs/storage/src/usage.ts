import { lstat, opendir } from 'node:fs/promises';
import path from 'node:path';
import type { StoredUsage } from './types';
import { isPartialName } from './partial';


// Sizes of one directory's files are read this many at a time.
const STAT_BATCH = 64;

const missing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * Walks `root` (a user's home) and counts its regular files and their sizes. Partial uploads (`.name.ftp-partial`,
 * libs/storage/src/partial.ts) are not counted: quotas count published files. Symbolic links are neither followed
 * nor counted, so a link cannot make a home count another's files. A home that does not exist yet holds nothing; an
 * entry that disappears while the walk runs (a delete, a rename) is skipped. Iterative, so the depth of a tree costs
 * no stack.
 */
export async function scanTree(root: string): Promise<StoredUsage> {
  const usage: StoredUsage = { bytes: 0, files: 0 };
  const folders = [root];
  for (let folder = folders.pop(); folder !== undefined; folder = folders.pop()) {
    const files: string[] = [];
    try {
      const dir = await opendir(folder);
      for await (const entry of dir) {
        const at = path.join(folder, entry.name);
        if (entry.isDirectory()) folders.push(at);
        else if (entry.isFile() && !isPartialName(entry.name)) files.push(at);
      }
    } catch (err) {
      if (missing(err)) continue;
      throw err;
    }
    for (let i = 0; i < files.length; i += STAT_BATCH) {
      const sizes = await Promise.all(files.slice(i, i + STAT_BATCH).map((file) => lstat(file).then((s) => (s.isFile() ? s.size : -1), (err) => (missing(err) ? -1 : Promise.reject(err)))));
      for (const size of sizes) {
        if (size < 0) continue;
        usage.files += 1;
        usage.bytes += size;
      }
    }
  }
  return usage;
}
