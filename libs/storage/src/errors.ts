import { StorageError, type StorageErrorCode } from './types';

// errno → portable code, so protocol layers never need to know about Node's fs errors.
const ERRNO_CODES: Record<string, StorageErrorCode> = {
  ENOENT: 'not-found',
  EEXIST: 'exists',
  ENOTDIR: 'not-a-directory',
  EISDIR: 'is-a-directory',
  ENOTEMPTY: 'not-empty',
  EACCES: 'denied',
  EPERM: 'denied',
  EROFS: 'denied',
  // ELOOP comes from O_NOFOLLOW meeting a symlink or from a link loop: both are refused paths.
  ELOOP: 'denied',
  ENOSPC: 'no-space',
  EDQUOT: 'quota',
  ENAMETOOLONG: 'bad-name',
};

// Messages are generic on purpose: they reach FTP clients and must not reveal host paths.
const MESSAGES: Record<StorageErrorCode, string> = {
  'not-found': 'no such file or directory',
  exists: 'file exists',
  'not-a-directory': 'not a directory',
  'is-a-directory': 'is a directory',
  'not-empty': 'directory not empty',
  denied: 'permission denied',
  'no-space': 'no space left on device',
  quota: 'disk quota exceeded',
  'bad-name': 'invalid file name',
  'invalid-offset': 'invalid offset',
  'path-too-long': 'path too long',
  'too-many-entries': 'too many entries to list',
  io: 'I/O error',
};

/** A StorageError with the standard message for `code`. */
export function storageError(code: StorageErrorCode, cause?: unknown): StorageError {
  return new StorageError(code, MESSAGES[code], cause);
}

/** A limit was hit: `detail` names it (e.g. `path deeper than 256 levels`) and reaches the client, so no host paths. */
export function limitError(code: 'path-too-long' | 'too-many-entries', detail: string): StorageError {
  return new StorageError(code, detail);
}

/** The errno string of a Node error (`'ENOENT'`, ...), if any. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Map anything thrown by fs or a stream to a StorageError, keeping the original as `cause`. */
export function toStorageError(err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const errno = errnoOf(err);
  return storageError((errno !== undefined && ERRNO_CODES[errno]) || 'io', err);
}

/** Run an fs call, turning "it is not there" into `undefined` instead of an exception. */
export async function ifExists<T>(op: Promise<T>): Promise<T | undefined> {
  try {
    return await op;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}
