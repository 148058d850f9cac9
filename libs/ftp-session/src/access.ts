import { trace } from '@opentelemetry/api';
import { audit as coreAudit } from '@ftp/session-core';
import { resolveVirtualPath, type Storage } from '@ftp/storage';
import { FtpError } from './errors';
import type { Session } from './state';

/** The logged-in user's storage (the dispatcher guarantees a login for commands that reach here). */
export function storageOf(session: Session): Storage {
  if (!session.storage) throw new FtpError(530, 'Please log in with USER and PASS first');
  return session.storage;
}

/** A client path made absolute against the current directory; it can never leave the user's root. */
export function resolvePath(session: Session, arg: string): string {
  return resolveVirtualPath(session.cwd, arg);
}

export { requirePermission, requirePermissionWithin } from '@ftp/session-core';

/** The audit line for a file operation or transfer; the command's span gets the path (spans only: never a metric label). */
export function audit(session: Session, event: string, fields: Record<string, unknown>) {
  coreAudit(session, event, fields);
  if (typeof fields.path === 'string') trace.getSpan(session.currentContext)?.setAttribute('ftp.path', fields.path);
}
