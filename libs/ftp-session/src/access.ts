import { trace } from '@opentelemetry/api';
import { can, type Permission } from '@ftp/identity';
import { resolveVirtualPath, type Storage } from '@ftp/storage';
import { FtpError } from './errors';
import type { Session } from './session';

/** The logged-in user's storage (the dispatcher guarantees a login for commands that reach here). */
export function storageOf(session: Session): Storage {
  if (!session.storage) throw new FtpError(530, 'Please log in with USER and PASS first');
  return session.storage;
}

/** A client path made absolute against the current directory; it can never leave the user's root. */
export function resolvePath(session: Session, arg: string): string {
  return resolveVirtualPath(session.cwd, arg);
}

/** Throws 550 unless the user's rule for `path` grants `perm`. Logged, since a denial is worth an audit line. */
export function requirePermission(session: Session, path: string, perm: Permission) {
  if (!session.user || !can(session.user, path, perm)) {
    session.log.info({ event: 'denied', user: session.user?.name, path, perm }, 'permission denied');
    throw new FtpError(550, 'Permission denied');
  }
}

/** The audit line for a file operation or transfer; the command's span gets the path (spans only: never a metric label). */
export function audit(session: Session, event: string, fields: Record<string, unknown>) {
  session.log.info({ audit: true, event, ...fields }, event); // the session's logger already carries the user
  if (typeof fields.path === 'string') trace.getSpan(session.currentContext)?.setAttribute('ftp.path', fields.path);
}
