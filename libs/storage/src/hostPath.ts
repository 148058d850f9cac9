import type fs from 'node:fs';
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
  /** As target(), also telling whether it exists (and, for a plain entry, its lstat), which saves uploads a stat. */
  targetOf(vpath: string): Promise<Resolved>;
  /** Host path of the directory entry itself (parent resolved, last name kept): for delete, rename, mkdir, rmdir. */
  entry(vpath: string): Promise<string>;
}

/** A host path with symlinks resolved. */
export interface Resolved {
  real: string;
  exists: boolean;
  /** The entry's lstat, when it exists and is no symlink (then it is also its stat). */
  stats?: fs.Stats;
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

  const resolveSegments = async (segs: string[]): Promise<Resolved> => {
    const base = await getRoot();
    const resolved = await resolveEntry(io, base, segs);
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
 * The host path of `segs` below `base` (a realpath), symlinks resolved, in as few calls as the common cases allow:
 * realpath of the parent (none for a parent that is the root), then one lstat of the entry. A missing entry is
 * `parent/name`; a plain one (no symlink) is `parent/name` too, with its lstat. Only a symlink as the last name, or a
 * missing parent, takes resolveDeepest's road. The caller checks that the result stays inside `base`, as before: the
 * parent's realpath is where symlinks on the way lead, and a plain last name cannot lead anywhere else.
 */
async function resolveEntry(io: FileOps, base: string, segs: string[]): Promise<Resolved> {
  if (segs.length === 0) return { real: base, exists: true };
  const host = path.join(base, ...segs);
  let parent = base;
  if (segs.length > 1) {
    try {
      parent = await io.realpath(path.dirname(host));
    } catch (err) {
      const errno = errnoOf(err);
      if (errno !== 'ENOENT' && errno !== 'ENOTDIR') throw toStorageError(err);
      return resolveDeepest(io, base, host);
    }
  }
  const real = path.join(parent, segs[segs.length - 1]);
  let stats: fs.Stats;
  try {
    stats = await io.lstat(real);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return { real, exists: false };
    throw toStorageError(err);
  }
  if (stats.isSymbolicLink()) return resolveDeepest(io, base, host);
  return { real, exists: true, stats };
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
