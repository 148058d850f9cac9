import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { formatMdtm, parseMdtm } from '@ftp/protocol';
import { statIfExists } from '@ftp/storage';
import { FtpError } from './errors';
import { audit, requirePermission, requirePermissionWithin, resolvePath, storageOf } from './access';
import type { Handler, Session } from './state';

const DELE: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  requirePermission(session, path, 'delete');
  await storageOf(session).delete(path);
  audit(session, 'delete', { path });
  session.reply(250, 'File deleted');
};

const RNFR: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  requirePermissionWithin(session, path, 'rename');
  await storageOf(session).stat(path);
  session.renameFrom = path;
  session.reply(350, 'Ready for RNTO');
};

const RNTO: Handler = async (session, arg) => {
  const from = session.renameFrom;
  session.renameFrom = undefined;
  if (!from) throw new FtpError(503, 'RNFR required first');
  const to = resolvePath(session, arg);
  requirePermissionWithin(session, to, 'rename');
  // Replacing what is there destroys it: that takes the overwrite permission, as a STOR over it would.
  // Only an interrupted upload under that name (a partial) is nothing published to replace.
  const target = await statIfExists(storageOf(session), to);
  if (target && !target.partial) requirePermission(session, to, 'overwrite');
  await storageOf(session).rename(from, to);
  audit(session, 'rename', { from, path: to });
  session.reply(250, 'Rename successful');
};

async function fileStat(session: Session, arg: string) {
  const path = resolvePath(session, arg);
  requirePermission(session, path, 'list');
  const stat = await storageOf(session).stat(path);
  if (stat.type !== 'file') throw new FtpError(550, 'Not a plain file');
  return { path, stat };
}

const SIZE: Handler = async (session, arg) => {
  const { stat } = await fileStat(session, arg);
  session.reply(213, String(stat.size));
};

const MDTM: Handler = async (session, arg) => {
  const { stat } = await fileStat(session, arg);
  session.reply(213, formatMdtm(stat.mtime));
};

/** MFMT YYYYMMDDHHMMSS path (draft-somers-ftp-mfxx): sets the modification time. */
const MFMT: Handler = async (session, arg) => {
  const space = arg.indexOf(' ');
  const time = space > 0 ? parseMdtm(arg.slice(0, space)) : null;
  if (!time) throw new FtpError(501, 'Usage: MFMT YYYYMMDDHHMMSS path');
  const path = resolvePath(session, arg.slice(space + 1));
  requirePermission(session, path, 'overwrite');
  await storageOf(session).setModifiedTime(path, time);
  session.reply(213, `Modify=${formatMdtm(time)}; ${arg.slice(space + 1)}`);
};

const HASH_NODE_NAMES = { 'SHA-256': 'sha256', 'SHA-1': 'sha1', MD5: 'md5' } as const;

/** HASH path (draft-bryan-ftpext-hash): digest of the whole file with the algorithm chosen by OPTS HASH. */
const HASH: Handler = async (session, arg) => {
  const { path, stat } = await fileStat(session, arg);
  requirePermission(session, path, 'download');
  const hash = createHash(HASH_NODE_NAMES[session.hashAlgorithm]);
  await pipeline((await storageOf(session).openRead(path, 0)).stream, hash);
  session.reply(213, `${session.hashAlgorithm} 0-${stat.size} ${hash.digest('hex')} ${arg}`);
};

export const fileHandlers: Record<string, Handler> = { DELE, RNFR, RNTO, SIZE, MDTM, MFMT, HASH };
export { HASH_NODE_NAMES };
