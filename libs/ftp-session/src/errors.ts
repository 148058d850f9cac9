import { AccessDenied, LimitError } from '@ftp/session-core';
import { StorageError, toStorageError } from '@ftp/storage';

/** An error that already knows its FTP reply. Handlers throw it; the dispatcher sends it. */
export class FtpError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'FtpError';
  }
}

const STORAGE_REPLIES: Record<StorageError['code'], [number, string]> = {
  'not-found': [550, 'No such file or directory'],
  exists: [550, 'File or directory already exists'],
  'not-a-directory': [550, 'Not a directory'],
  'is-a-directory': [550, 'Is a directory'],
  'not-empty': [550, 'Directory not empty'],
  denied: [550, 'Permission denied'],
  'no-space': [452, 'Insufficient storage space'],
  quota: [552, 'Exceeded storage allocation'],
  'bad-name': [553, 'File name not allowed'],
  'invalid-offset': [554, 'Invalid REST offset'],
  'path-too-long': [553, 'Path too long'],
  'too-many-entries': [550, 'Too many entries to list'],
  io: [451, 'Local error in processing'],
};

/** Limits hit: their StorageError's message names the limit (client-safe), and the reply repeats it. */
const LIMITS = new Set<StorageError['code']>(['path-too-long', 'too-many-entries']);

/**
 * A storage failure, whatever its form: upload and download streams fail with raw fs errors (ENOSPC, EDQUOT, ...),
 * not StorageError, and a full disk must not pass for a broken data connection. Undefined for anything else.
 */
export function storageFailure(err: unknown): StorageError | undefined {
  if (err instanceof StorageError) return err;
  const mapped = toStorageError(err);
  return mapped.code === 'io' ? undefined : mapped;
}

/** The one place where a failure becomes a reply code. Unknown errors are 451 (local error), never a crash. */
export function toFtpError(err: unknown): FtpError {
  if (err instanceof FtpError) return err;
  if (err instanceof AccessDenied) return new FtpError(550, 'Permission denied');
  if (err instanceof LimitError) return new FtpError(552, `Exceeded storage allocation (${err.message})`);
  const storage = storageFailure(err);
  if (storage) {
    const [code, text] = STORAGE_REPLIES[storage.code];
    return new FtpError(code, LIMITS.has(storage.code) ? `${text} (${storage.message})` : text);
  }
  return new FtpError(451, 'Local error in processing');
}

/**
 * Client mistakes (a missing file, a bad name) are routine; a limit hit is worth a warning (a user outgrew it, or
 * someone probes it); a full disk or an unexpected error needs an operator.
 */
export function failureLevel(err: unknown): 'debug' | 'warn' | 'error' {
  // A denial or a limit hit was logged where it was decided.
  if (err instanceof FtpError || err instanceof AccessDenied || err instanceof LimitError) return 'debug';
  const storage = storageFailure(err);
  if (storage && LIMITS.has(storage.code)) return 'warn';
  return storage && !['no-space', 'quota', 'io'].includes(storage.code) ? 'debug' : 'error';
}
