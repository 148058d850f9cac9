import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { addressAllowed } from './addresses';
import { allowsMethod } from './authMethods';
import { DUMMY_HASH, verifyPassword as scryptVerify } from './password';
import { createPasswordCache } from './passwordCache';
import { dummyKeys, findKey } from './publicKeys';
import type { AuthResult, Identity, User } from './types';
import { ANONYMOUS_NAMES, loadUsersFile, type UserRecord, type UsersFileData } from './usersFile';

export interface FileIdentityOptions {
  usersFile: string;
  /** Folder that holds every user's home. */
  dataRoot: string;
  /** Called when an automatic reload fails; the previous users stay in force. */
  onReloadError?: (err: unknown) => void;
  /** How often at most authenticate() looks at the file's mtime (default 1000 ms). */
  reloadCheckMs?: number;
  /** Password cache lifetime (default 10 minutes) and size (default 10 000). */
  passwordCache?: { ttlMs?: number; maxEntries?: number };
  /** Replaces the scrypt check (tests count calls with it). */
  verifyPassword?: (password: string, encoded: string) => Promise<boolean>;
}

export type FileIdentity = Identity & {
  /** Re-reads the users file now; throws (and keeps the previous users) if it is invalid. */
  reload(): Promise<void>;
  close(): void;
};

const ANONYMOUS_PERMISSIONS: User['permissions'] = { '/': ['list', 'download'] };

/** Resolves a home folder inside the data root; validation already refused absolute and '..' homes. */
function resolveHome(dataRoot: string, home: string): string {
  const root = path.resolve(dataRoot, home);
  const rel = path.relative(dataRoot, root);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`home "${home}" is outside the data root`);
  return root;
}

function toUser(name: string, record: UserRecord, dataRoot: string): User {
  const user: User = {
    name,
    root: resolveHome(dataRoot, record.home),
    permissions: record.permissions,
    groups: record.groups,
    allowFrom: record.allowFrom,
    requireTls: record.requireTls,
    maxSessions: record.maxSessions,
    anonymous: false,
    publicKeys: record.publicKeys,
  };
  if (record.authMethods) user.authMethods = record.authMethods;
  return user;
}

/**
 * Identity backed by the YAML users file. The file is re-read when its mtime/size/inode changes,
 * checked lazily on authenticate (at most once per reloadCheckMs): no watcher thread, nothing to
 * leak, and a login always sees an edit made more than a second before.
 */
export async function createFileIdentity(options: FileIdentityOptions): Promise<FileIdentity> {
  const dataRoot = path.resolve(options.dataRoot);
  const reloadCheckMs = options.reloadCheckMs ?? 1000;
  const verify = options.verifyPassword ?? scryptVerify;
  const cache = createPasswordCache(options.passwordCache);

  let data: UsersFileData;
  let fileVersion = '';
  let lastCheck = 0;
  let pendingCheck: Promise<void> | undefined;
  let closed = false;

  const versionOf = async (): Promise<string> => {
    const s = await stat(options.usersFile);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  };

  const reload = async (): Promise<void> => {
    const version = await versionOf();
    data = await loadUsersFile(options.usersFile);
    fileVersion = version; // stat first: an edit racing the read is picked up by the next check
  };

  const checkForChange = async (): Promise<void> => {
    try {
      if ((await versionOf()) !== fileVersion) await reload();
    } catch (err) {
      options.onReloadError?.(err);
    }
  };

  // Concurrent logins share a single check.
  const maybeReload = (): Promise<void> => {
    if (closed || Date.now() - lastCheck < reloadCheckMs) return pendingCheck ?? Promise.resolve();
    lastCheck = Date.now();
    pendingCheck = checkForChange().finally(() => (pendingCheck = undefined));
    return pendingCheck;
  };

  const isAnonymous = (name: string): boolean =>
    data.anonymous.enabled && (ANONYMOUS_NAMES as readonly string[]).includes(name.toLowerCase());

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

  const authenticate = async (name: string, password: string, clientAddress: string): Promise<AuthResult> => {
    await maybeReload();
    if (isAnonymous(name)) {
      // Any password: by convention anonymous users type their e-mail address.
      const user: User = {
        name: 'anonymous',
        root: resolveHome(dataRoot, data.anonymous.home),
        permissions: ANONYMOUS_PERMISSIONS,
        groups: [],
        allowFrom: [],
        requireTls: false,
        anonymous: true,
        publicKeys: [],
      };
      await mkdir(user.root, { recursive: true });
      return { ok: true, user };
    }
    const record = Object.hasOwn(data.users, name) ? data.users[name] : undefined;
    if (!record) {
      await verify(password, DUMMY_HASH); // same cost as a wrong password: timing does not reveal names
      return { ok: false, reason: 'unknown-user' };
    }
    // Password first, so "disabled" and "address-denied" are only told to whoever knows the password.
    if (!(await passwordOk(name, record.password, password))) return { ok: false, reason: 'bad-password' };
    return admit(name, record, clientAddress, 'password');
  };

  const authenticateKey = async (name: string, key: { type: string; data: Buffer }, clientAddress: string): Promise<AuthResult> => {
    await maybeReload();
    const record = Object.hasOwn(data.users, name) ? data.users[name] : undefined;
    // An unknown user's key is compared with a dummy one: the same work as a known user with one key.
    const match = findKey(record ? record.publicKeys : dummyKeys(key.data), key.data);
    if (!record) return { ok: false, reason: 'unknown-user' };
    if (!match) return { ok: false, reason: 'bad-key' };
    return admit(name, record, clientAddress, 'publickey');
  };

  // After a right credential: what only its holder may learn, then the user.
  const admit = async (name: string, record: UserRecord, clientAddress: string, method: 'password' | 'publickey'): Promise<AuthResult> => {
    if (record.disabled) return { ok: false, reason: 'disabled' };
    if (!addressAllowed(clientAddress, record.allowFrom)) return { ok: false, reason: 'address-denied' };
    if (!allowsMethod(record, method)) return { ok: false, reason: 'method-not-allowed' };
    const user = toUser(name, record, dataRoot);
    await mkdir(user.root, { recursive: true });
    return { ok: true, user };
  };

  await reload();
  lastCheck = Date.now();

  return {
    authenticate,
    authenticateKey,
    isAnonymous,
    // Unknown names answer false, the same as users without the rule: USER does not reveal who exists.
    requiresTls: (name) => Object.hasOwn(data.users, name) && data.users[name].requireTls,
    reload,
    close: () => {
      closed = true;
    },
  };
}
