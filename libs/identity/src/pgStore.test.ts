// The PostgreSQL user store against the real server: the contract shared with the users file, then what only it does
// (replicas hearing of changes, outages, migrations, tokens and the audit trail). One database for this file, one
// schema per store family, dropped at the end.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../test/support/postgres';
import { startTcpProxy } from '../../../test/support/tcpProxy';
import { hashPassword } from './password';
import { migrateUserStore, MIGRATIONS_DIR } from './pgMigrate';
import { createPostgresStore, type PostgresStore, type PostgresStoreOptions } from './pgStore';
import type { UserRecord } from './records';
import { isUserStoreError, type Actor } from './store';
import { eventually, userStoreContract } from './storeContract';

let db: TestDatabase;
let dir: string;
let hash: string;
const stores = new Set<PostgresStore>();
let schemas = 0;

before(async () => {
  db = await createTestDatabase('pgstore');
  dir = await mkdtemp(path.join(tmpdir(), 'identity-pg-'));
  hash = await hashPassword('pw');
});
after(async () => {
  for (const store of stores) await store.close();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

const BY: Actor = { name: 'tester', via: 'test' };
const user = (extra: Partial<UserRecord> = {}): UserRecord => ({ password: hash, home: 'x', groups: [], disabled: false, publicKeys: [], ...extra });
const SETTLE = { pingMs: 200, pingTimeoutMs: 300 };

/** A fresh schema; `open` starts a store (a replica) on it. */
async function family(connection?: pg.ClientConfig) {
  const config = connection ?? (await db.schema(`s${schemas++}`));
  const open = async (options: Partial<PostgresStoreOptions> = {}) => {
    const store = await createPostgresStore({ connection: config, dataRoot: path.join(dir, 'data'), ...SETTLE, ...options });
    stores.add(store);
    return store;
  };
  return { config, open };
}

userStoreContract('postgres', {
  writable: true,
  async open(seed, options) {
    const { open } = await family();
    const store = await open(options);
    await store.importAll(seed, BY);
    // "Another replica" changes the source: a second store on the same schema writes, this one hears of it.
    const other = await open();
    return { store, replaceSource: async (data) => void (await other.importAll(data, BY, { prune: true })) };
  },
});

test('postgres: a write on one replica is in force on another within 1 s (LISTEN/NOTIFY), both ways', async () => {
  const { open } = await family();
  const [a, b] = await Promise.all([open(), open()]);
  const timings: number[] = [];
  for (let i = 0; i < 5; i++) {
    // Timed from the write's start to the other replica having it (a login's scrypt run would time the CPU).
    let started = Date.now();
    await a.createUser(`u${i}`, user({ home: `u${i}` }), BY);
    await eventually(async () => (await b.getUser(`u${i}`)) !== undefined, `u${i} on replica b`);
    timings.push(Date.now() - started);
    assert.equal((await b.authenticate(`u${i}`, 'pw', '10.0.0.1', 'ftp')).ok, true);
    started = Date.now();
    await b.updateUser(`u${i}`, { disabled: true }, BY);
    await eventually(async () => (await a.getUser(`u${i}`))?.disabled === true, `u${i} disabled on replica a`);
    timings.push(Date.now() - started);
    assert.deepEqual(await a.authenticate(`u${i}`, 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'disabled' });
  }
  assert.ok(Math.max(...timings) < 1000, `write → in force on the other replica: ${timings.join(', ')} ms`);
  // A change made by hand in SQL is announced by the triggers as well.
  await db.query(`UPDATE ${'s' + (schemas - 1)}.ftp_users SET disabled = false WHERE name = 'u0'`);
  await eventually(async () => (await a.authenticate('u0', 'pw', '10.0.0.1', 'ftp')).ok, 'hand-made SQL change seen');
});

test('postgres: unavailable → logins go on from memory (cache included), writes fail as unavailable, it recovers by itself', async () => {
  const { config } = await family();
  const direct = await createPostgresStore({ connection: config, dataRoot: path.join(dir, 'data'), ...SETTLE });
  stores.add(direct);
  await direct.createUser('partner', user({ home: 'partner' }), BY);
  await direct.createUser('changed', user({ home: 'changed' }), BY);

  // This replica reaches PostgreSQL through a relay that the test cuts.
  const target = new URL(db.url);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  const logs: string[] = [];
  const log = { info: (_: object, m: string) => logs.push(m), warn: (_: object, m: string) => logs.push(m), error: (_: object, m: string) => logs.push(m) };
  const viaProxy = { ...config, connectionString: undefined, host: '127.0.0.1', port: proxy.port, user: target.username || 'postgres', database: db.name };
  const replica = await createPostgresStore({ connection: viaProxy, dataRoot: path.join(dir, 'data'), ...SETTLE, connectTimeoutMs: 500, log, migrate: false });
  stores.add(replica);
  assert.equal((await replica.authenticate('partner', 'pw', '10.0.0.1', 'ftp')).ok, true);
  assert.equal(replica.health().up, true);

  await proxy.cut();
  await eventually(async () => !replica.health().up, 'health reports the outage', 2000);
  assert.match(replica.health().detail, /unreachable since .*logins go on from the \d+ users loaded at/);
  assert.ok(logs.some((m) => /PostgreSQL unreachable/.test(m)), 'one error line says so');
  // Logins: from memory, the verified-password cache included; and a password never seen before is still checked.
  assert.equal((await replica.authenticate('partner', 'pw', '10.0.0.1', 'ftp')).ok, true);
  assert.equal((await replica.authenticate('changed', 'pw', '10.0.0.1', 'ftp')).ok, true);
  assert.deepEqual(await replica.authenticate('partner', 'nope', '10.0.0.1', 'ftp'), { ok: false, reason: 'bad-password' });
  await assert.rejects(replica.updateUser('partner', { disabled: true }, BY), (err) => isUserStoreError(err, 'unavailable'));
  await assert.rejects(replica.createUser('x', user(), BY), (err) => isUserStoreError(err, 'unavailable'));

  // Meanwhile another replica changes users: notifications this one will never get.
  await direct.updateUser('changed', { disabled: true }, BY);
  await direct.createUser('newcomer', user({ home: 'newcomer' }), BY);
  assert.equal((await replica.authenticate('changed', 'pw', '10.0.0.1', 'ftp')).ok, true, 'stale, but logged in');

  await proxy.reopen();
  await eventually(async () => replica.health().up, 'recovers by itself', 5000);
  assert.deepEqual(await replica.authenticate('changed', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'disabled' }, 'reloaded everything');
  assert.equal((await replica.authenticate('newcomer', 'pw', '10.0.0.1', 'ftp')).ok, true);
  assert.ok(logs.some((m) => /PostgreSQL is back/.test(m)));
  await replica.updateUser('partner', { description: 'writes work again' }, BY);
  await eventually(async () => (await direct.getUser('partner'))?.description === 'writes work again', 'write seen by the other replica');
  await proxy.cut();
});

test('postgres: connections terminated by the server (pg_terminate_backend) are re-opened and nothing is missed', async () => {
  const { open } = await family();
  const [a, b] = await Promise.all([open(), open()]);
  await a.createUser('t1', user({ home: 't1' }), BY);
  await eventually(async () => (await b.authenticate('t1', 'pw', '10.0.0.1', 'ftp')).ok, 'seen');
  // Every connection of the stores (pools and LISTEN connections), as an admin or a failover would.
  await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name LIKE 'ftp-user-store%'`, [db.name]);
  // A change while b reconnects; b gets it either as a notification or through the reload after it reconnected.
  await eventually(
    async () => {
      try {
        await a.updateUser('t1', { disabled: true }, BY);
        return true;
      } catch {
        return false;
      }
    },
    'a writes again',
    3000,
  );
  await eventually(async () => (await b.authenticate('t1', 'pw', '10.0.0.1', 'ftp')).ok === false, 'b sees the change', 3000);
  await eventually(async () => b.health().up, 'b listening again', 3000);
});

test('postgres: a row made invalid by hand is skipped with an error line; the others still log in', async () => {
  const { config, open } = await family();
  const store = await open();
  await store.createUser('good', user({ home: 'good' }), BY);
  await store.createUser('bad', user({ home: 'bad' }), BY);
  const schema = String(config.options).split('=')[1];
  await db.query(`UPDATE ${schema}.ftp_users SET password = 'scrypt$plaintext' WHERE name = 'bad'`);
  await eventually(async () => (await store.authenticate('bad', 'pw', '10.0.0.1', 'ftp')).ok === false, 'bad user out');
  assert.deepEqual(await store.authenticate('bad', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'unknown-user' });
  assert.equal((await store.authenticate('good', 'pw', '10.0.0.1', 'ftp')).ok, true);
  await assert.rejects(store.updateUser('bad', { disabled: true }, BY), (err) => isUserStoreError(err, 'invalid') && /malformed scrypt hash/.test((err as Error).message));
  await store.importAll({ users: { bad: user({ home: 'bad' }) }, groups: {}, anonymous: { enabled: false, home: 'pub' } }, BY);
  assert.equal((await store.authenticate('bad', 'pw', '10.0.0.1', 'ftp')).ok, true, 'replacing the row fixes it');
});

test('postgres: migrations run once however many replicas start together, and an edited migration is refused', async () => {
  const { config } = await family();
  const results = await Promise.all([1, 2, 3].map(() => migrateUserStore(config)));
  assert.deepEqual(results.map((r) => r.applied.length).sort(), [0, 0, 2]);
  assert.ok(results.every((r) => r.to === 2));
  assert.deepEqual(await migrateUserStore(config), { from: 2, to: 2, applied: [] });

  const copy = path.join(dir, 'migrations-edited');
  await cp(MIGRATIONS_DIR, copy, { recursive: true });
  const file = path.join(copy, '001.do.user-store.sql');
  await writeFile(file, `${await readFile(file, 'utf8')}\n-- edited after it ran\n`);
  await assert.rejects(migrateUserStore(config, { migrationsDir: copy }), /MD5 checksum failed for migration \[1\]/);
});

test('postgres: admin tokens (hashed, from memory on every replica) and the audit trail of every write', async () => {
  const { config, open } = await family();
  const [a, b] = await Promise.all([open(), open()]);
  const { token, info } = await a.createToken({ name: 'ci', scopes: ['users:read', 'sessions:read'] }, BY);
  assert.match(token, /^ftpat_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(info.scopes, ['users:read', 'sessions:read']);
  assert.equal(info.createdBy, 'tester');
  const schema = String(config.options).split('=')[1];
  const stored = await db.query(`SELECT token_sha256 FROM ${schema}.ftp_admin_tokens WHERE name = 'ci'`);
  assert.equal(stored.rows[0].token_sha256.length, 32, 'only the SHA-256 is kept');
  assert.ok(!JSON.stringify(stored.rows).includes(token));
  await eventually(async () => b.verifyToken(token)?.name === 'ci', 'token known on replica b');
  assert.equal(b.verifyToken(`${token}x`), undefined);
  assert.equal(b.verifyToken('nope'), undefined);
  await assert.rejects(a.createToken({ name: 'ci', scopes: ['users:read'] }, BY), (err) => isUserStoreError(err, 'conflict'));
  await assert.rejects(a.createToken({ name: 'x', scopes: ['root' as never] }, BY), (err) => isUserStoreError(err, 'invalid'));
  const expired = await a.createToken({ name: 'old', scopes: ['users:read'], expiresAt: '2000-01-01' }, BY);
  assert.equal(a.verifyToken(expired.token), undefined, 'expired');
  assert.deepEqual(
    (await a.listTokens()).map((t) => t.name),
    ['ci', 'old'],
  );
  await b.revokeToken('ci', BY);
  await eventually(async () => a.verifyToken(token) === undefined, 'revoked everywhere');

  await a.createUser('audited', user({ home: 'audited' }), BY);
  const newHash = await hashPassword('new');
  await a.updateUser('audited', { password: newHash, description: 'd' }, { name: 'api-token-1', via: 'api', address: '10.9.9.9' });
  await a.audit({ name: 'api-token-1', via: 'api' }, 'session.kill', 'audited', { before: { session: 's1' } });
  const entries = await a.listAudit({ target: 'audited' });
  assert.deepEqual(
    entries.map((e) => e.action),
    ['session.kill', 'user.update', 'user.create'],
  );
  const update = entries[1];
  assert.equal(update.actor, 'api-token-1');
  assert.equal(update.address, '10.9.9.9');
  assert.deepEqual((update.after as Record<string, unknown>).password, '(changed)');
  assert.equal((update.after as Record<string, unknown>).description, 'd');
  const all = JSON.stringify(await a.listAudit({ limit: 1000 }));
  assert.ok(!all.includes('scrypt$') && !all.includes(token), 'no hashes, no tokens in the audit trail');
  assert.equal((await a.listAudit({ limit: 1 })).length, 1);
  assert.deepEqual(
    (await a.listAudit({ target: 'audited', beforeId: entries[0].id })).map((e) => e.action),
    ['user.update', 'user.create'],
  );
});

test('postgres: a store cannot start without PostgreSQL, and says so', async () => {
  const proxy = await startTcpProxy('127.0.0.1', 1);
  await proxy.cut();
  await assert.rejects(
    createPostgresStore({ connection: { host: '127.0.0.1', port: proxy.port, user: 'postgres', database: db.name }, dataRoot: dir, migrate: false }),
    (err) => isUserStoreError(err, 'unavailable') && /cannot load users/.test((err as Error).message),
  );
});
