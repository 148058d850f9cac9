import { limitsOf } from '@ftp/identity';
import { bytesAvailable, limitHit } from '@ftp/session-core';
import { FtpError } from './errors';
import { requirePermission, resolvePath, storageOf } from './access';
import type { Handler, Session } from './state';

/** Bytes the user may still store at `path`: its quota's room where it has one, else the disk's; undefined if unknown. */
async function availableBytes(session: Session, path: string): Promise<number | undefined> {
  const space = session.deps.diskSpace?.(session.user!);
  return space ? bytesAvailable(await space(path)) : undefined;
}

/** AVBL [path] (draft-peterson-streamlined-ftp-command-extensions): 213 and the bytes that may still be stored there. */
const AVBL: Handler = async (session, arg) => {
  const path = resolvePath(session, arg || '.');
  requirePermission(session, path, 'list');
  if ((await storageOf(session).stat(path)).type !== 'dir') throw new FtpError(550, 'Not a directory');
  const available = await availableBytes(session, path);
  if (available === undefined) throw new FtpError(502, 'AVBL not available here');
  session.reply(213, String(available));
};

/**
 * ALLO n [R m]: nothing to allocate, but an upload that cannot fit the user's room (its quota, else the disk) is
 * refused now, before any byte moves (552, as for an upload stopped by its quota).
 */
const ALLO: Handler = async (session, arg) => {
  const match = /^(\d{1,16})(?: R \d{1,16})?$/i.exec(arg.trim());
  if (!match) throw new FtpError(501, 'ALLO takes a size in bytes');
  const wanted = Number(match[1]);
  const available = await availableBytes(session, session.cwd);
  if (available !== undefined && wanted > available) {
    const message = `${wanted} bytes requested, ${available} available`;
    if (limitsOf(session.user!).quotaBytes > 0) throw limitHit({ metrics: session.deps.metrics, log: session.log }, 'quota_bytes', message);
    throw new FtpError(552, `Exceeded storage allocation (${message})`);
  }
  session.allocated = wanted;
  session.reply(202, 'ALLO not needed');
};

export const spaceHandlers: Record<string, Handler> = { AVBL, ALLO };
