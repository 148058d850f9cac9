import { statIfExists } from '@ftp/storage';
import { audit, requirePermission, requireTreePermission, resolvePath } from './access';
import type { Request, Session } from './state';
import { SftpError, STATUS } from './status';

/**
 * RENAME and posix-rename@openssh.com. `rename` is needed on both names (and, for a folder, on every folder inside it
 * that has its own rule). Plain RENAME refuses an existing target with FAILURE, as OpenSSH's server does;
 * posix-rename replaces it, which needs `overwrite` on the target. (The check and the rename are two steps: a target
 * created in between by another session is replaced.)
 */
export async function renamePath(s: Session, req: Request, fromInput: string, toInput: string, replace: boolean): Promise<void> {
  const from = resolvePath(req, fromInput);
  const to = resolvePath(req, toInput);
  requirePermission(s, from, 'rename');
  requirePermission(s, to, 'rename');
  const source = await s.ctx.storage.stat(from);
  if (source.type === 'dir') requireTreePermission(s, from, 'rename');
  const target = await statIfExists(s.ctx.storage, to);
  if (target && !replace) throw new SftpError(STATUS.FAILURE, 'Target already exists');
  if (target) requirePermission(s, to, 'overwrite');
  await s.ctx.storage.rename(from, to);
  audit(s, 'rename', { from, path: to });
  s.sftp.status(req.id, STATUS.OK);
}
