import path from 'node:path';
import { checkAddressRule } from './addresses';
import { parseAuthMethods } from './authMethods';
import { parseScryptHash } from './password';
import { normalizeVirtualPath } from './permissions';
import { formatAuthorizedKey, parseAuthorizedKey } from './publicKeys';
import { LOGIN_PROTOCOLS, PERMISSIONS, type AuthMethodSet, type LoginProtocol, type Permission, type PublicKey, type UserLimits } from './types';

/**
 * Settings that a group gives its members and that a user may set for itself. Absent means "not set here": a user
 * inherits it from its groups, a group leaves it to the default (see `resolve.ts` for the merge rule).
 */
export interface SharedSettings {
  /** Virtual folder → permissions; when present it has a "/" entry. */
  permissions?: Record<string, Permission[]>;
  /** Client addresses or CIDRs allowed to log in; an empty list means any. */
  allowFrom?: string[];
  requireTls?: boolean;
  maxSessions?: number;
  /** Front doors allowed: `ftp` (FTP with or without TLS), `ftps` (FTP over TLS only), `sftp`. */
  protocols?: LoginProtocol[];
  /** Every listed method is required; absent = any one of password and public key. */
  authMethods?: AuthMethodSet;
  limits?: UserLimits;
}

/** One group as a user store keeps it (camelCase here, snake_case in YAML, JSON and SQL). */
export interface GroupRecord extends SharedSettings {
  description?: string;
}

/** One user as a user store keeps it (camelCase here, snake_case in YAML, JSON and SQL). */
export interface UserRecord extends SharedSettings {
  /** scrypt hash, never plaintext. */
  password: string;
  /** Folder under the data root, relative. */
  home: string;
  /** Group names, in order: the first group that sets a setting gives it (see resolve.ts). */
  groups: string[];
  disabled: boolean;
  /** SSH public keys (`public_keys:` authorized_keys lines), in order. */
  publicKeys: PublicKey[];
  description?: string;
  /** When the account stops working: ISO 8601 (UTC, as `Date#toISOString` writes it). */
  expiresAt?: string;
}

/** 1-based line in the source of the node at a YAML path, when known (for error messages). */
export type LineOf = (path: (string | number)[]) => number | undefined;

export const USER_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Names that log in anonymously when the users file turns anonymous on. */
export const ANONYMOUS_NAMES = ['anonymous', 'ftp'] as const;
/** Group names follow the user name rule. */
export const GROUP_NAME_PATTERN = USER_NAME_PATTERN;
export const ALL_PERMISSIONS: Permission[] = [...PERMISSIONS];
export const MAX_DESCRIPTION_LENGTH = 1000;

const SETTING_KEYS = ['permissions', 'allow_from', 'require_tls', 'max_sessions', 'protocols', 'auth_methods', 'limits'];
export const GROUP_KEYS = ['description', ...SETTING_KEYS];
export const USER_KEYS = ['password', 'home', 'groups', 'disabled', 'public_keys', 'description', 'expires_at', ...SETTING_KEYS];
/** `limits:` keys (snake_case, as the users file, PostgreSQL and the API name them) and their UserLimits field. */
export const LIMIT_FIELDS = {
  quota_bytes: 'quotaBytes',
  quota_files: 'quotaFiles',
  daily_upload_bytes: 'dailyUploadBytes',
  daily_download_bytes: 'dailyDownloadBytes',
  bandwidth_up: 'bandwidthUp',
  bandwidth_down: 'bandwidthDown',
  session_bandwidth_up: 'sessionBandwidthUp',
  session_bandwidth_down: 'sessionBandwidthDown',
  sessions_per_minute: 'sessionsPerMinute',
} as const satisfies Record<string, keyof UserLimits>;
export type LimitKey = keyof typeof LIMIT_FIELDS;
/** The names before issue 16, for a message that says what to write instead (PostgreSQL's migration 002 renames them). */
const OLD_LIMIT_NAMES: Record<string, string> = {
  storage_bytes: 'quota_bytes',
  storage_files: 'quota_files',
  daily_bytes: 'daily_upload_bytes and daily_download_bytes',
  upload_bytes_per_second: 'bandwidth_up',
  download_bytes_per_second: 'bandwidth_down',
};

type Obj = Record<string, unknown>;
export const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

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

/** Where a problem is and how it is reported: `at` prefixes every message; `keyPath`+`lineOf` add a line number. */
export interface ParseContext {
  at: string;
  errors: string[];
  lineOf?: LineOf;
  /** The YAML path of the document, for lineOf (e.g. ['users', 'alice']). */
  keyPath?: (string | number)[];
}

/**
 * Parses a user document (the snake_case mapping of the users file, of an API request, of an identity hook's answer)
 * into a UserRecord, pushing every problem onto `ctx.errors`. `credentials: false` (a hook's answer) refuses
 * `password` and `public_keys` instead of requiring a password.
 */
export function parseUserDocument(name: string, raw: unknown, ctx: ParseContext, options: { credentials?: boolean } = {}): UserRecord | undefined {
  const { at, errors } = ctx;
  const credentials = options.credentials ?? true;
  if (!isObject(raw)) {
    errors.push(`${at}: must be a mapping`);
    return undefined;
  }
  for (const key of Object.keys(raw)) {
    if (!USER_KEYS.includes(key)) errors.push(`${at}: unknown key "${key}"`);
    else if (!credentials && (key === 'password' || key === 'public_keys')) errors.push(`${at}: "${key}" is not accepted here`);
  }

  let password = '';
  if (credentials) {
    const value = raw.password;
    if (typeof value !== 'string' || value === '') errors.push(`${at}.password: is required`);
    else if (!value.startsWith('scrypt$'))
      errors.push(`${at}.password: must be a scrypt hash ("scrypt$..."), plaintext passwords are refused; create one with "npm run ftpctl -- hash-password"`);
    else if (!parseScryptHash(value)) errors.push(`${at}.password: malformed scrypt hash`);
    else password = value;
  }

  const home = raw.home ?? name;
  if (typeof home !== 'string') errors.push(`${at}.home: must be a string`);
  else {
    const problem = checkHome(home);
    if (problem) errors.push(`${at}.home: ${problem}`);
  }
  const groups = nameList(raw.groups, `${at}.groups`, errors);
  const disabled = bool(raw.disabled, `${at}.disabled`, errors) ?? false;
  const publicKeys = credentials ? parsePublicKeys(raw.public_keys, ctx) : [];
  const settings = parseSettings(raw, ctx);
  const record: UserRecord = { password, home: String(home), groups, disabled, publicKeys, ...settings };
  const description = parseDescription(raw.description, `${at}.description`, errors);
  if (description !== undefined) record.description = description;
  const expiresAt = parseTimestamp(raw.expires_at, `${at}.expires_at`, errors);
  if (expiresAt !== undefined) record.expiresAt = expiresAt;
  return record;
}

/** Parses a group document (`groups.<name>` of the users file, an API request) into a GroupRecord. */
export function parseGroupDocument(raw: unknown, ctx: ParseContext): GroupRecord | undefined {
  const { at, errors } = ctx;
  if (raw === null || raw === undefined) return {};
  if (!isObject(raw)) {
    errors.push(`${at}: must be a mapping`);
    return undefined;
  }
  for (const key of Object.keys(raw)) if (!GROUP_KEYS.includes(key)) errors.push(`${at}: unknown key "${key}"`);
  const record: GroupRecord = parseSettings(raw, ctx);
  const description = parseDescription(raw.description, `${at}.description`, errors);
  if (description !== undefined) record.description = description;
  return record;
}

/** The settings a user and a group share; only what is present in `raw` is set. */
function parseSettings(raw: Obj, { at, errors }: ParseContext): SharedSettings {
  const settings: SharedSettings = {};
  if (raw.permissions !== undefined && raw.permissions !== null) {
    const permissions = parsePermissions(raw.permissions, `${at}.permissions`, errors);
    if (permissions) settings.permissions = permissions;
  }
  if (raw.allow_from !== undefined && raw.allow_from !== null) {
    const allowFrom = stringList(raw.allow_from, `${at}.allow_from`, errors);
    for (const entry of allowFrom) {
      const problem = checkAddressRule(entry);
      if (problem) errors.push(`${at}.allow_from: ${problem}`);
    }
    settings.allowFrom = allowFrom;
  }
  const requireTls = bool(raw.require_tls, `${at}.require_tls`, errors);
  if (requireTls !== undefined) settings.requireTls = requireTls;
  const maxSessions = positiveInteger(raw.max_sessions, `${at}.max_sessions`, errors);
  if (maxSessions !== undefined) settings.maxSessions = maxSessions;
  if (raw.protocols !== undefined && raw.protocols !== null) {
    const protocols = parseProtocols(raw.protocols);
    if (typeof protocols === 'string') errors.push(`${at}.protocols: ${protocols}`);
    else settings.protocols = protocols;
  }
  if (raw.auth_methods !== undefined && raw.auth_methods !== null) {
    const parsed = Array.isArray(raw.auth_methods) ? parseAuthMethods(raw.auth_methods) : `must be a list, e.g. [publickey, password]`;
    if (typeof parsed === 'string') errors.push(`${at}.auth_methods: ${parsed}`);
    else settings.authMethods = parsed;
  }
  if (raw.limits !== undefined && raw.limits !== null) {
    const limits = parseLimits(raw.limits, `${at}.limits`, errors);
    if (limits) settings.limits = limits;
  }
  return settings;
}

function parsePermissions(value: unknown, at: string, errors: string[]): Record<string, Permission[]> | undefined {
  if (!isObject(value)) {
    errors.push(`${at}: must be a mapping of folder to list`);
    return undefined;
  }
  const permissions: Record<string, Permission[]> = {};
  for (const [folder, list] of Object.entries(value)) {
    const where = `${at}.${folder}`;
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
  if (!('/' in permissions)) errors.push(`${at}: "/" is required (it applies where no longer folder does)`);
  return permissions;
}

/** Parses `[sftp, ftps]` / `sftp,ftps`; returns the list or an error text. */
export function parseProtocols(value: unknown): LoginProtocol[] | string {
  const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  if (!Array.isArray(list) || list.length === 0) return `must be a non-empty list of ${LOGIN_PROTOCOLS.join(', ')}`;
  const protocols: LoginProtocol[] = [];
  for (const item of list) {
    if (!(LOGIN_PROTOCOLS as readonly unknown[]).includes(item)) return `unknown protocol "${String(item)}" (known: ${LOGIN_PROTOCOLS.join(', ')})`;
    if (protocols.includes(item as LoginProtocol)) return `"${String(item)}" is listed twice`;
    protocols.push(item as LoginProtocol);
  }
  return protocols;
}

function parseLimits(value: unknown, at: string, errors: string[]): UserLimits | undefined {
  if (!isObject(value)) {
    errors.push(`${at}: must be a mapping (${Object.keys(LIMIT_FIELDS).join(', ')})`);
    return undefined;
  }
  const limits: UserLimits = {};
  for (const [key, amount] of Object.entries(value)) {
    const field = Object.hasOwn(LIMIT_FIELDS, key) ? LIMIT_FIELDS[key as LimitKey] : undefined;
    if (!field) {
      const renamed = Object.hasOwn(OLD_LIMIT_NAMES, key) ? `, now ${OLD_LIMIT_NAMES[key]}` : '';
      errors.push(`${at}: unknown key "${key}"${renamed} (known: ${Object.keys(LIMIT_FIELDS).join(', ')})`);
      continue;
    }
    // 0 is a value ("none", which also lifts a group's limit), not the absence of one.
    const parsed = nonNegativeInteger(amount, `${at}.${key}`, errors);
    if (parsed !== undefined) limits[field] = parsed;
  }
  return limits;
}

// Each entry is one authorized_keys line; a bad one is reported with its place in the list and its line.
function parsePublicKeys(value: unknown, { at, errors, lineOf, keyPath }: ParseContext): PublicKey[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    errors.push(`${at}.public_keys: must be a list of authorized_keys lines ("ssh-ed25519 AAAA… comment")`);
    return [];
  }
  const keys: PublicKey[] = [];
  value.forEach((entry, i) => {
    const line = keyPath ? lineOf?.([...keyPath, 'public_keys', i]) : undefined;
    const where = `${at}.public_keys[${i}]${line ? ` (line ${line})` : ''}`;
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

function parseDescription(value: unknown, at: string, errors: string[]): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') errors.push(`${at}: must be a string`);
  else if (value.length > MAX_DESCRIPTION_LENGTH) errors.push(`${at}: longer than ${MAX_DESCRIPTION_LENGTH} characters`);
  else return value;
  return undefined;
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/** `2026-12-31` (midnight UTC) or an ISO 8601 date-time with its zone; a Date (from SQL) is taken as is. */
export function parseTimestamp(value: unknown, at: string, errors: string[]): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
  if (typeof value === 'string' && (DATE_ONLY.test(value) || DATE_TIME.test(value))) {
    const time = Date.parse(DATE_ONLY.test(value) ? `${value}T00:00:00Z` : value);
    if (!Number.isNaN(time)) return new Date(time).toISOString();
  }
  errors.push(`${at}: expected a date (2026-12-31, midnight UTC) or an ISO 8601 date-time with its zone (2026-12-31T18:00:00Z)`);
  return undefined;
}

function nameList(value: unknown, at: string, errors: string[]): string[] {
  const names = stringList(value, at, errors);
  for (const name of names) if (!GROUP_NAME_PATTERN.test(name)) errors.push(`${at}: "${name}" must match ${GROUP_NAME_PATTERN.source}`);
  if (new Set(names).size !== names.length) errors.push(`${at}: a group is listed twice`);
  return names;
}

function stringList(value: unknown, at: string, errors: string[]): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    errors.push(`${at}: must be a list of strings`);
    return [];
  }
  return value;
}

function bool(value: unknown, at: string, errors: string[]): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') {
    errors.push(`${at}: must be true or false`);
    return undefined;
  }
  return value;
}

function positiveInteger(value: unknown, at: string, errors: string[]): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!(Number.isSafeInteger(value) && (value as number) > 0)) {
    errors.push(`${at}: must be a positive integer`);
    return undefined;
  }
  return value as number;
}

function nonNegativeInteger(value: unknown, at: string, errors: string[]): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!(Number.isSafeInteger(value) && (value as number) >= 0)) {
    errors.push(`${at}: must be a whole number, 0 or more (0 = no limit)`);
    return undefined;
  }
  return value as number;
}

/** The settings as a snake_case document; only what is set. */
function settingsDocument(s: SharedSettings): Obj {
  const out: Obj = {};
  if (s.permissions) out.permissions = s.permissions;
  if (s.allowFrom) out.allow_from = s.allowFrom;
  if (s.requireTls !== undefined) out.require_tls = s.requireTls;
  if (s.maxSessions !== undefined) out.max_sessions = s.maxSessions;
  if (s.protocols) out.protocols = [...s.protocols];
  if (s.authMethods) out.auth_methods = [...s.authMethods];
  if (s.limits) out.limits = limitsDocument(s.limits);
  return out;
}

export function limitsDocument(limits: UserLimits): Obj {
  const out: Obj = {};
  for (const [key, field] of Object.entries(LIMIT_FIELDS) as [LimitKey, keyof UserLimits][]) if (limits[field] !== undefined) out[key] = limits[field];
  return out;
}

/**
 * A user as its snake_case document, the inverse of parseUserDocument: what the users file holds and what the admin
 * API shows. Defaults are left out (no `disabled: false`, no empty lists). `password: false` leaves the hash out (never
 * show it through the API).
 */
export function userDocument(u: UserRecord, options: { password?: boolean } = {}): Obj {
  const out: Obj = {};
  if (options.password ?? true) out.password = u.password;
  out.home = u.home;
  if (u.description !== undefined) out.description = u.description;
  if (u.groups.length > 0) out.groups = u.groups;
  Object.assign(out, settingsDocument(u));
  if (u.disabled) out.disabled = true;
  if (u.expiresAt !== undefined) out.expires_at = u.expiresAt;
  if (u.publicKeys.length > 0) out.public_keys = u.publicKeys.map(formatAuthorizedKey);
  return out;
}

/** A group as its snake_case document, the inverse of parseGroupDocument. */
export function groupDocument(g: GroupRecord): Obj {
  const out: Obj = {};
  if (g.description !== undefined) out.description = g.description;
  return Object.assign(out, settingsDocument(g));
}
