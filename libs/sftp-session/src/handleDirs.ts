import { resolveVirtualPath } from '@ftp/storage';
import { audit, requirePermission, requireTreePermission, resolvePath, waitForOutbound } from './access';
import { longname, toAttrs } from './attrs';
import { handleOf } from './handles';
import { LIMITS } from './limits';
import type { Request, Session } from './state';
import { SftpError, STATUS } from './status';
import { registerHandle } from './transfers';

/** The listing is read (and its size checked) here, so a missing or oversized directory fails at OPENDIR. */
async function OPENDIR(s: Session, req: Request, input: string): Promise<void> {
  const path = resolvePath(req, input);
  requirePermission(s, path, 'list');
  s.handles.reserve();
  const batches = (await s.ctx.storage.listEntries(path))[Symbol.asyncIterator]();
  await registerHandle(s, req.id, { kind: 'dir', path, batches, pending: [], busy: false, startedAt: new Date() });
}

/**
 * Up to LIMITS.readdirBatch entries per reply with `ls -l` long names, then EOF. Partial uploads are not listed
 * (nor are "." and ".."). One READDIR per handle at a time, as clients send them.
 */
async function READDIR(s: Session, req: Request, id: Buffer): Promise<void> {
  const handle = handleOf(s.handles, id, 'dir');
  req.path = handle.path;
  if (handle.busy) throw new SftpError(STATUS.FAILURE, 'A READDIR on this handle is still running');
  handle.busy = true;
  try {
    await waitForOutbound(s);
    while (handle.pending.length < LIMITS.readdirBatch) {
      const next = await handle.batches.next();
      if (next.done) break;
      handle.pending.push(...next.value);
    }
  } finally {
    handle.busy = false;
  }
  if (handle.pending.length === 0) return s.sftp.status(req.id, STATUS.EOF);
  const now = new Date();
  const owner = s.ctx.user.name;
  const entries = handle.pending.splice(0, LIMITS.readdirBatch);
  s.sftp.name(
    req.id,
    entries.map((e) => ({ filename: e.name, longname: longname(e, owner, now), attrs: toAttrs(e) })),
  );
}

/** Requested permission bits are ignored (the server decides modes). */
async function MKDIR(s: Session, req: Request, input: string): Promise<void> {
  const path = resolvePath(req, input);
  requirePermission(s, path, 'mkdir');
  await s.ctx.storage.mkdir(path);
  audit(s, 'mkdir', { path });
  s.sftp.status(req.id, STATUS.OK);
}

async function RMDIR(s: Session, req: Request, input: string): Promise<void> {
  const path = resolvePath(req, input);
  requireTreePermission(s, path, 'rmdir');
  await s.ctx.storage.rmdir(path);
  audit(s, 'rmdir', { path });
  s.sftp.status(req.id, STATUS.OK);
}

/** The canonical absolute path, without touching the storage (`.` is `/`, the home); OpenSSH's client cd's with it. */
async function REALPATH(s: Session, req: Request, input: string): Promise<void> {
  const path = resolveVirtualPath('/', input);
  req.path = path;
  s.sftp.name(req.id, [{ filename: path, longname: path, attrs: {} as never }]);
}

export const dirHandlers = { OPENDIR, READDIR, MKDIR, RMDIR, REALPATH };
