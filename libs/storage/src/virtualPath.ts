import { limitError, storageError } from './errors';
import type { StorageLimits } from './types';

// NUL truncates C strings, CR/LF would split FTP control replies: never valid in a name.
const FORBIDDEN = /[\0\r\n]/;

/** Throws StorageError('bad-name') when a client-supplied path contains NUL, CR or LF. */
export function assertCleanPath(input: string): void {
  if (FORBIDDEN.test(input)) throw storageError('bad-name');
}

/**
 * Join a client-supplied path with the session's current virtual directory (POSIX rules).
 * `.`/`..` are resolved, `..` at `/` stays at `/`, slashes are collapsed; backslash is an
 * ordinary name character. The result is absolute and has no trailing slash (except `/`).
 */
export function resolveVirtualPath(cwd: string, input: string): string {
  assertCleanPath(cwd);
  assertCleanPath(input);
  const joined = input.startsWith('/') ? input : `${cwd}/${input}`;
  return `/${virtualSegments(joined).join('/')}`;
}

/** The name components of a virtual path after `.`/`..` resolution (empty for the root). */
export function virtualSegments(path: string): string[] {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop(); // popping an empty stack is the clamp at '/'
    else out.push(part);
  }
  return out;
}

/** Last component of a normalized virtual path (`''` for the root). */
export function basenameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Parent of a normalized virtual path; the root is its own parent. */
export function dirnameOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/**
 * Throws StorageError('path-too-long') when the normalized path made of `segments` is deeper or longer (in UTF-8
 * bytes) than `limits` allow: a deep path costs every resolution a walk of all its levels.
 */
export function assertPathLimits(segments: string[], limits: Pick<StorageLimits, 'maxPathDepth' | 'maxPathLength'>): void {
  if (segments.length > limits.maxPathDepth) throw limitError('path-too-long', `path deeper than ${limits.maxPathDepth} levels`);
  let bytes = 0;
  for (const segment of segments) bytes += 1 + Buffer.byteLength(segment);
  if (bytes > limits.maxPathLength) throw limitError('path-too-long', `path longer than ${limits.maxPathLength} bytes`);
}
