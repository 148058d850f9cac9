import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { addressAllowed } from './addresses';
import { allowsMethod } from './authMethods';
import { DUMMY_HASH, verifyPassword as scryptVerify } from './password';
import { createPasswordCache } from './passwordCache';
import { dummyKeys, findKey } from './publicKeys';
import { ANONYMOUS_NAMES, type GroupRecord, type UserRecord } from './records';
import { effectiveSettings, protocolAllowed } from './resolve';
import { NO_LIMITS } from './limits';
import type { AuthMethod, AuthResult, EffectiveLimits, Identity, LoginProtocol, User } from './types';

const ANONYMOUS_PERMISSIONS: User['permissions'] = { '/': ['list', 'download'] };

/** What the login path reads: the users and groups a store holds in memory right now. Lookups are synchronous. */
export interface Directory {
  user(name: string): UserRecord | undefined;
  group(name: string): GroupRecord | undefined;
  /** The anonymous login (only the users file has one). */
  anonymous?: { enabled: boolean; home: string };
}

export interface VerifierOptions {
  /** Folder that holds every user's home. */
  dataRoot: string;
  /** The current users; asked on every login, so a store may swap what it returns at any time. */
  directory: () => Directory;
  /** Awaited before each login (the users file: a throttled check for changes). */
  refresh?: () => Promise<void>;
  /** Password cache lifetime (default 10 minutes) and size (default 10 000). */
  passwordCache?: { ttlMs?: number; maxEntries?: number };
  /** Replaces the scrypt check (tests count calls with it). */
  verifyPassword?: (password: string, encoded: string) => Promise<boolean>;
  /** Clock for `expires_at` (tests). */
  now?: () => number;
  /** The server's limits for what neither a user nor its groups set (FTP_DEFAULT_*); default none. */
  defaultLimits?: EffectiveLimits;
}

/** Resolves a home folder inside the data root; validation already refused absolute and '..' homes. */
export function resolveHome(dataRoot: string, home: string): string {
  const root = path.resolve(dataRoot, home);
  const rel = path.relative(dataRoot, root);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`home "${home}" is outside the data root`);
  return root;
}

/** The session's view of a user: its record with its groups merged in, its home resolved; no password material. */
export function toUser(
  name: string,
  record: UserRecord,
  groupOf: (name: string) => GroupRecord | undefined,
  dataRoot: string,
  defaultLimits: EffectiveLimits = NO_LIMITS,
): User {
  const settings = effectiveSettings(record, groupOf, defaultLimits);
  const user: User = {
    name,
    root: resolveHome(dataRoot, record.home),
    permissions: settings.permissions,
    groups: record.groups,
    allowFrom: settings.allowFrom,
    requireTls: settings.requireTls,
    maxSessions: settings.maxSessions,
    anonymous: false,
    publicKeys: record.publicKeys,
    limits: settings.limits,
  };
  if (settings.authMethods) user.authMethods = settings.authMethods;
  if (settings.protocols) user.protocols = settings.protocols;
  if (record.expiresAt) user.expiresAt = record.expiresAt;
  return user;
}

export interface Admission {
  name: string;
  record: UserRecord;
  groupOf: (name: string) => GroupRecord | undefined;
  dataRoot: string;
  clientAddress: string;
  protocol: LoginProtocol;
  /** The credential that was found right. */
  method: AuthMethod;
  now: number;
  /** The server's defaults (FTP_DEFAULT_*) for limits neither the user nor its groups set. */
  defaultLimits?: EffectiveLimits;
}

/**
 * After a right credential: what only its holder may learn (disabled, expired, address, front door, method), then the
 * user, with its home created. Every backend ends a login here: the users file and PostgreSQL after their own
 * password or key check, the identity hook after the hook said yes.
 */
export async function admitUser(a: Admission): Promise<AuthResult> {
  if (a.record.disabled) return { ok: false, reason: 'disabled' };
  if (a.record.expiresAt !== undefined && Date.parse(a.record.expiresAt) <= a.now) return { ok: false, reason: 'expired' };
  const user = toUser(a.name, a.record, a.groupOf, a.dataRoot, a.defaultLimits);
  if (!addressAllowed(a.clientAddress, user.allowFrom)) return { ok: false, reason: 'address-denied' };
  if (!protocolAllowed(user.protocols, a.protocol)) return { ok: false, reason: 'protocol-not-allowed' };
  if (!allowsMethod(user, a.method)) return { ok: false, reason: 'method-not-allowed' };
  await mkdir(user.root, { recursive: true });
  return { ok: true, user };
}

/** Whether `name` is one of the anonymous names and the directory has anonymous logins on. */
export function isAnonymousName(directory: Directory, name: string): boolean {
  return Boolean(directory.anonymous?.enabled) && (ANONYMOUS_NAMES as readonly string[]).includes(name.toLowerCase());
}

/**
 * The login path shared by the stores that hold users in memory (the users file, PostgreSQL): password check with the
 * verified-password cache and in-flight sharing, key check, unknown users at the cost of a known one, then admitUser.
 */
export function createVerifier(options: VerifierOptions): Identity {
  const dataRoot = path.resolve(options.dataRoot);
  const verify = options.verifyPassword ?? scryptVerify;
  const cache = createPasswordCache(options.passwordCache);
  const now = options.now ?? Date.now;
  const refresh = options.refresh ?? (() => Promise.resolve());
  const defaultLimits = options.defaultLimits ?? NO_LIMITS;

  const inFlight = new Map<string, Promise<boolean>>();
  const passwordOk = async (name: string, encoded: string, password: string): Promise<boolean> => {
    if (cache.matches(name, encoded, password)) return true;
    // A partner opening 50 sessions at once sends one password 50 times: one scrypt run answers them all.
    const key = cache.keyOf(name, encoded, password);
    let check = inFlight.get(key);
    if (!check) {
      check = verify(password, encoded).finally(() => inFlight.delete(key));
      inFlight.set(key, check);
    }
    const ok = await check;
    if (ok) cache.remember(name, encoded, password);
    return ok;
  };

  const admit = (directory: Directory, name: string, record: UserRecord, clientAddress: string, protocol: LoginProtocol, method: AuthMethod) =>
    admitUser({ name, record, groupOf: (g) => directory.group(g), dataRoot, clientAddress, protocol, method, now: now(), defaultLimits });

  return {
    async authenticate(name, password, clientAddress, protocol) {
      await refresh();
      const directory = options.directory();
      if (isAnonymousName(directory, name)) {
        // Any password: by convention anonymous users type their e-mail address.
        const user: User = {
          name: 'anonymous',
          root: resolveHome(dataRoot, directory.anonymous!.home),
          permissions: ANONYMOUS_PERMISSIONS,
          groups: [],
          allowFrom: [],
          requireTls: false,
          anonymous: true,
          publicKeys: [],
          limits: defaultLimits,
        };
        await mkdir(user.root, { recursive: true });
        return { ok: true, user };
      }
      const record = directory.user(name);
      if (!record) {
        await verify(password, DUMMY_HASH); // same cost as a wrong password: timing does not reveal names
        return { ok: false, reason: 'unknown-user' };
      }
      // Password first, so "disabled", "expired" and the rest are only told to whoever knows the password.
      if (!(await passwordOk(name, record.password, password))) return { ok: false, reason: 'bad-password' };
      return admit(directory, name, record, clientAddress, protocol, 'password');
    },

    async authenticateKey(name, key, clientAddress, protocol) {
      await refresh();
      const directory = options.directory();
      const record = directory.user(name);
      // An unknown user's key is compared with a dummy one: the same work as a known user with one key.
      const match = findKey(record ? record.publicKeys : dummyKeys(key.data), key.data);
      if (!record) return { ok: false, reason: 'unknown-user' };
      if (!match) return { ok: false, reason: 'bad-key' };
      return admit(directory, name, record, clientAddress, protocol, 'publickey');
    },

    isAnonymous: (name) => isAnonymousName(options.directory(), name),

    limitsNow(name) {
      void refresh().catch(() => undefined); // an edited users file is read by the next call, as for a login
      const directory = options.directory();
      if (name === 'anonymous' && directory.anonymous) return defaultLimits;
      const record = directory.user(name);
      return record ? effectiveSettings(record, (g) => directory.group(g), defaultLimits).limits : undefined;
    },

    // Unknown names answer false, the same as users without the rule: USER does not reveal who exists.
    requiresTls(name) {
      const directory = options.directory();
      const record = directory.user(name);
      return record ? effectiveSettings(record, (g) => directory.group(g)).requireTls : false;
    },
  };
}
