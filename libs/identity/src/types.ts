export const PERMISSIONS = ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'rmdir'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** A user as the session sees it: no password material. */
export interface User {
  name: string;
  /** Absolute host path of the user's root (already resolved inside the data root). */
  root: string;
  /**
   * Permissions by virtual folder. The rule of the longest folder that contains a path applies
   * ("/" must be present). Example: { "/": [list, download], "/inbox": [list, upload] }.
   */
  permissions: Record<string, Permission[]>;
  groups: string[];
  /** Client addresses or CIDRs allowed to log in; empty means any. */
  allowFrom: string[];
  /** Requires TLS on the control connection (enforced once FTPS exists). */
  requireTls: boolean;
  /** Per-user session cap, overriding the server's FTP_MAX_SESSIONS_PER_USER when set. */
  maxSessions?: number;
  anonymous: boolean;
}

export type AuthResult =
  | { ok: true; user: User }
  | { ok: false; reason: 'unknown-user' | 'bad-password' | 'address-denied' | 'disabled' };

export interface Identity {
  /** Verify credentials. Takes the same time for unknown users as for wrong passwords. */
  authenticate(name: string, password: string, clientAddress: string): Promise<AuthResult>;
  /** Whether `name` exists and may log in without a password (anonymous). */
  isAnonymous(name: string): boolean;
  /** Whether `name` must use TLS, asked at USER so that the password never crosses a clear connection. */
  requiresTls(name: string): boolean;
}
