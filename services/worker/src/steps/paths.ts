// Where a step may write, and how it writes there without leaving half files. Every path a step writes goes through
// resolveInside (or mkdirInside), which proves it stays inside the data root whatever `..` or symlink it meets.
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PermanentStepError } from './errors';

/** A host path proven to be inside the data root. */
export interface ResolvedPath {
  /** Host path to use: every directory on the way resolved through symlinks, the last name kept as it is. */
  path: string;
  /** The same path relative to the data root, `/`-separated (`alice/archive/report.csv`): for results and logs. */
  key: string;
  exists: boolean;
}

/** True when `p` is `root` or below it (both absolute and normalised). */
export function isInside(root: string, p: string): boolean {
  if (p === root) return true;
  return p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

const SEPARATORS = path.sep === '/' ? '/' : /[\\/]/;

/**
 * `target` (absolute, or relative to dataRoot) resolved the way a write would meet it, refused with a PermanentStepError
 * when it is or could lead outside dataRoot: a `..` segment anywhere, an absolute path elsewhere, a directory on the
 * way that is a symlink leading out (or dangling, so where it leads cannot be checked), or a last name that is such a
 * symlink. A name that does not exist yet is resolved through its deepest existing ancestor.
 */
export async function resolveInside(dataRoot: string, target: string): Promise<ResolvedPath> {
  if (target.includes('\0') || target.split(SEPARATORS).includes('..')) throw outside(target);
  const root = await fsp.realpath(dataRoot);
  const lexicalRoot = path.resolve(dataRoot);
  const abs = path.resolve(lexicalRoot, target);
  // A caller may hold paths under the root as configured or under its real path: both are fine.
  const base = isInside(lexicalRoot, abs) ? lexicalRoot : isInside(root, abs) ? root : undefined;
  if (base === undefined) throw outside(target);
  const rel = path.relative(base, abs);
  if (rel === '') return { path: root, key: '', exists: true };
  const host = path.join(root, rel);
  const parent = await realDeepest(root, path.dirname(host), target);
  if (!isInside(root, parent)) throw outside(target);
  const entry = path.join(parent, path.basename(host));
  const stat = await fsp.lstat(entry).catch(() => undefined);
  if (stat?.isSymbolicLink()) {
    const real = await fsp.realpath(entry).catch(() => undefined);
    if (real === undefined || !isInside(root, real)) throw outside(target);
  }
  return { path: entry, key: keyOf(root, entry), exists: stat !== undefined };
}

/** mkdir -p of `dir` (absolute, or relative to dataRoot), proven inside dataRoot before and after. */
export async function mkdirInside(dataRoot: string, dir: string): Promise<ResolvedPath> {
  const resolved = await resolveInside(dataRoot, dir);
  await fsp.mkdir(resolved.path, { recursive: true });
  // A symlink swapped in while mkdir walked the path would show here.
  const [root, real] = await Promise.all([fsp.realpath(dataRoot), fsp.realpath(resolved.path)]);
  if (!isInside(root, real)) throw outside(dir);
  return { path: real, key: keyOf(root, real), exists: true };
}

/**
 * A fresh temporary name beside `file`. It follows @ftp/storage's partial-upload naming (`.<name>….ftp-partial`), so FTP
 * clients never see it in a listing and cannot open or overwrite it; the random part keeps two writers apart.
 */
export function tempPathFor(file: string): string {
  const name = path.basename(file).slice(0, 200);
  return path.join(path.dirname(file), `.${name}.${randomBytes(6).toString('hex')}.ftp-partial`);
}

/** Writes `data` to `file` through a durable temporary file and a rename: readers see the old file or the whole new one. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempPathFor(file);
  try {
    const handle = await fsp.open(tmp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(path.dirname(file));
}

/** fsync of a directory, so a rename in it survives a crash. Best effort: some platforms cannot open directories. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not supported here (EISDIR, EPERM, EINVAL on some systems): the rename itself has happened.
  }
}

/** The errno string of a Node error (`'ENOENT'`, …), if any. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** realpath of `dir`, or of its deepest existing ancestor with the missing names appended. */
async function realDeepest(root: string, dir: string, target: string, retries = 3): Promise<string> {
  try {
    return await fsp.realpath(dir);
  } catch (err) {
    const errno = errnoOf(err);
    if ((errno !== 'ENOENT' && errno !== 'ENOTDIR') || dir === root || dir === path.dirname(dir)) throw err;
    const stat = await fsp.lstat(dir).catch(() => undefined);
    // Present for lstat but not for realpath: a dangling symlink, which could later be made to lead anywhere.
    if (stat?.isSymbolicLink()) throw outside(target);
    // A directory another worker created between the two calls (two jobs filing into the same new day folder).
    if (stat && retries > 0) return realDeepest(root, dir, target, retries - 1);
    if (stat) throw err;
    return path.join(await realDeepest(root, path.dirname(dir), target), path.basename(dir));
  }
}

function keyOf(root: string, p: string): string {
  return path.relative(root, p).split(path.sep).join('/');
}

function outside(target: string): PermanentStepError {
  return new PermanentStepError(`path "${target}" is outside the data root`);
}
