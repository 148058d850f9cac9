export * from './types';
export { hashPassword, verifyPassword } from './password';
export { can, canWithin, permString, effectivePermissions, normalizeVirtualPath } from './permissions';
export { addressAllowed, checkAddressRule } from './addresses';
export { fingerprintOf, formatAuthorizedKey, parseAuthorizedKey, findKey, PUBLIC_KEY_TYPES, MIN_RSA_BITS } from './publicKeys';
export {
  nextMethods,
  allowsMethod,
  parseAuthMethods,
  describeAuthMethods,
  ANY_SSH_METHODS,
  type NextMethods,
  type SshAuthMethod,
} from './authMethods';
export {
  parseUserDocument,
  parseGroupDocument,
  userDocument,
  groupDocument,
  parseProtocols,
  checkHome,
  checkPermission,
  USER_NAME_PATTERN,
  GROUP_NAME_PATTERN,
  ALL_PERMISSIONS,
  ANONYMOUS_NAMES,
  USER_KEYS,
  GROUP_KEYS,
  LIMIT_FIELDS,
  limitsDocument,
  type LimitKey,
  type UserRecord,
  type GroupRecord,
  type SharedSettings,
  type ParseContext,
} from './records';
export { effectiveSettings, protocolAllowed, type EffectiveSettings } from './resolve';
export { NO_LIMITS, limitsOf, resolveLimits } from './limits';
export { loadUsersFile, saveUsersFile, parseUsersFile, stringifyUsersFile, validateUsersFile, emptyUsersFile, type UsersFileData } from './usersFile';
export { admitUser, createVerifier, resolveHome, type Directory, type VerifierOptions } from './verify';
export * from './store';
export { createFileStore, type FileStore, type FileStoreOptions } from './fileStore';
export { createPostgresStore, type PostgresStore, type PostgresStoreOptions } from './pgStore';
export { migrateUserStore, MIGRATIONS_DIR, SCHEMA_VERSION_TABLE, type MigrationResult } from './pgMigrate';
export { createHookStore, type HookRequest, type HookStoreOptions } from './hookStore';
export { ensureUsersFile, randomPassword } from './bootstrap';
export { createFileTokenStore, newAdminToken, TOKEN_PREFIX, type FileTokenStore, type FileTokenStoreOptions } from './fileTokens';
