import path from 'node:path';
import type { Storage } from '@ftp/storage';
import type { UploadEvent } from '@ftp/upload-events';
import { knownSha256, renameInSidecar } from './checksum';
import { PermanentStepError } from './errors';
import {
  basenameOf,
  deleteIfThere,
  digestFile,
  dirnameOf,
  isStorageError,
  joinPath,
  keyOf,
  makeFolders,
  publishedAt,
  readSmallFile,
  writeSmallFile,
} from './files';
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

/** Checksum files that travel with the file they describe (see checksum.ts). */
const SIDECARS = ['.sha256', '.md5'];
const SIDECAR_MAX_BYTES = 64 * 1024;
const MAX_SUFFIX = 1000;
const PLACEHOLDERS = new Set(['yyyy', 'mm', 'dd', 'name', 'ext', 'stem', 'path', 'user', 'uploadId']);
const PLACEHOLDER = /\{([^{}]*)\}/g;

/**
 * Moves (or copies) the file into the user's home under a name made from `to`, with its checksum sidecars. Through
 * the storage: a rename that never replaces (link(2) on a local disk, a server-side copy on object storage), or a
 * durable copy published whole. Details: { from, to, outcome } as data-root keys; outcome is 'moved', 'copied',
 * 'identical' (the target already held these bytes), 'already-done' (a retry: the source is gone and the target holds
 * it) or 'in-place'.
 */
export function moveStep(options: MoveOptions): Step {
  const { to } = options;
  if (typeof to !== 'string' || to.trim() === '') throw new Error('move: `to` is required');
  for (const [, key] of to.matchAll(PLACEHOLDER)) {
    if (!PLACEHOLDERS.has(key)) throw new Error(`move: unknown placeholder {${key}} in "${to}" (${[...PLACEHOLDERS].join(', ')})`);
  }
  if (to.split('/').includes('..')) throw new Error(`move: "${to}" must stay inside the home (no ..)`);
  const copy = options.copy ?? false;
  const overwrite = options.overwrite ?? false;
  const place = (storage: Storage, from: string, target: string, replace: boolean) =>
    copy ? storage.copy(from, target, { replace }) : storage.rename(from, target, { replace });

  return {
    name: copy ? 'copy' : 'move',
    async run({ event, storage, path: source, previous, log, signal }): Promise<StepResult> {
      const home = homeOf(event);
      const wanted = `/${joinKey(home, renderTarget(to, event))}`;
      const done = (target: string, outcome: string): StepResult => {
        log.info({ from: keyOf(source), to: keyOf(target), outcome }, copy ? 'copied' : 'moved');
        return { path: target, details: { from: keyOf(source), to: keyOf(target), outcome } };
      };
      if (source === wanted) return done(source, 'in-place');

      const sourceFile = await publishedAt(storage, source);
      if (sourceFile && sourceFile.type !== 'file') throw new PermanentStepError(`${keyOf(source)}: not a regular file`);
      const dir = dirnameOf(wanted);
      const name = basenameOf(wanted);
      const candidate = (n: number) => joinPath(dir, n === 0 ? name : withSuffix(name, n));
      const last = overwrite ? 0 : MAX_SUFFIX;
      const sha256 = knownSha256(previous, event);
      /** The upload's sha256: known from a checksum step or the edge, else read once. */
      let sourceSha256 = sha256;
      const holdsUpload = async (target: string) => {
        sourceSha256 ??= (await digestFile(storage, source, ['sha256'], signal)).sha256;
        return (await digestFile(storage, target, ['sha256'], signal)).sha256 === sourceSha256;
      };

      if (!sourceFile) {
        // A retry after the file was placed but before the result was recorded: find it where it went.
        for (let n = 0; n <= last; n++) {
          const stat = await publishedAt(storage, candidate(n));
          if (!stat) break;
          const ours = stat.type === 'file' && stat.size === event.size;
          if (ours && (!sha256 || (await digestFile(storage, candidate(n), ['sha256'], signal)).sha256 === sha256)) {
            if (!copy) await carrySidecars(storage, source, candidate(n), copy, log);
            return done(candidate(n), 'already-done');
          }
        }
        throw new PermanentStepError(`${keyOf(source)} is gone and ${keyOf(wanted)} does not hold it`);
      }

      // Folders are made only to place a file, not to look for one placed earlier.
      await makeFolders(storage, dir);
      for (let n = 0; n <= last; ) {
        signal.throwIfAborted();
        const target = candidate(n);
        const stat = await publishedAt(storage, target);
        if (!stat) {
          try {
            await place(storage, source, target, false);
          } catch (err) {
            if (isStorageError(err, 'exists')) continue; // Someone else took the name meanwhile: look at what is there now.
            throw err;
          }
          await carrySidecars(storage, source, target, copy, log);
          return done(target, copy ? 'copied' : 'moved');
        }
        const same = stat.type === 'file' && (stat.unique === sourceFile.unique || (stat.size === sourceFile.size && (await holdsUpload(target))));
        if (same) {
          if (!copy) await deleteIfThere(storage, source);
          await carrySidecars(storage, source, target, copy, log);
          return done(target, 'identical');
        }
        if (overwrite) {
          if (stat.type !== 'file') throw new PermanentStepError(`${keyOf(wanted)}: something other than a file is in the way`);
          await place(storage, source, target, true);
          await carrySidecars(storage, source, target, copy, log);
          return done(target, copy ? 'copied' : 'moved');
        }
        n++;
      }
      throw new PermanentStepError(`${keyOf(wanted)}: no free name up to (${MAX_SUFFIX})`);
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
 * Takes `<file>.sha256` / `<file>.md5` along to `<target>.sha256`…, rewriting the name inside when the file was renamed
 * so `sha256sum -c` still works there. Written whole, then the source sidecar removed (for a move): a retry finds
 * either both or only the target, and does the same again.
 */
async function carrySidecars(storage: Storage, file: string, target: string, copy: boolean, log: StepContext['log']): Promise<void> {
  for (const ext of SIDECARS) {
    const from = file + ext;
    const stat = await publishedAt(storage, from);
    if (stat?.type !== 'file') continue;
    if (stat.size > SIDECAR_MAX_BYTES) {
      log.warn({ sidecar: basenameOf(from), bytes: stat.size }, 'too large for a checksum file: left where it is');
      continue;
    }
    const text = (await readSmallFile(storage, from, SIDECAR_MAX_BYTES)).toString('utf8');
    const [before, after] = [basenameOf(file), basenameOf(target)];
    await writeSmallFile(storage, target + ext, before === after ? text : renameInSidecar(text, before, after));
    if (!copy) await deleteIfThere(storage, from);
  }
}

function joinKey(home: string, rel: string): string {
  return home === '' ? rel : `${home}/${rel}`;
}

function segments(p: string): string[] {
  return p.split('/').filter((s) => s !== '' && s !== '.');
}
