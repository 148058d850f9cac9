import { ALL_PERMISSIONS, type GroupRecord, type SharedSettings, type UserRecord } from './records';
import { NO_LIMITS, resolveLimits } from './limits';
import type { EffectiveLimits, LoginProtocol, Permission, UserLimits } from './types';

/** A user's settings after its groups are merged in: what admission and the session apply. */
export interface EffectiveSettings {
  permissions: Record<string, Permission[]>;
  allowFrom: string[];
  requireTls: boolean;
  maxSessions?: number;
  /** Absent: every front door. */
  protocols?: LoginProtocol[];
  authMethods?: SharedSettings['authMethods'];
  /** Every limit: the user's, its groups', then `defaultLimits`'s; 0 = none. */
  limits: EffectiveLimits;
}

const DEFAULT_PERMISSIONS: Record<string, Permission[]> = { '/': ALL_PERMISSIONS };

/**
 * The merge rule. A setting the user sets is the user's; one it does not set comes from the first of its groups, in
 * the order the user lists them, that sets it; if none does, the default applies. Per setting:
 * - `permissions`, folder by folder: a folder the user names gets the user's list; every other folder that one of its
 *   groups names gets the list of the first group naming it. The longest-folder rule then picks among all of these
 *   folders, so a group's stricter `/archive` still holds under a user's own `/` unless the user names `/archive`
 *   too. Nobody naming any folder: everything on `/`.
 * - `limits`, limit by limit (a user's own `daily_upload_bytes` does not drop its group's `quota_bytes`), then the
 *   server's default (FTP_DEFAULT_*) for a limit nobody sets. A 0 is set: "none" (a user's 0 lifts its group's limit).
 * - `allow_from`, `require_tls`, `max_sessions`, `protocols`, `auth_methods`: whole values (a user's
 *   `allow_from: []` means "from anywhere", whatever its groups say).
 * - Not inherited: `home`, `disabled`, `expires_at`, `description`, `public_keys`, the password.
 * A group the user names that does not exist (the users file allows such labels) gives nothing.
 */
export function effectiveSettings(
  user: UserRecord,
  groupOf: (name: string) => GroupRecord | undefined,
  defaultLimits: UserLimits = NO_LIMITS,
): EffectiveSettings {
  const groups = user.groups.map(groupOf).filter((g): g is GroupRecord => g !== undefined);
  const first = <K extends keyof SharedSettings>(key: K): SharedSettings[K] | undefined =>
    user[key] !== undefined ? user[key] : groups.find((g) => g[key] !== undefined)?.[key];

  const permissions: Record<string, Permission[]> = {};
  for (const source of [user, ...groups]) {
    for (const [folder, perms] of Object.entries(source.permissions ?? {})) if (!Object.hasOwn(permissions, folder)) permissions[folder] = perms;
  }
  const limits = resolveLimits([user.limits, ...groups.map((g) => g.limits)], defaultLimits);

  const settings: EffectiveSettings = {
    permissions: Object.keys(permissions).length > 0 ? permissions : DEFAULT_PERMISSIONS,
    allowFrom: first('allowFrom') ?? [],
    requireTls: first('requireTls') ?? false,
    limits,
  };
  const maxSessions = first('maxSessions');
  if (maxSessions !== undefined) settings.maxSessions = maxSessions;
  const protocols = first('protocols');
  if (protocols !== undefined) settings.protocols = protocols;
  const authMethods = first('authMethods');
  if (authMethods !== undefined) settings.authMethods = authMethods;
  return settings;
}

/**
 * Whether a user whose merged `protocols` are `allowed` may log in through `protocol`. `ftp` admits FTP with or
 * without TLS (TLS is never less safe); `ftps` admits FTP over TLS only (explicit AUTH TLS or the implicit port);
 * `sftp` admits SFTP. Absent: every front door.
 */
export function protocolAllowed(allowed: readonly LoginProtocol[] | undefined, protocol: LoginProtocol): boolean {
  if (allowed === undefined) return true;
  if (protocol === 'ftps') return allowed.includes('ftps') || allowed.includes('ftp');
  return allowed.includes(protocol);
}
