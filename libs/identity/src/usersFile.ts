import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Document, isPair, isScalar, isSeq, LineCounter, parse, parseDocument, visit } from 'yaml';
import { checkAddressRule } from './addresses';
import { parseAuthMethods } from './authMethods';
import { parseScryptHash } from './password';
import { normalizeVirtualPath } from './permissions';
import { formatAuthorizedKey, parseAuthorizedKey } from './publicKeys';
import { PERMISSIONS, type AuthMethodSet, type Permission, type PublicKey } from './types';

/** One user as stored in the users file (camelCase here, snake_case in YAML). */
export interface UserRecord {
  /** scrypt hash, never plaintext. */
  password: string;
  /** Folder under the data root, relative. */
  home: string;
  permissions: Record<string, Permission[]>;
  groups: string[];
  allowFrom: string[];
  requireTls: boolean;
  maxSessions?: number;
  disabled: boolean;
  /** SSH public keys (`public_keys:` authorized_keys lines), in file order. */
  publicKeys: PublicKey[];
  /** `auth_methods:` every listed method is required; absent = any one of password and public key. */
  authMethods?: AuthMethodSet;
}

/** 1-based line in the users file of the node at a YAML path, when known (for error messages). */
export type LineOf = (path: (string | number)[]) => number | undefined;

export interface UsersFileData {
  users: Record<string, UserRecord>;
  anonymous: { enabled: boolean; home: string };
}

export const USER_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const ANONYMOUS_NAMES = ['anonymous', 'ftp'] as const;
export const ALL_PERMISSIONS: Permission[] = [...PERMISSIONS];

const USER_KEYS = [
  'password',
  'home',
  'permissions',
  'groups',
  'allow_from',
  'require_tls',
  'max_sessions',
  'disabled',
  'public_keys',
  'auth_methods',
];

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Error text for a home folder that could escape the data root, or undefined when it is fine. */
export function checkHome(home: string): string | undefined {
  if (home.trim() === '') return 'must not be empty';
  if (path.posix.isAbsolute(home) || path.win32.isAbsolute(home)) return `"${home}" must be relative to the data root`;
  if (home.split(/[\\/]/).includes('..')) return `"${home}" must not contain ".." segments`;
  return undefined;
}

/** Error text for an unknown permission name, or undefined. */
export function checkPermission(name: unknown): string | undefined {
  return (PERMISSIONS as readonly unknown[]).includes(name) ? undefined : `unknown permission "${String(name)}"`;
}

// Collects every problem with its "users.alice.key" location so an admin can fix the file in one go.
function validateUser(name: string, raw: unknown, at: string, errors: string[], lineOf?: LineOf): UserRecord | undefined {
  if (!isObject(raw)) {
    errors.push(`${at}: must be a mapping`);
    return undefined;
  }
  for (const key of Object.keys(raw)) if (!USER_KEYS.includes(key)) errors.push(`${at}: unknown key "${key}"`);

  const password = raw.password;
  if (typeof password !== 'string' || password === '') errors.push(`${at}.password: is required`);
  else if (!password.startsWith('scrypt$'))
    errors.push(`${at}.password: must be a scrypt hash ("scrypt$..."), plaintext passwords are refused; create one with "npm run ftpctl -- hash-password"`);
  else if (!parseScryptHash(password)) errors.push(`${at}.password: malformed scrypt hash`);

  const home = raw.home ?? name;
  if (typeof home !== 'string') errors.push(`${at}.home: must be a string`);
  else {
    const problem = checkHome(home);
    if (problem) errors.push(`${at}.home: ${problem}`);
  }

  const permissions: Record<string, Permission[]> = {};
  if (raw.permissions === undefined) permissions['/'] = [...ALL_PERMISSIONS];
  else if (!isObject(raw.permissions)) errors.push(`${at}.permissions: must be a mapping of folder to list`);
  else {
    for (const [folder, list] of Object.entries(raw.permissions)) {
      const where = `${at}.permissions.${folder}`;
      if (!folder.startsWith('/') || folder.split('/').includes('..')) {
        errors.push(`${where}: folder must start with "/" and not contain ".."`);
        continue;
      }
      const key = normalizeVirtualPath(folder);
      if (key in permissions) errors.push(`${where}: same folder as another entry`);
      if (!Array.isArray(list)) {
        errors.push(`${where}: must be a list of permissions`);
        continue;
      }
      for (const perm of list) {
        const problem = checkPermission(perm);
        if (problem) errors.push(`${where}: ${problem}`);
      }
      permissions[key] = [...new Set(list as Permission[])];
    }
    if (!('/' in permissions)) errors.push(`${at}.permissions: "/" is required (it applies where no longer folder does)`);
  }

  const groups = stringList(raw.groups, `${at}.groups`, errors);
  const allowFrom = stringList(raw.allow_from, `${at}.allow_from`, errors);
  for (const entry of allowFrom) {
    const problem = checkAddressRule(entry);
    if (problem) errors.push(`${at}.allow_from: ${problem}`);
  }
  const requireTls = bool(raw.require_tls, false, `${at}.require_tls`, errors);
  const disabled = bool(raw.disabled, false, `${at}.disabled`, errors);
  const maxSessions = raw.max_sessions;
  if (maxSessions !== undefined && !(Number.isInteger(maxSessions) && (maxSessions as number) > 0))
    errors.push(`${at}.max_sessions: must be a positive integer`);
  const publicKeys = validatePublicKeys(name, raw.public_keys, `${at}.public_keys`, errors, lineOf);
  let authMethods: AuthMethodSet | undefined;
  if (raw.auth_methods !== undefined && raw.auth_methods !== null) {
    const parsed = Array.isArray(raw.auth_methods) ? parseAuthMethods(raw.auth_methods) : `must be a list, e.g. [publickey, password]`;
    if (typeof parsed === 'string') errors.push(`${at}.auth_methods: ${parsed}`);
    else authMethods = parsed;
  }

  const record: UserRecord = {
    password: String(password),
    home: String(home),
    permissions,
    groups,
    allowFrom,
    requireTls,
    disabled,
    publicKeys,
  };
  if (typeof maxSessions === 'number') record.maxSessions = maxSessions;
  if (authMethods) record.authMethods = authMethods;
  return record;
}

// Each entry is one authorized_keys line; a bad one is reported with the user, its place in the list and its file line.
function validatePublicKeys(name: string, value: unknown, at: string, errors: string[], lineOf?: LineOf): PublicKey[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    errors.push(`${at}: must be a list of authorized_keys lines ("ssh-ed25519 AAAA… comment")`);
    return [];
  }
  const keys: PublicKey[] = [];
  value.forEach((entry, i) => {
    const line = lineOf?.(['users', name, 'public_keys', i]);
    const where = `${at}[${i}]${line ? ` (line ${line})` : ''}`;
    if (typeof entry !== 'string') {
      errors.push(`${where}: must be a string (one authorized_keys line)`);
      return;
    }
    let key: PublicKey;
    try {
      key = parseAuthorizedKey(entry);
    } catch (err) {
      errors.push(`${where}: ${(err as Error).message}`);
      return;
    }
    if (keys.some((k) => k.data.equals(key.data))) errors.push(`${where}: the same key (${key.fingerprint}) is listed twice`);
    else keys.push(key);
  });
  return keys;
}

function stringList(value: unknown, at: string, errors: string[]): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    errors.push(`${at}: must be a list of strings`);
    return [];
  }
  return value;
}

function bool(value: unknown, fallback: boolean, at: string, errors: string[]): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') errors.push(`${at}: must be true or false`);
  return value === true;
}

/** Validates parsed YAML into UsersFileData; throws one Error listing every problem. */
export function validateUsersFile(raw: unknown, source = 'users file', lineOf?: LineOf): UsersFileData {
  const errors: string[] = [];
  const data: UsersFileData = { users: {}, anonymous: { enabled: false, home: 'pub' } };
  if (raw === undefined || raw === null) raw = {};
  if (!isObject(raw)) throw new Error(`${source}: must be a mapping with "users" and "anonymous"`);
  for (const key of Object.keys(raw)) if (key !== 'users' && key !== 'anonymous') errors.push(`unknown top-level key "${key}"`);

  if (isObject(raw.anonymous)) {
    for (const key of Object.keys(raw.anonymous))
      if (key !== 'enabled' && key !== 'home') errors.push(`anonymous: unknown key "${key}"`);
    data.anonymous.enabled = bool(raw.anonymous.enabled, false, 'anonymous.enabled', errors);
    const home = raw.anonymous.home ?? 'pub';
    const problem = typeof home === 'string' ? checkHome(home) : 'must be a string';
    if (problem) errors.push(`anonymous.home: ${problem}`);
    else data.anonymous.home = home as string;
  } else if (raw.anonymous !== undefined && raw.anonymous !== null) errors.push('anonymous: must be a mapping');

  if (isObject(raw.users)) {
    for (const [name, user] of Object.entries(raw.users)) {
      const at = `users.${name}`;
      if (!USER_NAME_PATTERN.test(name)) errors.push(`${at}: name must match ${USER_NAME_PATTERN.source}`);
      // With anonymous on, these names log in anonymously; a real account under them would be unreachable.
      if (data.anonymous.enabled && (ANONYMOUS_NAMES as readonly string[]).includes(name.toLowerCase()))
        errors.push(`${at}: name is reserved for anonymous login while anonymous.enabled is true`);
      const record = validateUser(name, user, at, errors, lineOf);
      if (record) data.users[name] = record;
    }
  } else if (raw.users !== undefined && raw.users !== null) errors.push('users: must be a mapping of user name to settings');

  if (errors.length > 0) throw new Error(`${source}: invalid users file:\n  ${errors.join('\n  ')}`);
  return data;
}

/** Parses and validates users-file YAML text. */
export function parseUsersFile(text: string, source = 'users file'): UsersFileData {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  return validateUsersFile(raw, source, lineFinder(text));
}

// Only asked when something is wrong, so a good file is parsed once.
function lineFinder(text: string): LineOf {
  let doc: { getIn(path: unknown[], keepScalar: true): unknown } | undefined;
  const lineCounter = new LineCounter();
  return (at) => {
    doc ??= parseDocument(text, { lineCounter });
    const node = doc.getIn(at, true) as { range?: [number, number, number] } | undefined;
    return node?.range ? lineCounter.linePos(node.range[0]).line : undefined;
  };
}

/** Reads and validates the users file. */
export async function loadUsersFile(file: string): Promise<UsersFileData> {
  return parseUsersFile(await readFile(file, 'utf8'), file);
}

/** Renders UsersFileData as YAML, leaving out settings that equal their defaults. */
export function stringifyUsersFile(data: UsersFileData): string {
  const users: Obj = {};
  for (const [name, u] of Object.entries(data.users)) {
    const out: Obj = { password: u.password, home: u.home, permissions: u.permissions };
    if (u.groups.length > 0) out.groups = u.groups;
    if (u.allowFrom.length > 0) out.allow_from = u.allowFrom;
    if (u.requireTls) out.require_tls = true;
    if (u.maxSessions !== undefined) out.max_sessions = u.maxSessions;
    if (u.disabled) out.disabled = true;
    if (u.authMethods) out.auth_methods = [...u.authMethods];
    if (u.publicKeys.length > 0) out.public_keys = u.publicKeys.map(formatAuthorizedKey);
    users[name] = out;
  }
  const header = '# FTP users. Passwords are scrypt hashes: npm run ftpctl -- hash-password\n';
  const doc = new Document({ users, anonymous: data.anonymous });
  // Lists read best inline: "/: [list, download]"; keys are long, one per line.
  visit(doc, {
    Seq(_key, node, path) {
      const parent = path[path.length - 1];
      const isKeys = isPair(parent) && isScalar(parent.key) && parent.key.value === 'public_keys';
      if (isSeq(node)) node.flow = !isKeys;
    },
  });
  return header + doc.toString({ flowCollectionPadding: false, lineWidth: 0 });
}

/**
 * Writes the users file atomically (temp file in the same folder, fsync, rename) with mode 0600,
 * so a server reloading it never sees half a file. With `exclusive`, fails with EEXIST instead of
 * replacing an existing file (several replicas may bootstrap the same shared file at once).
 */
export async function saveUsersFile(file: string, data: UsersFileData, options: { exclusive?: boolean } = {}): Promise<void> {
  const text = stringifyUsersFile(data);
  parseUsersFile(text, file); // never write a file the server would refuse
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (options.exclusive) await link(tmp, file);
    else await rename(tmp, file);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
