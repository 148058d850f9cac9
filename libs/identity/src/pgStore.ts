import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { formatAuthorizedKey } from './publicKeys';
import { groupDocument, parseGroupDocument, parseTimestamp, parseUserDocument, userDocument, GROUP_NAME_PATTERN, USER_NAME_PATTERN, type GroupRecord, type UserRecord } from './records';
import { effectiveSettings } from './resolve';
import { createChangeFeed } from './pgFeed';
import { migrateUserStore } from './pgMigrate';
import {
  assignments,
  groupFromRow,
  groupValues,
  GROUP_COLUMNS,
  placeholders,
  SELECT_GROUPS,
  SELECT_TOKENS,
  SELECT_USERS,
  tokenFromRow,
  userFromRow,
  userValues,
  USER_COLUMNS,
  type Timestamps,
} from './pgRows';
import {
  ADMIN_SCOPES,
  UserStoreError,
  type Actor,
  type AdminTokenInfo,
  type AdminTokens,
  type AuditEntry,
  type AuditTrail,
  type GroupChange,
  type GroupView,
  type UserChange,
  type UserStore,
  type UserStoreHealth,
  type UserView,
} from './store';
import type { PublicKey } from './types';
import type { UsersFileData } from './usersFile';
import { createVerifier, type Directory, type VerifierOptions } from './verify';
import { byName, groupViews, userView } from './views';

export interface PostgresStoreOptions extends Pick<VerifierOptions, 'passwordCache' | 'verifyPassword' | 'now' | 'defaultLimits'> {
  /** FTP_USERS_DATABASE_URL, e.g. postgres://ftp@db:5432/ftp (or a full pg client config). */
  connection: string | pg.ClientConfig;
  /** Folder that holds every user's home. */
  dataRoot: string;
  /** Apply the schema migrations first (FTP_USERS_DATABASE_MIGRATE, default true). */
  migrate?: boolean;
  /** Connections for reads and writes (default 4); the LISTEN connection comes on top. */
  poolSize?: number;
  /** Liveness query on the LISTEN connection (default every 5000 ms, answer within 3000 ms). */
  pingMs?: number;
  pingTimeoutMs?: number;
  /** How long a write waits for a connection before it fails as unavailable (default 3000 ms). */
  connectTimeoutMs?: number;
  /** Events worth a log line: lost, back, a row skipped as invalid, a migration applied. */
  log?: { info(fields: object, message: string): void; warn(fields: object, message: string): void; error(fields: object, message: string): void };
}

export type PostgresStore = UserStore & AdminTokens & AuditTrail;

type Client = pg.PoolClient;

interface Memory {
  users: Map<string, UserRecord & Timestamps>;
  groups: Map<string, GroupRecord & Timestamps>;
  /** Tokens by the hex SHA-256 of the token. */
  tokens: Map<string, AdminTokenInfo>;
}

const quietLog = { info() {}, warn() {}, error() {} };

// SQLSTATE classes and codes that mean "PostgreSQL is not there" rather than "this write is wrong".
const UNAVAILABLE_STATES = /^(08|53|57P|58)/;

/** A driver or server error as a UserStoreError: bad data is the caller's, anything else means PostgreSQL is away. */
function storeError(err: unknown, context: { conflict?: string; missing?: string } = {}): UserStoreError {
  if (err instanceof UserStoreError) return err;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !UNAVAILABLE_STATES.test(code)) {
    if (code === '23505') return new UserStoreError('conflict', context.conflict ?? 'already exists', { cause: err });
    if (code === '23503') return new UserStoreError(context.missing ? 'invalid' : 'conflict', context.missing ?? (err as Error).message, { cause: err });
    if (code.startsWith('22') || code.startsWith('23')) return new UserStoreError('invalid', (err as Error).message, { cause: err });
  }
  return new UserStoreError('unavailable', `PostgreSQL is unavailable: ${(err as Error).message}`, { cause: err });
}

const invalid = (message: string) => new UserStoreError('invalid', message);
const notFound = (what: string) => new UserStoreError('not-found', `${what} does not exist`);

function checkName(kind: 'user' | 'group' | 'token', name: string) {
  const pattern = kind === 'user' ? USER_NAME_PATTERN : GROUP_NAME_PATTERN;
  if (typeof name !== 'string' || !pattern.test(name)) throw invalid(`${kind} name "${String(name)}" must match ${pattern.source}`);
}

/** The record as the users file would hold it, validated the same way; `invalid` naming every problem. */
function validUser(name: string, record: UserRecord): UserRecord {
  checkName('user', name);
  const errors: string[] = [];
  const parsed = parseUserDocument(name, userDocument(record), { at: 'user', errors });
  if (!parsed || errors.length > 0) throw invalid(errors.join('; '));
  return parsed;
}

function validGroup(name: string, record: GroupRecord): GroupRecord {
  checkName('group', name);
  const errors: string[] = [];
  const parsed = parseGroupDocument(groupDocument(record), { at: 'group', errors });
  if (!parsed || errors.length > 0) throw invalid(errors.join('; '));
  return parsed;
}

/** Applies a partial change; `null` clears an optional field, a required one cannot be cleared. */
function applyChange<T extends object>(record: T, change: object, allowed: readonly string[], required: readonly string[]): T {
  const next: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  for (const [key, value] of Object.entries(change)) {
    if (value === undefined) continue;
    if (!allowed.includes(key)) throw invalid(`"${key}" cannot be changed here`);
    if (value === null) {
      if (required.includes(key)) throw invalid(`"${key}" cannot be cleared`);
      delete next[key];
    } else next[key] = value;
  }
  return next as T;
}

const USER_FIELDS = ['password', 'home', 'groups', 'disabled', 'description', 'expiresAt', 'permissions', 'allowFrom', 'requireTls', 'maxSessions', 'protocols', 'authMethods', 'limits'];
const USER_REQUIRED = ['password', 'home', 'groups', 'disabled'];
const GROUP_FIELDS = ['description', 'permissions', 'allowFrom', 'requireTls', 'maxSessions', 'protocols', 'authMethods', 'limits'];

/** What the audit trail keeps of a user: no hash; a changed password only as "(changed)". */
function auditUser(record: UserRecord | undefined, passwordChanged = false): unknown {
  if (!record) return undefined;
  const doc = userDocument(record, { password: false });
  return passwordChanged ? { ...doc, password: '(changed)' } : doc;
}

const sha256 = (token: string) => createHash('sha256').update(token).digest();

/**
 * The `postgres` UserStore. Every replica keeps all users, groups and admin tokens in memory: loaded in full at start,
 * then kept current by LISTEN/NOTIFY (triggers announce every change at commit; a replica reloads just what a
 * notification names, within milliseconds). Logins never wait for PostgreSQL, and go on from the last known users
 * (verified-password cache included) while it is away; the LISTEN connection reconnects by itself and reloads
 * everything, since notifications sent meanwhile are lost. Writes go to PostgreSQL in one transaction with their audit
 * row, fail as `unavailable` while it is away, and return once this replica has the change.
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const log = options.log ?? quietLog;
  const clientConfig: pg.ClientConfig = typeof options.connection === 'string' ? { connectionString: options.connection } : options.connection;
  if (options.migrate ?? true) {
    const result = await migrateUserStore(clientConfig, { log: (message) => log.info({}, message) });
    if (result.applied.length > 0) log.info({ from: result.from, to: result.to, applied: result.applied }, 'user store schema migrated');
  }

  const pool = new pg.Pool({
    max: options.poolSize ?? 4,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 3000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'ftp-user-store',
    statement_timeout: 10_000,
    ...clientConfig,
  });
  pool.on('error', () => {}); // an idle connection dropped by the server: the next query opens another
  // A checked-out connection that the server drops emits 'error' as well as failing its query: without a listener
  // that would be an uncaught exception. The failed query reports it.
  const guarded = new WeakSet<pg.PoolClient>();
  const checkout = async (): Promise<Client> => {
    const client = await pool.connect();
    if (!guarded.has(client)) {
      guarded.add(client);
      client.on('error', () => {});
    }
    return client;
  };

  const memory: Memory = { users: new Map(), groups: new Map(), tokens: new Map() };
  const state = { up: false, since: Date.now(), loadedAt: 0, problem: '', lostAt: 0 };
  const setUp = (up: boolean, problem = '') => {
    if (up !== state.up) Object.assign(state, { up, since: Date.now() });
    state.problem = problem;
  };

  // Loads run one at a time, in the order asked: a reload asked after a notification starts after it was sent (so it
  // sees the change), and never finishes before an older full load that would put back what it read earlier.
  let loads: Promise<unknown> = Promise.resolve();
  const serially = <T>(load: () => Promise<T>): Promise<T> => {
    const run = loads.then(load, load);
    loads = run.catch(() => undefined);
    return run;
  };

  const applyUsers = (rows: Record<string, unknown>[], names?: readonly string[]) => {
    const seen = new Set<string>();
    for (const row of rows) {
      const name = String(row.name);
      const parsed = userFromRow(row);
      seen.add(name);
      if ('problems' in parsed) {
        memory.users.delete(name);
        log.error({ user: name, problems: parsed.problems }, 'user store: invalid user row skipped (this user cannot log in until it is fixed)');
      } else memory.users.set(name, { ...parsed.record, ...parsed.meta });
    }
    for (const name of names ?? []) if (!seen.has(name)) memory.users.delete(name);
  };
  const applyGroups = (rows: Record<string, unknown>[], names?: readonly string[]) => {
    const seen = new Set<string>();
    for (const row of rows) {
      const name = String(row.name);
      const parsed = groupFromRow(row);
      seen.add(name);
      if ('problems' in parsed) {
        memory.groups.delete(name);
        log.error({ group: name, problems: parsed.problems }, 'user store: invalid group row skipped');
      } else memory.groups.set(name, { ...parsed.record, ...parsed.meta });
    }
    for (const name of names ?? []) if (!seen.has(name)) memory.groups.delete(name);
  };
  const applyTokens = (rows: Record<string, unknown>[], names?: readonly string[]) => {
    const gone = new Set(names ?? []);
    for (const [hash, info] of memory.tokens) if (gone.has(info.name)) memory.tokens.delete(hash);
    for (const row of rows) {
      const { sha256, info } = tokenFromRow(row);
      memory.tokens.set(sha256, info);
    }
  };

  /** Everything, from one snapshot; replaces what is in memory only once all of it is read. */
  const loadAll = () =>
    serially(async () => {
      const client = await checkout();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const users = await client.query(SELECT_USERS(false));
        const groups = await client.query(SELECT_GROUPS(false));
        const tokens = await client.query(SELECT_TOKENS(false));
        await client.query('COMMIT');
        memory.users.clear();
        memory.groups.clear();
        memory.tokens.clear();
        applyUsers(users.rows);
        applyGroups(groups.rows);
        applyTokens(tokens.rows);
        state.loadedAt = Date.now();
        client.release();
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        client.release(err as Error); // not back into the pool: it may be the connection that failed
        throw err;
      }
    });

  const loadSome = (what: { users?: string[]; groups?: string[]; tokens?: string[] }) =>
    serially(async () => {
      if (what.users?.length) applyUsers((await pool.query(SELECT_USERS(true), [what.users])).rows, what.users);
      if (what.groups?.length) applyGroups((await pool.query(SELECT_GROUPS(true), [what.groups])).rows, what.groups);
      if (what.tokens?.length) applyTokens((await pool.query(SELECT_TOKENS(true), [what.tokens])).rows, what.tokens);
    });

  // Notifications are gathered for one turn of the event loop, then loaded in one go (an import of 1000 users sends
  // 1000 of them); past a few hundred names a full reload is cheaper.
  const pending = { users: new Set<string>(), groups: new Set<string>(), tokens: new Set<string>(), all: false, scheduled: false };
  const onNotification = (payload: string) => {
    let change: { kind?: string; name?: string };
    try {
      change = JSON.parse(payload);
    } catch {
      change = { kind: 'all' };
    }
    if (change.kind === 'user' && change.name) pending.users.add(change.name);
    else if (change.kind === 'group' && change.name) pending.groups.add(change.name);
    else if (change.kind === 'token' && change.name) pending.tokens.add(change.name);
    else pending.all = true;
    if (pending.scheduled) return;
    pending.scheduled = true;
    setImmediate(() => {
      const batch = { users: [...pending.users], groups: [...pending.groups], tokens: [...pending.tokens] };
      const all = pending.all || batch.users.length + batch.groups.length + batch.tokens.length > 500;
      Object.assign(pending, { users: new Set(), groups: new Set(), tokens: new Set(), all: false, scheduled: false });
      (all ? loadAll() : loadSome(batch)).catch((err: Error) => {
        // The change is not lost: the connection is surely gone too, and its reconnection reloads everything.
        log.warn({ err: err.message }, 'user store: reload after a change notification failed');
      });
    });
  };

  const feed = createChangeFeed({
    client: clientConfig,
    pingMs: options.pingMs,
    pingTimeoutMs: options.pingTimeoutMs,
    onNotification,
    onListening: async () => {
      await loadAll();
      if (state.lostAt) log.info({ users: memory.users.size, downMs: Date.now() - state.lostAt }, 'user store: PostgreSQL is back, users reloaded');
      state.lostAt = 0;
      setUp(true);
    },
    onLost: (err) => {
      state.lostAt = Date.now();
      setUp(false, err.message);
      log.error(
        { err: err.message, users: memory.users.size },
        'user store: PostgreSQL unreachable; logins go on from the users in memory, writes fail until it is back',
      );
    },
  });
  try {
    await feed.start();
  } catch (err) {
    await pool.end().catch(() => {});
    throw new UserStoreError('unavailable', `PostgreSQL user store: cannot load users: ${(err as Error).message}`, { cause: err });
  }

  const directory: Directory = {
    user: (name) => memory.users.get(name),
    group: (name) => memory.groups.get(name),
  };
  const identity = createVerifier({ ...options, directory: () => directory });

  /** One transaction: the change and its audit row commit together or not at all. */
  const transaction = async <T>(work: (client: Client) => Promise<T>, context: { conflict?: string; missing?: string } = {}): Promise<T> => {
    let client: Client;
    try {
      client = await checkout();
    } catch (err) {
      throw storeError(err);
    }
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(err instanceof UserStoreError ? undefined : (err as Error)); // a failed connection is not reused
      throw storeError(err, context);
    }
  };

  const insertAudit = async (client: Client | pg.Pool, by: Actor, action: string, target: string | undefined, change: { before?: unknown; after?: unknown } = {}) => {
    await client.query('INSERT INTO ftp_admin_audit (actor, via, address, action, target, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      by.name,
      by.via ?? null,
      by.address ?? null,
      action,
      target ?? null,
      change.before === undefined ? null : JSON.stringify(change.before),
      change.after === undefined ? null : JSON.stringify(change.after),
    ]);
  };

  /** After a commit: this replica sees the change before the call returns (the notification may come later). */
  const settle = async (what: { users?: string[]; groups?: string[]; tokens?: string[] }) => {
    await loadSome(what).catch((err: Error) => log.warn({ err: err.message }, 'user store: reload after a write failed; the change notification will bring it'));
  };

  /** The user row, locked for this transaction; `not-found` when absent. */
  const lockUser = async (client: Client, name: string): Promise<UserRecord> => {
    const { rows } = await client.query(`${SELECT_USERS(true)} FOR UPDATE OF u`, [[name]]);
    if (rows.length === 0) throw notFound(`user "${name}"`);
    const parsed = userFromRow(rows[0]);
    if ('problems' in parsed) throw invalid(`the stored user "${name}" is not valid (${parsed.problems.join('; ')}): fix or replace it`);
    return parsed.record;
  };

  const requireGroups = async (client: Client, groups: readonly string[]) => {
    if (groups.length === 0) return;
    const { rows } = await client.query<{ name: string }>('SELECT name FROM ftp_groups WHERE name = ANY($1) FOR KEY SHARE', [groups]);
    const missing = groups.filter((g) => !rows.some((r) => r.name === g));
    if (missing.length > 0) throw invalid(`user.groups: no such group: ${missing.join(', ')} (create it first)`);
  };

  const writeMemberships = async (client: Client, name: string, groups: readonly string[]) => {
    await client.query('DELETE FROM ftp_user_groups WHERE user_name = $1', [name]);
    if (groups.length > 0)
      await client.query('INSERT INTO ftp_user_groups (user_name, group_name, position) SELECT $1, g, i FROM unnest($2::text[]) WITH ORDINALITY AS t(g, i)', [
        name,
        groups,
      ]);
  };

  const writeKeys = async (client: Client, name: string, keys: readonly PublicKey[], from = 0) => {
    if (keys.length === 0) return;
    await client.query(
      'INSERT INTO ftp_public_keys (user_name, fingerprint, line, position) SELECT $1, f, l, $4 + i FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(f, l, i)',
      [name, keys.map((k) => k.fingerprint), keys.map(formatAuthorizedKey), from],
    );
  };

  const upsertUser = async (client: Client, name: string, record: UserRecord) => {
    const values = userValues(record);
    await client.query(
      `INSERT INTO ftp_users (name, ${USER_COLUMNS}) VALUES ($1, ${placeholders(values.length, 2)})
       ON CONFLICT (name) DO UPDATE SET ${assignments(USER_COLUMNS, 2)}, updated_at = now()`,
      [name, ...values],
    );
    await writeMemberships(client, name, record.groups);
    await client.query('DELETE FROM ftp_public_keys WHERE user_name = $1', [name]);
    await writeKeys(client, name, record.publicKeys);
  };

  const upsertGroup = async (client: Client, name: string, record: GroupRecord) => {
    const values = groupValues(record);
    await client.query(
      `INSERT INTO ftp_groups (name, ${GROUP_COLUMNS}) VALUES ($1, ${placeholders(values.length, 2)})
       ON CONFLICT (name) DO UPDATE SET ${assignments(GROUP_COLUMNS, 2)}, updated_at = now()`,
      [name, ...values],
    );
  };

  /** The user as this replica holds it; `written` when the reload after a write failed (the write itself stands). */
  const viewOf = (name: string, written?: UserRecord): UserView => {
    const record = memory.users.get(name);
    if (!record) return userView(name, written!);
    const { createdAt, updatedAt, ...rest } = record;
    return userView(name, rest, { createdAt, updatedAt });
  };
  const groupViewOf = (name: string, written?: GroupRecord): GroupView =>
    groupViews([...memory.groups].filter(([g]) => g === name), memory.users).at(0) ?? { name, ...written!, members: [] };

  const store: PostgresStore = {
    backend: 'postgres',
    ...identity,

    listUsers: async () => [...memory.users.keys()].map((name) => viewOf(name)).sort(byName),
    getUser: async (name) => (memory.users.has(name) ? viewOf(name) : undefined),
    listGroups: async () => groupViews(memory.groups, memory.users),
    getGroup: async (name) => (memory.groups.has(name) ? groupViewOf(name) : undefined),
    exportAll: async () => {
      const data: UsersFileData = { users: {}, groups: {}, anonymous: { enabled: false, home: 'pub' } };
      for (const [name, { createdAt: _c, updatedAt: _u, ...record }] of [...memory.users].sort(([a], [b]) => (a < b ? -1 : 1))) data.users[name] = record;
      for (const [name, { createdAt: _c, updatedAt: _u, ...record }] of [...memory.groups].sort(([a], [b]) => (a < b ? -1 : 1))) data.groups[name] = record;
      return data;
    },

    async createUser(name, record, by) {
      const valid = validUser(name, record);
      await transaction(
        async (client) => {
          await requireGroups(client, valid.groups);
          const values = userValues(valid);
          await client.query(`INSERT INTO ftp_users (name, ${USER_COLUMNS}) VALUES ($1, ${placeholders(values.length, 2)})`, [name, ...values]);
          await writeMemberships(client, name, valid.groups);
          await writeKeys(client, name, valid.publicKeys);
          await insertAudit(client, by, 'user.create', name, { after: auditUser(valid) });
        },
        { conflict: `user "${name}" already exists` },
      );
      await settle({ users: [name] });
      return viewOf(name, valid);
    },

    async updateUser(name, change: UserChange, by) {
      const written = await transaction(async (client) => {
        const before = await lockUser(client, name);
        const after = validUser(name, applyChange(before, change, USER_FIELDS, USER_REQUIRED));
        if (change.groups) await requireGroups(client, after.groups);
        await client.query(`UPDATE ftp_users SET ${assignments(USER_COLUMNS, 2)}, updated_at = now() WHERE name = $1`, [name, ...userValues(after)]);
        if (change.groups) await writeMemberships(client, name, after.groups);
        const passwordChanged = before.password !== after.password;
        await insertAudit(client, by, 'user.update', name, { before: auditUser(before), after: auditUser(after, passwordChanged) });
        return after;
      });
      await settle({ users: [name] });
      return viewOf(name, written);
    },

    async deleteUser(name, by) {
      await transaction(async (client) => {
        const before = await lockUser(client, name);
        await client.query('DELETE FROM ftp_users WHERE name = $1', [name]);
        await insertAudit(client, by, 'user.delete', name, { before: auditUser(before) });
      });
      await settle({ users: [name] });
    },

    async addPublicKeys(name, keys, by) {
      const written = await transaction(async (client) => {
        const before = await lockUser(client, name);
        for (const key of keys)
          if (before.publicKeys.some((k) => k.data.equals(key.data))) throw new UserStoreError('conflict', `user "${name}" already has key ${key.fingerprint}`);
        const after = validUser(name, { ...before, publicKeys: [...before.publicKeys, ...keys] });
        await writeKeys(client, name, after.publicKeys.slice(before.publicKeys.length), before.publicKeys.length);
        await client.query('UPDATE ftp_users SET updated_at = now() WHERE name = $1', [name]);
        await insertAudit(client, by, 'user.add-keys', name, { after: { public_keys: keys.map(formatAuthorizedKey) } });
        return after;
      });
      await settle({ users: [name] });
      return viewOf(name, written);
    },

    async removePublicKey(name, fingerprint, by) {
      const written = await transaction(async (client) => {
        const before = await lockUser(client, name);
        const key = before.publicKeys.find((k) => k.fingerprint === fingerprint);
        if (!key) throw notFound(`key ${fingerprint} of user "${name}"`);
        const methods = effectiveSettings(before, (g) => memory.groups.get(g)).authMethods;
        if (before.publicKeys.length === 1 && methods?.includes('publickey'))
          throw new UserStoreError('conflict', `${fingerprint} is the last key of "${name}", whose auth methods require one: add another key or change the methods first`);
        await client.query('DELETE FROM ftp_public_keys WHERE user_name = $1 AND fingerprint = $2', [name, fingerprint]);
        await client.query('UPDATE ftp_users SET updated_at = now() WHERE name = $1', [name]);
        await insertAudit(client, by, 'user.remove-key', name, { before: { public_keys: [formatAuthorizedKey(key)] } });
        return { ...before, publicKeys: before.publicKeys.filter((k) => k !== key) };
      });
      await settle({ users: [name] });
      return viewOf(name, written);
    },

    async createGroup(name, record, by) {
      const valid = validGroup(name, record);
      await transaction(
        async (client) => {
          const values = groupValues(valid);
          await client.query(`INSERT INTO ftp_groups (name, ${GROUP_COLUMNS}) VALUES ($1, ${placeholders(values.length, 2)})`, [name, ...values]);
          await insertAudit(client, by, 'group.create', name, { after: groupDocument(valid) });
        },
        { conflict: `group "${name}" already exists` },
      );
      await settle({ groups: [name] });
      return groupViewOf(name, valid);
    },

    async updateGroup(name, change: GroupChange, by) {
      const written = await transaction(async (client) => {
        const { rows } = await client.query(`${SELECT_GROUPS(true)} FOR UPDATE`, [[name]]);
        if (rows.length === 0) throw notFound(`group "${name}"`);
        const parsed = groupFromRow(rows[0]);
        const before = 'problems' in parsed ? {} : parsed.record;
        const after = validGroup(name, applyChange(before, change, GROUP_FIELDS, []));
        await client.query(`UPDATE ftp_groups SET ${assignments(GROUP_COLUMNS, 2)}, updated_at = now() WHERE name = $1`, [name, ...groupValues(after)]);
        await insertAudit(client, by, 'group.update', name, { before: groupDocument(before), after: groupDocument(after) });
        return after;
      });
      await settle({ groups: [name] });
      return groupViewOf(name, written);
    },

    async deleteGroup(name, by) {
      await transaction(async (client) => {
        const { rows } = await client.query(`${SELECT_GROUPS(true)} FOR UPDATE`, [[name]]);
        if (rows.length === 0) throw notFound(`group "${name}"`);
        const members = await client.query<{ user_name: string }>('SELECT user_name FROM ftp_user_groups WHERE group_name = $1 ORDER BY user_name', [name]);
        if (members.rows.length > 0)
          throw new UserStoreError('conflict', `group "${name}" still has members: ${members.rows.map((r) => r.user_name).join(', ')} (remove it from them first)`);
        await client.query('DELETE FROM ftp_groups WHERE name = $1', [name]);
        const parsed = groupFromRow(rows[0]);
        await insertAudit(client, by, 'group.delete', name, { before: 'problems' in parsed ? undefined : groupDocument(parsed.record) });
      });
      await settle({ groups: [name] });
    },

    async importAll(data, by, importOptions = {}) {
      const users = Object.entries(data.users).map(([name, record]) => [name, validUser(name, record)] as const);
      const groups = Object.entries(data.groups).map(([name, record]) => [name, validGroup(name, record)] as const);
      const labels = [...new Set(users.flatMap(([, u]) => u.groups))].filter((g) => !Object.hasOwn(data.groups, g));
      for (const label of labels) checkName('group', label);
      await transaction(async (client) => {
        for (const [name, record] of groups) await upsertGroup(client, name, record);
        // Groups a user names without defining them (labels in older users files) become empty groups.
        if (labels.length > 0) await client.query('INSERT INTO ftp_groups (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING', [labels]);
        for (const [name, record] of users) await upsertUser(client, name, record);
        if (importOptions.prune) {
          await client.query('DELETE FROM ftp_users WHERE name <> ALL($1)', [users.map(([n]) => n)]);
          await client.query('DELETE FROM ftp_groups WHERE name <> ALL($1)', [[...groups.map(([n]) => n), ...labels]]);
        }
        await insertAudit(client, by, 'users.import', undefined, { after: { users: users.length, groups: groups.length + labels.length, prune: Boolean(importOptions.prune) } });
      });
      await loadAll().catch((err: Error) => log.warn({ err: err.message }, 'user store: reload after an import failed; the change notifications will bring it'));
      return { users: users.length, groups: groups.length + labels.length };
    },

    async createToken(input, by) {
      checkName('token', input.name);
      const scopes = [...new Set(input.scopes)];
      const unknown = scopes.filter((s) => !(ADMIN_SCOPES as readonly string[]).includes(s));
      if (scopes.length === 0 || unknown.length > 0) throw invalid(`token.scopes: expected some of ${ADMIN_SCOPES.join(', ')}${unknown.length ? `, got ${unknown.join(', ')}` : ''}`);
      const errors: string[] = [];
      const expiresAt = parseTimestamp(input.expiresAt, 'token.expires_at', errors);
      if (errors.length > 0) throw invalid(errors.join('; '));
      const token = `ftpat_${randomBytes(32).toString('base64url')}`;
      await transaction(
        async (client) => {
          await client.query('INSERT INTO ftp_admin_tokens (name, token_sha256, scopes, created_by, expires_at) VALUES ($1, $2, $3, $4, $5)', [
            input.name,
            sha256(token),
            scopes,
            by.name,
            expiresAt ?? null,
          ]);
          await insertAudit(client, by, 'token.create', input.name, { after: { scopes, expires_at: expiresAt } });
        },
        { conflict: `token "${input.name}" already exists` },
      );
      await settle({ tokens: [input.name] });
      const info = [...memory.tokens.values()].find((t) => t.name === input.name) ?? {
        name: input.name,
        scopes,
        createdAt: new Date().toISOString(),
        createdBy: by.name,
        ...(expiresAt ? { expiresAt } : {}),
      };
      return { token, info: { ...info } };
    },

    verifyToken(token) {
      if (typeof token !== 'string' || !token.startsWith('ftpat_')) return undefined;
      const hash = sha256(token).toString('hex');
      const info = memory.tokens.get(hash);
      if (!info || (info.expiresAt && Date.parse(info.expiresAt) <= Date.now())) return undefined;
      // Best effort and at most once a minute per token: an outage must not fail the API call that uses it.
      if (!info.lastUsedAt || Date.now() - Date.parse(info.lastUsedAt) > 60_000) {
        info.lastUsedAt = new Date().toISOString();
        pool.query('UPDATE ftp_admin_tokens SET last_used_at = now() WHERE name = $1', [info.name]).catch(() => {});
      }
      return { ...info };
    },

    listTokens: async () => [...memory.tokens.values()].map((t) => ({ ...t })).sort(byName),

    async revokeToken(name, by) {
      await transaction(async (client) => {
        const { rowCount } = await client.query('DELETE FROM ftp_admin_tokens WHERE name = $1', [name]);
        if (!rowCount) throw notFound(`token "${name}"`);
        await insertAudit(client, by, 'token.revoke', name);
      });
      await settle({ tokens: [name] });
    },

    async audit(by, action, target, change) {
      try {
        await insertAudit(pool, by, action, target, change);
      } catch (err) {
        throw storeError(err);
      }
    },

    async listAudit(query = {}) {
      const limit = Math.min(Math.max(query.limit ?? 100, 1), 1000);
      try {
        const { rows } = await pool.query(
          `SELECT id, at, actor, via, address, action, target, before, after FROM ftp_admin_audit
           WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR target = $2) ORDER BY id DESC LIMIT $3`,
          [query.beforeId ?? null, query.target ?? null, limit],
        );
        return rows.map((r): AuditEntry => {
          const entry: AuditEntry = { id: Number(r.id), at: (r.at as Date).toISOString(), actor: r.actor, action: r.action };
          if (r.via !== null) entry.via = r.via;
          if (r.address !== null) entry.address = r.address;
          if (r.target !== null) entry.target = r.target;
          if (r.before !== null) entry.before = r.before;
          if (r.after !== null) entry.after = r.after;
          return entry;
        });
      } catch (err) {
        throw storeError(err);
      }
    },

    health(): UserStoreHealth {
      const users = memory.users.size;
      const loaded = new Date(state.loadedAt).toISOString();
      const detail = state.up
        ? `PostgreSQL: ${users} users, listening for changes`
        : `PostgreSQL unreachable since ${new Date(state.since).toISOString()} (${state.problem}): logins go on from the ${users} users loaded at ${loaded}; writes fail until it is back`;
      return { backend: 'postgres', up: state.up, detail, users, loadedAt: state.loadedAt, since: state.since };
    },

    async close() {
      await feed.close();
      await loads.catch(() => {});
      await pool.end().catch(() => {});
    },
  };
  return store;
}

