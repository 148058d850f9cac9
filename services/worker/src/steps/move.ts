import { constants as fsConstants, type Stats } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { UploadEvent } from '@ftp/upload-events';
import { digestFile, knownSha256, renameInSidecar } from './checksum';
import { PermanentStepError } from './errors';
import { errnoOf, mkdirInside, resolveInside, syncDir, tempPathFor, writeFileAtomic } from './paths';
import type { Step, StepContext, StepResult } from './types';

export interface MoveOptions {
  /**
   * Where the file goes, relative to the user's home: `archive/{yyyy}/{mm}/{dd}/{name}`. Placeholders: {yyyy} {mm} {dd}
   * (UTC date the upload completed), {name} (file name as uploaded), {ext} (its extension with the dot, or empty),
   * {stem} (the name without it), {path} (the folder it was uploaded to, inside the home, no leading slash), {user},
   * {uploadId}. A leading `/` is the home itself; a trailing `/` means "into this folder" ({name} is appended).
   * `..` is refused.
   */
  to: string;
  /** Copy instead of move: the upload stays where it is and the pipeline goes on with the copy. */
  copy?: boolean;
  /**
   * Replace a different file already at the target. Default false: the file takes the first free name
   * `report (1).csv`, `report (2).csv`… and nothing is ever clobbered. A target holding the same bytes is not a
   * conflict: the file is already there (a move then only removes the source).
   */
  overwrite?: boolean;
}

/** The calls that publish a file; tests replace them to stage what a temp dir cannot, such as a cross-device move. */
export interface MoveIo {
  rename(from: string, to: string): Promise<void>;
  link(existing: string, created: string): Promise<void>;
}

/** Checksum files that travel with the file they describe (see checksum.ts). */
const SIDECARS = ['.sha256', '.md5'];
const SIDECAR_MAX_BYTES = 64 * 1024;
const MAX_SUFFIX = 1000;
const CHUNK = 1 << 20;
const PLACEHOLDERS = new Set(['yyyy', 'mm', 'dd', 'name', 'ext', 'stem', 'path', 'user', 'uploadId']);
const PLACEHOLDER = /\{([^{}]*)\}/g;
// link(2) not supported by the filesystem (vfat, some FUSE and network mounts).
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Moves (or copies) the file into the user's home under a name made from `to`, with its checksum sidecars.
 * Details: { from, to, outcome } with paths relative to the data root; outcome is 'moved', 'copied', 'identical' (the
 * target already held these bytes), 'already-done' (a retry: the source is gone and the target holds it) or 'in-place'.
 */
export function moveStep(options: MoveOptions, io: MoveIo = { rename: fsp.rename, link: fsp.link }): Step {
  const { to } = options;
  if (typeof to !== 'string' || to.trim() === '') throw new Error('move: `to` is required');
  for (const [, key] of to.matchAll(PLACEHOLDER)) {
    if (!PLACEHOLDERS.has(key)) throw new Error(`move: unknown placeholder {${key}} in "${to}" (${[...PLACEHOLDERS].join(', ')})`);
  }
  if (to.split('/').includes('..')) throw new Error(`move: "${to}" must stay inside the home (no ..)`);
  const copy = options.copy ?? false;
  const overwrite = options.overwrite ?? false;

  return {
    name: copy ? 'copy' : 'move',
    async run({ event, filePath, dataRoot, previous, log, signal }): Promise<StepResult> {
      const home = homeOf(event);
      const wanted = await resolveInside(dataRoot, joinKey(home, renderTarget(to, event)));
      const source = await resolveInside(dataRoot, filePath);
      const done = (key: string, outcome: string): StepResult => {
        log.info({ from: source.key, to: key, outcome }, copy ? 'copied' : 'moved');
        return { filePath: path.join(dataRoot, key), details: { from: source.key, to: key, outcome } };
      };
      if (source.path === wanted.path) return done(source.key, 'in-place');

      const sourceStat = source.exists ? await fsp.lstat(source.path) : undefined;
      if (sourceStat && !sourceStat.isFile()) throw new PermanentStepError(`${source.key}: not a regular file`);
      // Folders are made only to place a file, not to look for one placed earlier.
      const dir = sourceStat
        ? await mkdirInside(dataRoot, path.dirname(wanted.path))
        : { path: path.dirname(wanted.path), key: parentKey(wanted.key) };
      const name = path.basename(wanted.path);
      const nameOf = (n: number) => (n === 0 ? name : withSuffix(name, n));
      const candidate = (n: number) => path.join(dir.path, nameOf(n));
      const keyOf = (n: number) => joinKey(dir.key, nameOf(n));
      const last = overwrite ? 0 : MAX_SUFFIX;

      if (!sourceStat) {
        // A retry after the file was placed but before the result was recorded: find it where it went.
        const sha256 = knownSha256(previous, event);
        for (let n = 0; n <= last; n++) {
          const stat = await fsp.lstat(candidate(n)).catch(() => undefined);
          if (!stat) break;
          const ours = stat.isFile() && stat.size === event.size;
          if (ours && (!sha256 || (await digestFile(candidate(n), ['sha256'], signal)).sha256 === sha256)) {
            if (!copy) await carrySidecars(dataRoot, source.path, candidate(n), copy, log);
            return done(keyOf(n), 'already-done');
          }
        }
        throw new PermanentStepError(`${source.key} is gone and ${wanted.key} does not hold it`);
      }

      for (let n = 0; n <= last; ) {
        signal.throwIfAborted();
        const target = candidate(n);
        const stat = await fsp.lstat(target).catch(() => undefined);
        if (!stat) {
          if (await place(source.path, target, { copy, replace: false }, io, signal)) {
            await carrySidecars(dataRoot, source.path, target, copy, log);
            return done(keyOf(n), copy ? 'copied' : 'moved');
          }
          continue; // Someone else took the name meanwhile: look at what is there now.
        }
        if (stat.isFile() && (await sameBytes(sourceStat, source.path, stat, target, signal))) {
          if (!copy) await fsp.rm(source.path, { force: true });
          await carrySidecars(dataRoot, source.path, target, copy, log);
          return done(keyOf(n), 'identical');
        }
        if (overwrite) {
          if (!stat.isFile()) throw new PermanentStepError(`${wanted.key}: something other than a file is in the way`);
          await place(source.path, target, { copy, replace: true }, io, signal);
          await carrySidecars(dataRoot, source.path, target, copy, log);
          return done(keyOf(n), copy ? 'copied' : 'moved');
        }
        n++;
      }
      throw new PermanentStepError(`${wanted.key}: no free name up to (${MAX_SUFFIX})`);
    },
  };
}

/**
 * The user's home relative to the data root: the storage key without the trailing segments that are the upload's
 * virtual path (`alice/inbox/report.csv` minus `/inbox/report.csv` = `alice`); empty when the home is the root.
 */
export function homeOf(event: UploadEvent): string {
  const key = segments(event.storageKey);
  const inside = segments(event.path);
  const home = key.slice(0, key.length - inside.length);
  const tail = key.slice(home.length);
  if (inside.length === 0 || inside.length > key.length || tail.some((s, i) => s !== inside[i]) || key.includes('..')) {
    throw new PermanentStepError(`storage key "${event.storageKey}" does not end with the upload's path "${event.path}"`);
  }
  return home.join('/');
}

/** The target path inside the home that `template` names for this upload, `/`-separated, proven free of `..`. */
export function renderTarget(template: string, event: UploadEvent): string {
  const inside = segments(event.path);
  const name = inside[inside.length - 1];
  if (name === undefined || inside.includes('..')) throw new PermanentStepError(`upload path "${event.path}" names no file`);
  const date = new Date(event.completedAt);
  if (Number.isNaN(date.getTime())) throw new PermanentStepError(`completedAt ${event.completedAt} is not a date`);
  const ext = path.posix.extname(name);
  const values: Record<string, string> = {
    yyyy: String(date.getUTCFullYear()).padStart(4, '0'),
    mm: String(date.getUTCMonth() + 1).padStart(2, '0'),
    dd: String(date.getUTCDate()).padStart(2, '0'),
    name,
    ext,
    stem: name.slice(0, name.length - ext.length),
    path: inside.slice(0, -1).join('/'),
    user: event.user,
    uploadId: event.uploadId,
  };
  let rendered = template.replace(PLACEHOLDER, (_, key: string) => values[key] ?? '');
  if (rendered.endsWith('/')) rendered += name;
  const parts = segments(rendered);
  if (parts.length === 0 || parts.includes('..') || rendered.includes('\0')) {
    throw new PermanentStepError(`move target "${template}" gives "${rendered}", which is not a file inside the home`);
  }
  return parts.join('/');
}

/** `report.csv` → `report (2).csv`; `README` → `README (2)`. */
export function withSuffix(name: string, n: number): string {
  const ext = path.extname(name);
  return `${name.slice(0, name.length - ext.length)} (${n})${ext}`;
}

/**
 * Puts `source` at `target`. Without `replace` nothing is ever clobbered: false means `target` appeared meanwhile.
 * A move is link + unlink (rename where hard links are missing); across filesystems it is copy + fsync + publish +
 * unlink. A copy goes to a temporary file beside the target first, so the target is never seen half written.
 */
async function place(
  source: string,
  target: string,
  how: { copy: boolean; replace: boolean },
  io: MoveIo,
  signal: AbortSignal,
): Promise<boolean> {
  if (!how.copy) {
    try {
      const placed = await publish(source, target, how.replace, io);
      if (placed) await Promise.all([syncDir(path.dirname(target)), syncDir(path.dirname(source))]);
      return placed;
    } catch (err) {
      if (errnoOf(err) !== 'EXDEV') throw err;
    }
  }
  const tmp = tempPathFor(target);
  try {
    await copyDurably(source, tmp, signal);
    if (!(await publish(tmp, target, how.replace, io))) return false;
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  await syncDir(path.dirname(target));
  if (!how.copy) {
    await fsp.rm(source, { force: true });
    await syncDir(path.dirname(source));
  }
  return true;
}

/** Makes `from` appear at `to` and disappear from `from`; without `replace`, false when `to` exists. */
async function publish(from: string, to: string, replace: boolean, io: MoveIo): Promise<boolean> {
  if (replace) {
    await io.rename(from, to);
    return true;
  }
  try {
    // link(2) fails when the name exists: the check and the publish are one atomic step.
    await io.link(from, to);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'EEXIST') return false;
    if (errno === undefined || !NO_HARD_LINKS.has(errno)) throw err;
    // No hard links here: a checked rename, racy only against another writer of this very name.
    if (await fsp.lstat(to).then(() => true, () => false)) return false;
    await io.rename(from, to);
    return true;
  }
  await fsp.unlink(from);
  return true;
}

/** copyFile (copy_file_range or a reflink where the filesystem can) to a new file, then fsync it. */
async function copyDurably(source: string, target: string, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  await fsp.copyFile(source, target, fsConstants.COPYFILE_EXCL);
  const handle = await fsp.open(target, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** True when the two files hold the same bytes (the same inode, or equal size and content). */
async function sameBytes(aStat: Stats, a: string, bStat: Stats, b: string, signal: AbortSignal): Promise<boolean> {
  if (aStat.dev === bStat.dev && aStat.ino === bStat.ino) return true;
  if (aStat.size !== bStat.size) return false;
  const fa = await fsp.open(a, 'r');
  let fb: FileHandle;
  try {
    fb = await fsp.open(b, 'r');
  } catch (err) {
    await fa.close();
    throw err;
  }
  try {
    const ba = Buffer.allocUnsafe(CHUNK);
    const bb = Buffer.allocUnsafe(CHUNK);
    for (let position = 0; ; ) {
      signal.throwIfAborted();
      const [ra, rb] = await Promise.all([fa.read(ba, 0, CHUNK, position), fb.read(bb, 0, CHUNK, position)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      position += ra.bytesRead;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/**
 * Takes `<file>.sha256` / `<file>.md5` along to `<target>.sha256`…, rewriting the name inside when the file was renamed
 * so `sha256sum -c` still works there. Written atomically, then the source sidecar removed (for a move): a retry
 * finds either both or only the target, and does the same again.
 */
async function carrySidecars(dataRoot: string, file: string, target: string, copy: boolean, log: StepContext['log']): Promise<void> {
  for (const ext of SIDECARS) {
    const from = file + ext;
    const stat = await fsp.lstat(from).catch(() => undefined);
    if (!stat?.isFile()) continue;
    if (stat.size > SIDECAR_MAX_BYTES) {
      log.warn({ sidecar: path.basename(from), bytes: stat.size }, 'too large for a checksum file: left where it is');
      continue;
    }
    const to = await resolveInside(dataRoot, target + ext);
    const text = await fsp.readFile(from, 'utf8');
    const [before, after] = [path.basename(file), path.basename(target)];
    await writeFileAtomic(to.path, before === after ? text : renameInSidecar(text, before, after));
    if (!copy) await fsp.rm(from, { force: true });
  }
}

function parentKey(key: string): string {
  const parent = path.posix.dirname(key);
  return parent === '.' ? '' : parent;
}

function joinKey(home: string, rel: string): string {
  return home === '' ? rel : `${home}/${rel}`;
}

function segments(p: string): string[] {
  return p.split('/').filter((s) => s !== '' && s !== '.');
}
