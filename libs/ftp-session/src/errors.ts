import { StorageError } from '@ftp/storage';

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
  io: [451, 'Local error in processing'],
};

/** The one place where a failure becomes a reply code. Unknown errors are 451 (local error), never a crash. */
export function toFtpError(err: unknown): FtpError {
  if (err instanceof FtpError) return err;
  if (err instanceof StorageError) {
    const [code, text] = STORAGE_REPLIES[err.code];
    return new FtpError(code, text);
  }
  return new FtpError(451, 'Local error in processing');
}
