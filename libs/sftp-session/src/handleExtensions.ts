import { resolveVirtualPath } from '@ftp/storage';
import { requirePermission, resolvePath } from './access';
import { handleOf } from './handles';
import { LIMITS } from './limits';
import { renamePath } from './rename';
import type { Request, Session } from './state';
import { SftpError, STATUS } from './status';
import type { DiskSpace } from '@ftp/session-core';
import { uint64s, wireReader } from './wire';

type Extension = (s: Session, req: Request, data: ReturnType<typeof wireReader>) => Promise<void>;

/** EXTENDED_REPLY needs the ssh2 hooks; without them (never expected) the extension is unsupported rather than unanswered. */
function extendedReply(s: Session, req: Request, body: Buffer): void {
  if (!s.hooks.active) throw new SftpError(STATUS.OP_UNSUPPORTED, 'Extension not supported');
  s.hooks.sendExtendedReply(req.id, body);
}

/** OpenSSH's limits@openssh.com: packet, read and write lengths and open handles (see LIMITS). */
const limits: Extension = async (s, req) => {
  const { maxPacketLength, maxReadLength, maxWriteLength, maxOpenHandles } = LIMITS;
  extendedReply(s, req, uint64s([maxPacketLength, maxReadLength, maxWriteLength, maxOpenHandles]));
};

const posixRename: Extension = (s, req, data) => renamePath(s, req, data.string(), data.string(), true);

/** f_bsize f_frsize f_blocks f_bfree f_bavail f_files f_ffree f_favail f_fsid f_flag f_namemax, as OpenSSH sends them. */
function statvfsReply(space: DiskSpace): Buffer {
  const { blockSize, blocks, blocksFree, blocksAvailable, files, filesFree, nameMax } = space;
  return uint64s([blockSize, blockSize, blocks, blocksFree, blocksAvailable, files, filesFree, filesFree, 0, 0, nameMax]);
}

async function diskSpaceOf(s: Session, path: string): Promise<DiskSpace> {
  if (!s.ctx.diskSpace) throw new SftpError(STATUS.OP_UNSUPPORTED, 'statvfs is not supported');
  return s.ctx.diskSpace(path);
}

const statvfs: Extension = async (s, req, data) => {
  const path = resolvePath(req, data.string());
  requirePermission(s, path, 'list');
  await s.ctx.storage.stat(path); // the name must exist, as for statvfs(2)
  extendedReply(s, req, statvfsReply(await diskSpaceOf(s, path)));
};

const fstatvfs: Extension = async (s, req, data) => {
  const handle = handleOf(s.handles, data.bytes(), 'read', 'write', 'dir');
  req.path = handle.path;
  extendedReply(s, req, statvfsReply(await diskSpaceOf(s, handle.path)));
};

/** On an upload: the queued writes, then fsync of its partial (it is published only at CLOSE). Others: nothing to do. */
const fsync: Extension = async (s, req, data) => {
  const handle = handleOf(s.handles, data.bytes(), 'read', 'write', 'dir');
  req.path = handle.path;
  if (handle.kind === 'write') {
    await handle.writer.idle();
    await handle.upload.sync();
  }
  s.sftp.status(req.id, STATUS.OK);
};

/** Refused (OP_UNSUPPORTED, and not advertised): see READLINK/SYMLINK in handlePaths.ts for why there are no links. */
const hardlink: Extension = async (_s, req, data) => {
  resolvePath(req, data.string());
  resolvePath(req, data.string());
  throw new SftpError(STATUS.OP_UNSUPPORTED, 'Hard links are not supported');
};

/** REALPATH with `~` and `~user/…` (the session's own user only) expanded to the home, which is `/`. */
const expandPath: Extension = async (s, req, data) => {
  let input = data.string();
  const tilde = /^~([^/]*)(\/.*)?$/.exec(input);
  if (tilde) {
    if (tilde[1] !== '' && tilde[1] !== s.ctx.user.name) throw new SftpError(STATUS.NO_SUCH_FILE, 'No such user');
    input = `/${tilde[2] ?? ''}`;
  }
  const path = resolveVirtualPath('/', input);
  req.path = path;
  s.sftp.name(req.id, [{ filename: path, longname: path, attrs: {} as never }]);
};

const EXTENSIONS: Record<string, Extension> = {
  'limits@openssh.com': limits,
  'posix-rename@openssh.com': posixRename,
  'statvfs@openssh.com': statvfs,
  'fstatvfs@openssh.com': fstatvfs,
  'fsync@openssh.com': fsync,
  'hardlink@openssh.com': hardlink,
  'expand-path@openssh.com': expandPath,
};

/** Extended requests by name; unknown ones (copy-data, lsetstat, home-directory, …) are OP_UNSUPPORTED. */
async function EXTENDED(s: Session, req: Request, name: string, data: Buffer | undefined): Promise<void> {
  const extension = Object.hasOwn(EXTENSIONS, name) ? EXTENSIONS[name] : undefined;
  if (!extension) throw new SftpError(STATUS.OP_UNSUPPORTED, `Extension not supported: ${name.slice(0, 64)}`);
  await extension(s, req, wireReader(data));
}

export const extensionHandlers = { EXTENDED };
