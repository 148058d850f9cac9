import {
  formatAuthorizedKey,
  groupDocument,
  hashPassword,
  limitsDocument,
  parseAuthorizedKey,
  parseGroupDocument,
  parseUserDocument,
  userDocument,
  UserStoreError,
  type EffectiveLimits,
  type GroupChange,
  type GroupRecord,
  type GroupView,
  type PublicKey,
  type UserChange,
  type UserRecord,
  type UserView,
} from '@ftp/identity';
import type { GroupOut, User, UserDetail } from './schemas';

/**
 * Between the API's documents (the users file's snake_case fields) and the store's records (camelCase). Parsing goes
 * through the users file's own parser, so the API accepts exactly what the file accepts and says what is wrong the
 * same way ("body.home: must be relative to the data root").
 */

/** snake_case field of a request → camelCase field of a record. */
const FIELDS: Record<string, string> = {
  password: 'password',
  home: 'home',
  groups: 'groups',
  disabled: 'disabled',
  description: 'description',
  expires_at: 'expiresAt',
  permissions: 'permissions',
  allow_from: 'allowFrom',
  require_tls: 'requireTls',
  max_sessions: 'maxSessions',
  protocols: 'protocols',
  auth_methods: 'authMethods',
  limits: 'limits',
};

const invalid = (errors: string[]) => new UserStoreError('invalid', errors.join('; '));

/** A password as given: a scrypt hash is taken as is (checked by the parser), anything else is hashed here. */
const passwordHash = (password: string) => (password.startsWith('scrypt$') ? Promise.resolve(password) : hashPassword(password));

/** A user's document for the API: the users file's fields without the password, plus its name and timestamps. */
export function userOut(view: UserView): User {
  const { name, createdAt, updatedAt, ...record } = view;
  const doc = userDocument({ ...record, password: '' }, { password: false });
  return {
    name,
    ...doc,
    groups: doc.groups ?? [],
    disabled: doc.disabled ?? false,
    public_keys: doc.public_keys ?? [],
    ...(createdAt ? { created_at: createdAt } : {}),
    ...(updatedAt ? { updated_at: updatedAt } : {}),
  } as User;
}

/** Every limit in force, snake_case (all of them present). */
export const effectiveLimitsOut = (limits: EffectiveLimits) => limitsDocument(limits) as UserDetail['effective_limits'];

export function groupOut(view: GroupView): GroupOut {
  const { name, members, createdAt, updatedAt, ...record } = view;
  return { name, ...groupDocument(record), members, ...(createdAt ? { created_at: createdAt } : {}), ...(updatedAt ? { updated_at: updatedAt } : {}) } as GroupOut;
}

export const keyOut = (key: PublicKey) => ({ fingerprint: key.fingerprint, type: key.type, ...(key.comment ? { comment: key.comment } : {}), line: formatAuthorizedKey(key) });

/** POST /users: the new user's record, its password hashed. */
export async function userFromBody(body: Record<string, unknown>): Promise<{ name: string; record: UserRecord }> {
  const { name, ...doc } = body as { name: string } & Record<string, unknown>;
  doc.password = await passwordHash(String(doc.password));
  const errors: string[] = [];
  const record = parseUserDocument(name, doc, { at: 'body', errors });
  if (!record || errors.length > 0) throw invalid(errors);
  return { name, record };
}

/** PATCH /users/{name}: the fields given, parsed; null clears an optional one (it then comes from the groups). */
export async function userChangeFromBody(name: string, body: Record<string, unknown>): Promise<UserChange> {
  const change: Record<string, unknown> = {};
  const given = Object.entries(body).filter(([, value]) => value !== undefined);
  const settings = Object.fromEntries(given.filter(([key, value]) => key !== 'password' && value !== null));
  const errors: string[] = [];
  // credentials: false parses every field but the password (and keys, which have calls of their own).
  const parsed = parseUserDocument(name, settings, { at: 'body', errors }, { credentials: false }) as Record<string, unknown> | undefined;
  if (body.password !== undefined) {
    const hash = await passwordHash(String(body.password));
    const problems: string[] = [];
    parseUserDocument(name, { password: hash }, { at: 'body', errors: problems }); // checks a given hash
    errors.push(...problems.filter((p) => p.startsWith('body.password')));
    change.password = hash;
  }
  if (!parsed || errors.length > 0) throw invalid(errors);
  for (const [key, value] of given) {
    if (key === 'password') continue;
    change[FIELDS[key]] = value === null ? null : parsed[FIELDS[key]];
  }
  return change as UserChange;
}

export function groupFromBody(body: Record<string, unknown>): { name: string; record: GroupRecord } {
  const { name, ...doc } = body as { name: string } & Record<string, unknown>;
  const errors: string[] = [];
  const record = parseGroupDocument(doc, { at: 'body', errors });
  if (!record || errors.length > 0) throw invalid(errors);
  return { name, record };
}

export function groupChangeFromBody(body: Record<string, unknown>): GroupChange {
  const given = Object.entries(body).filter(([, value]) => value !== undefined);
  const errors: string[] = [];
  const parsed = parseGroupDocument(Object.fromEntries(given.filter(([, value]) => value !== null)), { at: 'body', errors }) as Record<string, unknown> | undefined;
  if (!parsed || errors.length > 0) throw invalid(errors);
  const change: Record<string, unknown> = {};
  for (const [key, value] of given) change[FIELDS[key]] = value === null ? null : parsed[FIELDS[key]];
  return change as GroupChange;
}

/** authorized_keys lines → keys; every bad line named by its place in the list. */
export function keysFromBody(lines: string[]): PublicKey[] {
  const errors: string[] = [];
  const keys: PublicKey[] = [];
  lines.forEach((line, i) => {
    if (/PRIVATE KEY/.test(line)) errors.push(`body.public_keys[${i}]: this is a private key; give the public one (the .pub file)`);
    else {
      try {
        const key = parseAuthorizedKey(line);
        if (keys.some((k) => k.data.equals(key.data))) errors.push(`body.public_keys[${i}]: the same key (${key.fingerprint}) is listed twice`);
        else keys.push(key);
      } catch (err) {
        errors.push(`body.public_keys[${i}]: ${(err as Error).message}`);
      }
    }
  });
  if (errors.length > 0) throw invalid(errors);
  return keys;
}

/** Whether a change locks the user out now: disabled, or expired. */
export function locksOut(change: UserChange, now = Date.now()): boolean {
  return change.disabled === true || (typeof change.expiresAt === 'string' && Date.parse(change.expiresAt) <= now);
}
