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
  loadUsersFile,
  saveUsersFile,
  parseUsersFile,
  stringifyUsersFile,
  validateUsersFile,
  USER_NAME_PATTERN,
  ALL_PERMISSIONS,
  ANONYMOUS_NAMES,
  type UsersFileData,
  type UserRecord,
} from './usersFile';
export { createFileIdentity, type FileIdentity, type FileIdentityOptions } from './fileIdentity';
export { ensureUsersFile, randomPassword } from './bootstrap';
