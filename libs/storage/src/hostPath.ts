import path from 'node:path';
import { errnoOf, storageError, toStorageError } from './errors';
import type { FileOps } from './fileOps';
import { isPartialName } from './partial';
import type { StorageLimits } from './types';
import { assertPathLimits, resolveVirtualPath, virtualSegments } from './virtualPath';

/** Maps virtual paths to host paths that are proven to stay inside one root directory. */
export interface PathGuard {
  /** The realpath of the root. */
  root(): Promise<string>;
  /** Host path of what `vpath` names, symlinks resolved: for stat, list, read and upload. */
  target(vpath: string): Promise<string>;
  /** As target(), also telling whether it exists, which saves uploads a stat. */
  targetOf(vpath: string): Promise<{ real: string; exists: boolean }>;
  /** Host path of the directory entry itself (parent resolved, last name kept): for delete, rename, mkdir, rmdir. */
  entry(vpath: string): Promise<string>;
}

/** True when `p` is `root` or below it. */
export function isInside(root: string, p: string): boolean {
  if (p === root) return true;
  return p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** Every path goes through here, whichever protocol asks: `limits` bound its depth and length before any file-system call. */
export function createPathGuard(root: string, io: FileOps, limits: Pick<StorageLimits, 'maxPathDepth' | 'maxPathLength'>): PathGuard {
  let rootReal: Promise<string> | undefined;
  // Resolved once; a failure is not cached so a root created later still works.
  const getRoot = (): Promise<string> =>
    (rootReal ??= io.realpath(root).catch((err: unknown) => {
      rootReal = undefined;
      throw toStorageError(err);
    }));

  const segmentsOf = (vpath: string): string[] => {
    const segs = virtualSegments(resolveVirtualPath('/', vpath));
    assertPathLimits(segs, limits);
    // Partial-upload names are reserved so a client cannot clobber or publish someone's partial.
    if (segs.some(isPartialName)) throw storageError('bad-name');
    return segs;
  };

  const resolveSegments = async (segs: string[]): Promise<{ real: string; exists: boolean }> => {
    const base = await getRoot();
    const resolved = await resolveDeepest(io, base, path.join(base, ...segs));
    if (!isInside(base, resolved.real)) throw storageError('denied');
    return resolved;
  };

  return {
    root: getRoot,
    target: async (vpath) => (await resolveSegments(segmentsOf(vpath))).real,
    targetOf: (vpath) => resolveSegments(segmentsOf(vpath)),
    async entry(vpath) {
      const segs = segmentsOf(vpath);
      if (segs.length === 0) return getRoot();
      // The full path must also be safe: an entry that is a symlink leading out is refused outright.
      const [parent] = await Promise.all([resolveSegments(segs.slice(0, -1)), resolveSegments(segs)]);
      return path.join(parent.real, segs[segs.length - 1]);
    },
  };
}

/**
 * realpath of `host`, or — when it does not exist yet — realpath of its deepest existing ancestor with the missing
 * names appended, and whether `host` exists. A dangling symlink on the way is refused: where it points cannot be checked.
 */
async function resolveDeepest(io: FileOps, base: string, host: string): Promise<{ real: string; exists: boolean }> {
  try {
    return { real: await io.realpath(host), exists: true };
  } catch (err) {
    const errno = errnoOf(err);
    if ((errno !== 'ENOENT' && errno !== 'ENOTDIR') || host === base || host === path.dirname(host)) {
      throw toStorageError(err);
    }
    // Missing name or dangling symlink: tell them apart while the parent resolves (two round trips become one).
    const [entry, parent] = await Promise.all([
      io.lstat(host).then(() => true, () => false),
      resolveDeepest(io, base, path.dirname(host)),
    ]);
    if (entry) throw storageError('denied', err);
    return { real: path.join(parent.real, path.basename(host)), exists: false };
  }
}
