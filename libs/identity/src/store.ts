import type { GroupRecord, UserRecord } from './records';
import type { Identity, PublicKey } from './types';
import type { UsersFileData } from './usersFile';

/** Where users come from (FTP_USER_STORE). */
export const USER_STORE_BACKENDS = ['file', 'postgres', 'hook'] as const;
export type UserStoreBackend = (typeof USER_STORE_BACKENDS)[number];

/** How the source of users is doing, for `/readyz` detail, the `ftp_user_store_up` gauge and logs. */
export interface UserStoreHealth {
  backend: UserStoreBackend;
  /**
   * Whether the source answers: the users file was read at its last check; PostgreSQL is connected and listening for
   * changes; the hook answered its last call. Logins go on while it is false (from the users in memory), so it does
   * not make the replica unready.
   */
  up: boolean;
  /** One line for people: what is wrong, since when, what is served meanwhile. */
  detail: string;
  /** Users held in memory (file, postgres) or cached answers (hook). */
  users: number;
  /** When the users in memory were last loaded in full (epoch ms); absent for the hook. */
  loadedAt?: number;
  /** When `up` took its current value (epoch ms). */
  since: number;
}

/**
 * Why a store call failed. The admin API maps `code` to its HTTP status (USER_STORE_ERROR_STATUS) and shows `message`
 * as the reason.
 * - `read-only`: this store does not take writes (the users file is the source of truth; the hook's users live in
 *   the identity provider).
 * - `unsupported`: this store cannot answer this at all (the hook cannot list users).
 * - `unavailable`: PostgreSQL does not answer; nothing was written. Logins keep working from memory.
 * - `not-found`, `conflict` (exists already; a group still has members), `invalid` (names the field).
 */
export type UserStoreErrorCode = 'read-only' | 'unsupported' | 'unavailable' | 'not-found' | 'conflict' | 'invalid';

export const USER_STORE_ERROR_STATUS: Record<UserStoreErrorCode, number> = {
  'read-only': 409,
  unsupported: 501,
  unavailable: 503,
  'not-found': 404,
  conflict: 409,
  invalid: 400,
};

export class UserStoreError extends Error {
  override name = 'UserStoreError';
  constructor(
    readonly code: UserStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The write half of a UserStore that does not take writes: every call fails `read-only` with `reason`. */
export function readOnlyWrites(reason: string) {
  const refuse = async (): Promise<never> => {
    throw new UserStoreError('read-only', reason);
  };
  return {
    createUser: refuse,
    updateUser: refuse,
    deleteUser: refuse,
    addPublicKeys: refuse,
    removePublicKey: refuse,
    createGroup: refuse,
    updateGroup: refuse,
    deleteGroup: refuse,
    importAll: refuse,
  } satisfies Partial<Record<keyof UserStore, () => Promise<never>>>;
}

export const isUserStoreError = (err: unknown, code?: UserStoreErrorCode): err is UserStoreError =>
  err instanceof UserStoreError && (code === undefined || err.code === code);

/** Who makes a change, for the audit trail: a token name, `ftpctl`, an operator. */
export interface Actor {
  name: string;
  /** Through what: 'api', 'ftpctl', … */
  via?: string;
  /** The client address of the request, when there is one. */
  address?: string;
}

/**
 * A partial update: a field given replaces the stored one, `null` clears an optional one (a setting then comes from
 * the user's groups again, see resolve.ts), a field left out stays. `password` is the scrypt hash (hashPassword()),
 * never plaintext. Keys have calls of their own (addPublicKeys, removePublicKey) so that two admins adding keys at
 * once both win.
 */
export type UserChange = { [K in Exclude<keyof UserRecord, 'publicKeys'>]?: UserRecord[K] | null };
export type GroupChange = { [K in keyof GroupRecord]?: GroupRecord[K] | null };

/** A user as the store shows it to admins: everything but the password hash. */
export type UserView = Omit<UserRecord, 'password'> & {
  name: string;
  /** Set by PostgreSQL (ISO 8601). */
  createdAt?: string;
  updatedAt?: string;
};

export type GroupView = GroupRecord & {
  name: string;
  /** Users that name this group, sorted. */
  members: string[];
  createdAt?: string;
  updatedAt?: string;
};

/**
 * The one seam between where users live and everything that reads or changes them. Logins go through the `Identity`
 * half, which every backend answers from memory (file, postgres) or from its cache and the hook. The admin API (and
 * ftpctl) read and write through the rest; a store that cannot write throws UserStoreError('read-only').
 *
 * Every write is validated (a bad record is `invalid`, naming the field), atomic, audited (who, what, before/after
 * without password hashes), and seen by every replica within a second; the call returns once this replica sees it.
 */
export interface UserStore extends Identity {
  readonly backend: UserStoreBackend;

  /** Every user, sorted by name, as this replica holds them now. */
  listUsers(): Promise<UserView[]>;
  getUser(name: string): Promise<UserView | undefined>;
  /** Every group, sorted by name, with its members. */
  listGroups(): Promise<GroupView[]>;
  getGroup(name: string): Promise<GroupView | undefined>;
  /** Users (with their password hashes), groups and anonymous settings, as a users file holds them (ftpctl users export). */
  exportAll(): Promise<UsersFileData>;

  /** `conflict` if the name is taken; `invalid` for a bad record or a group that does not exist. */
  createUser(name: string, record: UserRecord, by: Actor): Promise<UserView>;
  updateUser(name: string, change: UserChange, by: Actor): Promise<UserView>;
  deleteUser(name: string, by: Actor): Promise<void>;
  /** Adds keys (none if any is already the user's: `conflict`). */
  addPublicKeys(name: string, keys: PublicKey[], by: Actor): Promise<UserView>;
  /** Removes the key with this `SHA256:…` fingerprint (`not-found` if it has none). */
  removePublicKey(name: string, fingerprint: string, by: Actor): Promise<UserView>;
  createGroup(name: string, record: GroupRecord, by: Actor): Promise<GroupView>;
  updateGroup(name: string, change: GroupChange, by: Actor): Promise<GroupView>;
  /** `conflict` while users still name the group. */
  deleteGroup(name: string, by: Actor): Promise<void>;
  /**
   * Writes a whole users file's users and groups (ftpctl users import), in one transaction: existing ones are
   * replaced, others kept; with `prune`, users and groups that are not in `data` are deleted. Groups that users name
   * but `data` does not define are created empty. Anonymous settings are not imported.
   */
  importAll(data: UsersFileData, by: Actor, options?: { prune?: boolean }): Promise<{ users: number; groups: number }>;

  health(): UserStoreHealth;
  close(): Promise<void>;
}

/** The admin API's tokens (`ftpctl token create`). Only PostgreSQL keeps them: check with hasAdminTokens(store). */
export interface AdminTokenInfo {
  name: string;
  scopes: AdminScope[];
  createdAt: string;
  createdBy?: string;
  expiresAt?: string;
  lastUsedAt?: string;
}

export const ADMIN_SCOPES = ['users:read', 'users:write', 'sessions:read', 'sessions:write', 'bans:write'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

export interface AdminTokens {
  /** A new random token, returned once; only its SHA-256 is stored. `conflict` if the name is taken. */
  createToken(input: { name: string; scopes: AdminScope[]; expiresAt?: string }, by: Actor): Promise<{ token: string; info: AdminTokenInfo }>;
  /**
   * The token's name and scopes if it is one of ours and not expired, else undefined. From memory (tokens are loaded
   * and kept up to date like users), so the API keeps authenticating while PostgreSQL is away.
   */
  verifyToken(token: string): AdminTokenInfo | undefined;
  listTokens(): Promise<AdminTokenInfo[]>;
  revokeToken(name: string, by: Actor): Promise<void>;
}

/** The admin audit trail. Store writes add their own entries; the API adds what it does elsewhere (kicks, bans). */
export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  via?: string;
  address?: string;
  /** 'user.create', 'user.update', 'group.delete', 'token.create', 'session.kill', … */
  action: string;
  target?: string;
  /** Before and after, without secrets. */
  before?: unknown;
  after?: unknown;
}

export interface AuditTrail {
  audit(by: Actor, action: string, target: string | undefined, change?: { before?: unknown; after?: unknown }): Promise<void>;
  /** Newest first; `beforeId` pages back. */
  listAudit(options?: { limit?: number; beforeId?: number; target?: string }): Promise<AuditEntry[]>;
}

export const hasAdminTokens = (store: UserStore): store is UserStore & AdminTokens => typeof (store as Partial<AdminTokens>).verifyToken === 'function';
export const hasAuditTrail = (store: UserStore): store is UserStore & AuditTrail => typeof (store as Partial<AuditTrail>).listAudit === 'function';
