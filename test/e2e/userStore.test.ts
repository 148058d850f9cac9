// An edge whose users live in PostgreSQL (FTP_USER_STORE=postgres, from FTP_USERS_DATABASE_URL), driven by real FTP,
// FTPS and SFTP clients: `protocols` and `expires_at` are enforced at login whatever the front door, and a change
// written by another replica (this test's own store on the same database) is in force on the edge within a second.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client, FTPError } from 'basic-ftp';
import { createPostgresStore, hashPassword, type PostgresStore, type UserRecord } from '@ftp/identity';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { closeClient, sshConnect, startSftpServer, waitForLog, type LogLine } from '../support/sftpClient';
import type { TestServer } from '../support/server';

const PASSWORD = 'partner-password-3';
const BY = { name: 'e2e', via: 'test' };

let db: TestDatabase;
let tmp: string;
let admin: PostgresStore;
let server: TestServer;
let hash: string;

const user = (extra: Partial<UserRecord>): UserRecord => ({ password: hash, home: 'x', groups: [], disabled: false, publicKeys: [], ...extra });

before(async () => {
  db = await createTestDatabase('e2e_user_store');
  tmp = mkdtempSync(join(tmpdir(), 'e2e-user-store-'));
  hash = await hashPassword(PASSWORD);
  // "Another replica": writes go through it, the edge hears of them by NOTIFY.
  admin = await createPostgresStore({ connection: db.url, dataRoot: join(tmp, 'unused') });
  await admin.createGroup('partners', { protocols: ['sftp', 'ftps'], permissions: { '/': ['list', 'download', 'upload'] } }, BY);
  await admin.createUser('sftponly', user({ home: 'sftponly', protocols: ['sftp'] }), BY);
  await admin.createUser('ftponly', user({ home: 'ftponly', protocols: ['ftp'] }), BY);
  await admin.createUser('partner', user({ home: 'partner', groups: ['partners'] }), BY);
  await admin.createUser('expired', user({ home: 'expired', expiresAt: '2001-01-01T00:00:00.000Z' }), BY);
  server = await startSftpServer({ env: { FTP_USERS_DATABASE_URL: db.url, FTP_BAN_AFTER_FAILURES: '1000' } });
});

after(async () => {
  await server?.close();
  await admin?.close();
  await db?.drop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** FTP login (clear, or explicit FTPS): 230 → 'ok', else the reply code. */
async function ftpLogin(name: string, secure = false): Promise<'ok' | number> {
  const client = new Client(10_000);
  try {
    await client.access({ host: '127.0.0.1', port: server.port, user: name, password: PASSWORD, secure, secureOptions: { rejectUnauthorized: false } });
    await client.list();
    return 'ok';
  } catch (err) {
    if (err instanceof FTPError) return err.code;
    throw err;
  } finally {
    client.close();
  }
}

/** SFTP password login with ssh2's client: 'ok' or 'refused'. */
async function sftpLogin(name: string): Promise<'ok' | 'refused'> {
  try {
    await closeClient(await sshConnect({ port: server.edge.sftpPort, username: name, password: PASSWORD, tryKeyboard: false }));
    return 'ok';
  } catch (err) {
    if ((err as { level?: string }).level === 'client-authentication') return 'refused';
    throw err;
  }
}

const failure = (name: string, reason: string, mark: number) => (l: LogLine) =>
  server.logs.indexOf(l) >= mark && l.event === 'login' && l.result === 'failure' && l.user === name && l.reason === reason;

test('the edge takes its users from PostgreSQL (not the users file) and reports the store in /readyz terms and metrics', async () => {
  assert.equal(server.edge.userStore.backend, 'postgres');
  assert.equal(server.edge.userStore.health().up, true);
  assert.match(server.edge.userStore.health().detail, /PostgreSQL: 4 users/);
  assert.equal(await ftpLogin(server.user), 530, "the users file's alice is not a user here");
  const metrics = await server.edge.metrics.registry.getSingleMetricAsString('ftp_user_store_up');
  assert.match(metrics, /ftp_user_store_up\{backend="postgres"\} 1/);
});

test('protocols over FTP: an SFTP-only user gets the wrong-password reply, the log says why; ftp admits FTPS too', async () => {
  const mark = server.logs.length;
  assert.equal(await ftpLogin('sftponly'), 530);
  await waitForLog(server, failure('sftponly', 'protocol-not-allowed', mark), 'sftponly refused over FTP');
  assert.equal(await ftpLogin('sftponly', true), 530, 'nor over FTPS');
  assert.equal(await ftpLogin('ftponly'), 'ok');
  assert.equal(await ftpLogin('ftponly', true), 'ok', '`ftp` admits FTP over TLS');
  // partner takes [sftp, ftps] from its group: FTP only over TLS.
  assert.equal(await ftpLogin('partner'), 530);
  await waitForLog(server, failure('partner', 'protocol-not-allowed', mark), 'partner refused over clear FTP');
  assert.equal(await ftpLogin('partner', true), 'ok');
});

test('protocols over SFTP: an FTP-only user is refused (logged), the others get in', async () => {
  const mark = server.logs.length;
  assert.equal(await sftpLogin('sftponly'), 'ok');
  assert.equal(await sftpLogin('partner'), 'ok');
  assert.equal(await sftpLogin('ftponly'), 'refused');
  await waitForLog(server, failure('ftponly', 'protocol-not-allowed', mark), 'ftponly refused over SFTP');
});

test('expires_at: an expired account is refused through every front door', async () => {
  const mark = server.logs.length;
  assert.equal(await ftpLogin('expired'), 530);
  assert.equal(await sftpLogin('expired'), 'refused');
  await waitForLog(server, (l) => failure('expired', 'expired', mark)(l) && l.protocol !== 'sftp', 'expired refused over FTP');
  const refusals = server.logs.slice(mark).filter(failure('expired', 'expired', mark));
  assert.equal(refusals.length, 2, JSON.stringify(refusals));
  // Extended by another replica: in force at once.
  await admin.updateUser('expired', { expiresAt: new Date(Date.now() + 3_600_000).toISOString() }, BY);
  await until(async () => (await server.edge.userStore.getUser('expired'))?.expiresAt !== '2001-01-01T00:00:00.000Z', 'extension on the edge', 1000);
  assert.equal(await ftpLogin('expired'), 'ok');
});

test('a user created, disabled or re-protocolled on another replica is in force on this edge within 1 s', async () => {
  const edgeStore = server.edge.userStore;
  // Timed until the edge's store has the change (a login's scrypt run would time the CPU), then tried for real.
  let started = Date.now();
  await admin.createUser('newcomer', user({ home: 'newcomer', protocols: ['ftp'] }), BY);
  await until(async () => (await edgeStore.getUser('newcomer')) !== undefined, 'new user on the edge', 1000);
  const created = Date.now() - started;
  assert.equal(await ftpLogin('newcomer'), 'ok');

  started = Date.now();
  await admin.updateUser('newcomer', { disabled: true }, BY);
  await until(async () => (await edgeStore.getUser('newcomer'))?.disabled === true, 'disabled on the edge', 1000);
  const disabled = Date.now() - started;
  assert.equal(await ftpLogin('newcomer'), 530);

  started = Date.now();
  await admin.updateGroup('partners', { protocols: ['ftp', 'sftp'] }, BY);
  await until(async () => (await edgeStore.getGroup('partners'))?.protocols?.includes('ftp') === true, "the group's change on the edge", 1000);
  const group = Date.now() - started;
  assert.equal(await ftpLogin('partner'), 'ok', "the group's change reaches its member");
  assert.ok(created < 1000 && disabled < 1000 && group < 1000, `${created}, ${disabled}, ${group} ms`);
});

async function until(probe: () => Promise<boolean>, what: string, ms: number) {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
