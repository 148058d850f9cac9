import type { Permission } from '@ftp/identity';
import { requirePermission as coreRequirePermission, requirePermissionWithin } from '@ftp/session-core';
import { resolveVirtualPath } from '@ftp/storage';
import { FLOW } from './limits';
import type { Request, Session } from './state';

/**
 * A client path as a virtual path. SFTP paths are absolute or relative to the home, and the home is the user's root
 * `/`; `..` stops at `/`, and NUL/CR/LF are refused (StorageError 'bad-name'). The storage keeps it inside the root.
 */
export function resolvePath(req: Request, input: string): string {
  const path = resolveVirtualPath('/', input);
  req.path ??= path;
  return path;
}

/** Permission checks are the shared core's (AccessDenied, mapped to PERMISSION_DENIED in status.ts); on the session's user. */
export function requirePermission(s: Session, path: string, perm: Permission): void {
  coreRequirePermission(s.ctx, path, perm);
}

/** `perm` on a folder and on every folder inside it with a rule of its own: renaming or removing it cannot escape them. */
export function requireTreePermission(s: Session, folder: string, perm: Permission): void {
  requirePermissionWithin(s.ctx, folder, perm);
}

/** The audit line of a file operation, the same shape as FTP's (the session logger already carries the user). */
export function audit(s: Session, event: string, fields: Record<string, unknown>): void {
  s.ctx.log.info({ audit: true, event, ...fields }, event);
}

/** Waits while replies pile up because the client does not open its window (it does not read them). */
export async function waitForOutbound(s: Session): Promise<void> {
  while (!s.closed && s.hooks.outboundBacklog() > FLOW.maxOutboundBacklog) {
    await new Promise((resolve) => setTimeout(resolve, FLOW.pollMs));
  }
}
