import fsp from 'node:fs/promises';
import path from 'node:path';
import { errnoOf, storageError, toStorageError } from './errors';
import { isPartialName } from './partial';
import { resolveVirtualPath, virtualSegments } from './virtualPath';

/** Maps virtual paths to host paths that are proven to stay inside one root directory. */
export interface PathGuard {
  /** The realpath of the root. */
  root(): Promise<string>;
  /** Host path of what `vpath` names, symlinks resolved: for stat, list, read and upload. */
  target(vpath: string): Promise<string>;
  /** Host path of the directory entry itself (parent resolved, last name kept): for delete, rename, mkdir, rmdir. */
  entry(vpath: string): Promise<string>;
}

/** True when `p` is `root` or below it. */
export function isInside(root: string, p: string): boolean {
  if (p === root) return true;
  return p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export function createPathGuard(root: string): PathGuard {
  let rootReal: Promise<string> | undefined;
  // Resolved once; a failure is not cached so a root created later still works.
  const getRoot = (): Promise<string> =>
    (rootReal ??= fsp.realpath(root).catch((err: unknown) => {
      rootReal = undefined;
      throw toStorageError(err);
    }));

  const segmentsOf = (vpath: string): string[] => {
    const segs = virtualSegments(resolveVirtualPath('/', vpath));
    // Partial-upload names are reserved so a client cannot clobber or publish someone's partial.
    if (segs.some(isPartialName)) throw storageError('bad-name');
    return segs;
  };

  const resolveSegments = async (segs: string[]): Promise<string> => {
    const base = await getRoot();
    const resolved = await realpathOfDeepestExisting(base, path.join(base, ...segs));
    if (!isInside(base, resolved)) throw storageError('denied');
    return resolved;
  };

  return {
    root: getRoot,
    target: (vpath) => resolveSegments(segmentsOf(vpath)),
    async entry(vpath) {
      const segs = segmentsOf(vpath);
      if (segs.length === 0) return getRoot();
      // The full path must also be safe: an entry that is a symlink leading out is refused outright.
      const [parent] = await Promise.all([resolveSegments(segs.slice(0, -1)), resolveSegments(segs)]);
      return path.join(parent, segs[segs.length - 1]);
    },
  };
}

/**
 * realpath of `host`, or — when it does not exist yet — realpath of its deepest existing ancestor
 * with the missing names appended. A dangling symlink on the way is refused: where it points cannot be checked.
 */
async function realpathOfDeepestExisting(base: string, host: string): Promise<string> {
  const missing: string[] = [];
  for (let cur = host; ; cur = path.dirname(cur)) {
    try {
      return path.join(await fsp.realpath(cur), ...missing.reverse());
    } catch (err) {
      const errno = errnoOf(err);
      if ((errno !== 'ENOENT' && errno !== 'ENOTDIR') || cur === base || cur === path.dirname(cur)) {
        throw toStorageError(err);
      }
      if (await fsp.lstat(cur).then(() => true, () => false)) throw storageError('denied', err);
      missing.push(path.basename(cur));
    }
  }
}
