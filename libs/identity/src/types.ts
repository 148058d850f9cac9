export const PERMISSIONS = ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'rmdir'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/**
 * An SSH public key of a user, as given by one OpenSSH `authorized_keys` line (`type base64 [comment]`). Plain data, so
 * that any user store (file, PostgreSQL) can hold it.
 */
export interface PublicKey {
  /** Key type as written in the line and inside the blob: 'ssh-ed25519', 'ecdsa-sha2-nistp256' (384, 521), 'ssh-rsa'. */
  type: string;
  /** The key in SSH wire format (RFC 4253 §6.6): the base64-decoded middle field, what a client sends when it offers the key. */
  data: Buffer;
  /** The line's trailing comment (often user@host), when it has one. */
  comment?: string;
  /** 'SHA256:' + base64 of sha256(data) without '=' padding, exactly as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** How a user proves who they are. Keyboard-interactive (WinSCP, FileZilla) carries the password, so it counts as 'password'. */
export const AUTH_METHODS = ['password', 'publickey'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];
/** Methods a user must all complete, in any order (SSH partial success between them); no duplicates. */
export type AuthMethodSet = readonly AuthMethod[];

/** The front door a login comes through: FTP in clear, FTP over TLS, or SFTP over SSH. */
export const LOGIN_PROTOCOLS = ['ftp', 'ftps', 'sftp'] as const;
export type LoginProtocol = (typeof LOGIN_PROTOCOLS)[number];

/**
 * What a partner buys, per user (inherited from its groups, defaults from the server's configuration): limits that hold
 * across replicas and protocols. Every field is bytes, bytes/s or a count; 0 = no limit (on a user, 0 also overrides a
 * group's limit). Snake-case names in the users file, PostgreSQL and the API: quota_bytes, quota_files,
 * daily_upload_bytes, daily_download_bytes, bandwidth_up, bandwidth_down, session_bandwidth_up, session_bandwidth_down,
 * sessions_per_minute.
 */
export interface UserLimits {
  /** Bytes the user's home may hold (published files). */
  quotaBytes?: number;
  /** Files the user's home may hold. */
  quotaFiles?: number;
  /** Bytes uploaded per UTC day. */
  dailyUploadBytes?: number;
  /** Bytes downloaded per UTC day. */
  dailyDownloadBytes?: number;
  /** Bytes/s shared by all of the user's uploads on all replicas. */
  bandwidthUp?: number;
  bandwidthDown?: number;
  /** Bytes/s of each one session's uploads (downloads). */
  sessionBandwidthUp?: number;
  sessionBandwidthDown?: number;
  /** New sessions (logins) of the user per minute, cluster-wide. */
  sessionsPerMinute?: number;
}

export const LIMIT_NAMES = [
  'quotaBytes',
  'quotaFiles',
  'dailyUploadBytes',
  'dailyDownloadBytes',
  'bandwidthUp',
  'bandwidthDown',
  'sessionBandwidthUp',
  'sessionBandwidthDown',
  'sessionsPerMinute',
] as const satisfies readonly (keyof UserLimits)[];

/** Every limit resolved (user, then groups, then server default); 0 = none. */
export type EffectiveLimits = Required<UserLimits>;

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
  /** SSH public keys that may log in as this user (optional so that code building users by hand need not list them). */
  publicKeys?: PublicKey[];
  /**
   * Methods this user must all complete. Absent: any one of password and public key. FTP can only ever complete
   * 'password'; see `nextMethods`.
   */
  authMethods?: AuthMethodSet;
  /** Front doors this user may use (after merging its groups); absent means every one. */
  protocols?: readonly LoginProtocol[];
  /**
   * Quotas and bandwidth limits, every one resolved (the user's own, else its first group's, else the server's
   * FTP_DEFAULT_*; 0 = none). Every user store fills it; absent (users built by hand in tests) = all 0: read it with
   * `limitsOf(user)`.
   */
  limits?: EffectiveLimits;
  /** When the account stops working (ISO 8601), if ever. */
  expiresAt?: string;
}

export type AuthResult =
  | { ok: true; user: User }
  | {
      ok: false;
      /**
       * 'bad-key': the offered key is not one of the user's. 'method-not-allowed': the credential is right but the
       * user's auth methods do not include it (a password for a key-only user, a key for a password-only user).
       * 'expired': past the user's `expires_at`. 'protocol-not-allowed': the user's `protocols` do not include the
       * front door it came through. Only whoever holds a right credential learns 'disabled', 'expired',
       * 'address-denied', 'protocol-not-allowed' or 'method-not-allowed'. 'unavailable': the source of users (the
       * identity hook) did not answer; the login is refused, but it is not the client's failure.
       */
      reason:
        | 'unknown-user'
        | 'bad-password'
        | 'bad-key'
        | 'address-denied'
        | 'disabled'
        | 'expired'
        | 'protocol-not-allowed'
        | 'method-not-allowed'
        | 'unavailable';
    };

export interface Identity {
  /**
   * Verify a password (FTP `PASS`, SSH password and keyboard-interactive). Takes the same time for unknown users as for
   * wrong passwords. `ok` means the password is right and the user may log in from here; whether it is enough on its
   * own is `nextMethods(user, new Set(['password']))` (a user may require a public key too). `protocol` is the front
   * door the login comes through: a user whose `protocols` leave it out is refused (after the password check).
   */
  authenticate(name: string, password: string, clientAddress: string, protocol: LoginProtocol): Promise<AuthResult>;
  /**
   * Whether `key` (its SSH wire blob; `type` is informational, the blob carries its own type) is one of the user's
   * public keys, the user is enabled and not expired, `allow_from` admits the address, `protocols` the front door, and
   * the user's auth methods include public keys.
   * Does NOT verify a signature: the SSH transport must do that before it counts the method as done. Unknown users
   * take the same path as known ones.
   */
  authenticateKey(name: string, key: { type: string; data: Buffer }, clientAddress: string, protocol: LoginProtocol): Promise<AuthResult>;
  /** Whether `name` exists and may log in without a password (anonymous). */
  isAnonymous(name: string): boolean;
  /** Whether `name` must use TLS, asked at USER so that the password never crosses a clear connection. */
  requiresTls(name: string): boolean;
  /**
   * The user's limits as the store holds them now (after a users-file edit, a PostgreSQL change, an API call), read at
   * each transfer of a running session so that a change holds for its next transfer. Undefined when the store cannot
   * tell between logins (the identity hook): the limits of the login stay in force.
   */
  limitsNow?(name: string): EffectiveLimits | undefined;
}
