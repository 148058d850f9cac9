export * from './types';
export { hashPassword, verifyPassword } from './password';
export { can, permString, effectivePermissions, normalizeVirtualPath } from './permissions';
export { addressAllowed, checkAddressRule } from './addresses';
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
