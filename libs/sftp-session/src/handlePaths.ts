import { audit, requirePermission, resolvePath } from './access';
import { settableMtime, toAttrs, type RequestedAttrs } from './attrs';
import { renamePath } from './rename';
import type { Request, Session } from './state';
import { SftpError, STATUS } from './status';

/**
 * STAT and LSTAT are the same: symbolic links inside the root are followed and shown as what they point to, those
 * leading out are not there. A name with only an interrupted upload reports the partial's size (as FTP's SIZE does),
 * which is where OpenSSH's `reput` continues; READDIR does not list it and OPEN for reading does not find it.
 */
async function STAT(s: Session, req: Request, input: string): Promise<void> {
  const path = resolvePath(req, input);
  requirePermission(s, path, 'list');
  s.sftp.attrs(req.id, toAttrs(await s.ctx.storage.stat(path)));
}

/** Sets the modification time (needs `overwrite`, as FTP's MFMT); see settableMtime for the rest. */
async function SETSTAT(s: Session, req: Request, input: string, attrs: RequestedAttrs): Promise<void> {
  const path = resolvePath(req, input);
  const mtime = settableMtime(attrs);
  if (mtime) {
    requirePermission(s, path, 'overwrite');
    await s.ctx.storage.setModifiedTime(path, mtime);
    audit(s, 'setmtime', { path, mtime });
  } else {
    requirePermission(s, path, 'list');
    await s.ctx.storage.stat(path); // nothing to change, but the name must exist
  }
  s.sftp.status(req.id, STATUS.OK);
}

/** Removes a file (and an interrupted upload of that name, as FTP's DELE). A folder is FAILURE: use RMDIR. */
async function REMOVE(s: Session, req: Request, input: string): Promise<void> {
  const path = resolvePath(req, input);
  requirePermission(s, path, 'delete');
  await s.ctx.storage.delete(path);
  audit(s, 'delete', { path });
  s.sftp.status(req.id, STATUS.OK);
}

const RENAME = (s: Session, req: Request, from: string, to: string) => renamePath(s, req, from, to, false);

/**
 * Links are not supported (OP_UNSUPPORTED): the storage seam has none (nor would an object store), a hard link would
 * let a resumed upload change another name's bytes in place, and listings never show links. The paths are still
 * resolved, so a bad name fails like everywhere else.
 */
async function READLINK(_s: Session, req: Request, input: string): Promise<void> {
  resolvePath(req, input);
  throw new SftpError(STATUS.OP_UNSUPPORTED, 'Symbolic links are not supported');
}

async function SYMLINK(_s: Session, req: Request, _target: string, link: string): Promise<void> {
  resolvePath(req, link);
  throw new SftpError(STATUS.OP_UNSUPPORTED, 'Symbolic links are not supported');
}

export const pathHandlers = { STAT, LSTAT: STAT, SETSTAT, REMOVE, RENAME, READLINK, SYMLINK };
