import { AccessDenied, LimitError } from '@ftp/session-core';
import { StorageError, toStorageError, type StorageErrorCode } from '@ftp/storage';

/** SSH_FX_* status codes of SFTP v3 (draft-ietf-secsh-filexfer-02 §7). */
export const STATUS = {
  OK: 0,
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  OP_UNSUPPORTED: 8,
} as const;
export type StatusCode = (typeof STATUS)[keyof typeof STATUS];

/** A failure that already knows its status. Handlers throw it; the dispatcher answers it. */
export class SftpError extends Error {
  constructor(
    readonly status: StatusCode,
    message: string,
  ) {
    super(message);
    this.name = 'SftpError';
  }
}

// v3 has no codes for "exists", "not empty" or "disk full": those are FAILURE with a message, as in OpenSSH.
// Messages are generic: they reach clients and must not reveal host paths.
const STORAGE_STATUS: Record<StorageErrorCode, [StatusCode, string]> = {
  'not-found': [STATUS.NO_SUCH_FILE, 'No such file or directory'],
  'not-a-directory': [STATUS.NO_SUCH_FILE, 'Not a directory'],
  exists: [STATUS.FAILURE, 'File or directory already exists'],
  'is-a-directory': [STATUS.FAILURE, 'Is a directory'],
  'not-empty': [STATUS.FAILURE, 'Directory not empty'],
  denied: [STATUS.PERMISSION_DENIED, 'Permission denied'],
  'no-space': [STATUS.FAILURE, 'No space left on device'],
  quota: [STATUS.FAILURE, 'Disk quota exceeded'],
  'bad-name': [STATUS.FAILURE, 'File name not allowed'],
  'invalid-offset': [STATUS.FAILURE, 'Invalid offset'],
  'path-too-long': [STATUS.FAILURE, 'Path too long'],
  'too-many-entries': [STATUS.FAILURE, 'Directory has too many entries to list'],
  io: [STATUS.FAILURE, 'Failure'],
};

/** The one place where a failure becomes a status. Anything unexpected is FAILURE, never a crash. */
export function toStatus(err: unknown): { code: StatusCode; message: string; level: 'debug' | 'error' } {
  if (err instanceof SftpError) return { code: err.status, message: err.message, level: 'debug' };
  if (err instanceof AccessDenied) return { code: STATUS.PERMISSION_DENIED, message: 'Permission denied', level: 'debug' }; // logged where decided
  if (err instanceof LimitError) return { code: STATUS.FAILURE, message: `Quota exceeded: ${err.message}`, level: 'debug' }; // logged where hit
  const storage = err instanceof StorageError ? err : toStorageError(err);
  const [code, message] = STORAGE_STATUS[storage.code] ?? [STATUS.FAILURE, 'Failure'];
  // A missing file or a bad name is routine; a full disk or an unexpected error needs an operator.
  const routine = !['no-space', 'quota', 'io'].includes(storage.code);
  return { code, message, level: routine ? 'debug' : 'error' };
}
