import { can, canWithin, type Permission } from '@ftp/identity';
import type { CoreSession } from './types';

/** A permission the user lacks. Neutral: each front door maps it to its own reply (FTP 550, SFTP PERMISSION_DENIED). */
export class AccessDenied extends Error {
  override name = 'AccessDenied';
  constructor(
    readonly path: string,
    readonly permission: Permission,
  ) {
    super('Permission denied');
  }
}

/** Just what a check needs: the user and somewhere to write the denial (pino's logger, or a narrower one). */
interface Who {
  user?: CoreSession['user'];
  log: { info(fields: object, message?: string): void };
}

/** Throws AccessDenied unless the user's rule for `path` grants `perm`. Logged: a denial is worth an audit line. */
export function requirePermission(session: Who, path: string, perm: Permission): void {
  if (session.user && can(session.user, path, perm)) return;
  session.log.info({ event: 'denied', user: session.user?.name, path, perm }, 'permission denied');
  throw new AccessDenied(path, perm);
}

/**
 * Throws AccessDenied unless the user has `perm` on `path` and on every folder with a rule of its own below it:
 * renaming or removing a folder moves or drops what is inside, so a stricter rule deeper down cannot be escaped.
 */
export function requirePermissionWithin(session: Who, path: string, perm: Permission): void {
  if (session.user && canWithin(session.user, path, perm)) return;
  session.log.info({ event: 'denied', user: session.user?.name, path, perm, within: true }, 'permission denied');
  throw new AccessDenied(path, perm);
}

/** The audit line of a file operation or transfer (the session's logger already carries the user). */
export function audit(session: Pick<Who, 'log'>, event: string, fields: Record<string, unknown>): void {
  session.log.info({ audit: true, event, ...fields }, event);
}
