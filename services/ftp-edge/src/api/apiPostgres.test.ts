// The admin REST API with users in PostgreSQL (its own database, dropped after), through real HTTP and real FTP and
// SFTP clients: users, groups, keys and passwords changed through the API take effect at login; disabling a user ends
// its live sessions; every write is in the audit table; ftpctl makes the token and drives the API (--api); and with
// PostgreSQL cut off, logins go on while writes answer 503, until it is back.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sshKeygen } from '../../../../libs/identity/src/testKeys';
import { adminApi, eventually, type AdminApi } from '../../../../test/support/adminApi';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres';
import { freeBlock, ROOT } from '../../../../test/support/processes';
import { RawClient } from '../../../../test/support/rawClient';
import type { TestServer } from '../../../../test/support/server';
import { closeClient, sshConnect, startSftpServer } from '../../../../test/support/sftpClient';
import { startTcpProxy } from '../../../../test/support/tcpProxy';

let db: TestDatabase;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
let server: TestServer;
let api: AdminApi;
let token: string;
let tmp: string;

/** ftpctl as an operator runs it: its own process, the environment it needs. */
function ftpctl(args: string[], env: Record<string, string>, stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', 'libs/identity/src/cli/ftpctl.ts', ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

async function ftpLogin(user: string, password: string): Promise<number> {
  const client = await RawClient.connect(server.port);
  try {
    await client.reply();
    await client.command(`USER ${user}`);
    return (await client.command(`PASS ${password}`)).code;
  } finally {
    client.close();
  }
}

before(async () => {
  db = await createTestDatabase('admin_api');
  tmp = mkdtempSync(join(tmpdir(), 'api-pg-'));
  // The edge reaches PostgreSQL through a relay the outage test can cut.
  proxy = await startTcpProxy('127.0.0.1', Number(new URL(db.url).port || 5432));
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  const apiPort = await freeBlock(1, ['127.0.0.1']);
  server = await startSftpServer({ env: { FTP_USERS_DATABASE_URL: viaProxy.href, FTP_API_PORT: String(apiPort), FTP_BAN_AFTER_FAILURES: '1000' } });
  // The token as an operator makes it: ftpctl against the same database, shown once on stdout.
  const made = await ftpctl(['token', 'create', '--name', 'ops', '--scope', 'users:read,users:write', '--scope', 'sessions:read', '--scope', 'sessions:write', '--scope', 'bans:write'], {
    FTP_USERS_DATABASE_URL: db.url,
    USER: 'alice-the-operator',
  });
  assert.equal(made.code, 0, made.stderr);
  token = made.stdout.trim();
  assert.match(token, /^ftpat_/);
  assert.match(made.stderr, /shown only now/);
  api = adminApi(`http://127.0.0.1:${server.edge.apiPort}`, token);
  // The edge learns of the token by NOTIFY.
  await eventually('token known to the edge', async () => (await api.get('/users')).status === 200, 5000);
});

after(async () => {
  await server?.close();
  await proxy?.cut();
  await db?.drop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('users: create (password hashed, never shown), read, change, clear, password, delete — each in force at login', async () => {
  const created = await api.post('/users', { name: 'bob', password: 'bob-password-1', home: 'bob', description: 'partner Bob', permissions: { '/': ['list', 'download', 'upload'] } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.headers.location, '/api/v1/users/bob');
  assert.deepEqual(
    { ...created.body, created_at: undefined, updated_at: undefined },
    { name: 'bob', home: 'bob', description: 'partner Bob', groups: [], permissions: { '/': ['list', 'download', 'upload'] }, disabled: false, public_keys: [], created_at: undefined, updated_at: undefined },
  );
  assert.ok(!JSON.stringify(created.body).includes('scrypt'), 'no hash in the answer');
  assert.equal((await api.post('/users', { name: 'bob', password: 'bob-password-1' })).status, 409, 'the name is taken');
  assert.equal(await ftpLogin('bob', 'bob-password-1'), 230);

  const changed = await api.patch('/users/bob', { description: null, max_sessions: 3, expires_at: '2999-01-01' });
  assert.equal(changed.status, 200);
  assert.equal(changed.body.description, undefined, 'null cleared it');
  assert.equal(changed.body.max_sessions, 3);
  assert.equal(changed.body.expires_at, '2999-01-01T00:00:00.000Z');
  assert.equal((await api.patch('/users/nobody', { description: 'x' })).status, 404);

  assert.equal((await api.put('/users/bob/password', { password: 'bob-password-2' })).status, 204);
  assert.equal(await ftpLogin('bob', 'bob-password-1'), 530);
  assert.equal(await ftpLogin('bob', 'bob-password-2'), 230);
  assert.equal((await api.patch('/users/bob', { protocols: ['sftp'] })).status, 200);
  assert.equal(await ftpLogin('bob', 'bob-password-2'), 530, 'protocols: sftp only');

  assert.equal((await api.delete('/users/bob')).status, 204);
  assert.equal((await api.get('/users/bob')).status, 404);
  assert.equal(await ftpLogin('bob', 'bob-password-2'), 530);
});

test('groups and keys: a group\'s settings reach its members, a group in use cannot go, keys are added and removed by fingerprint', async () => {
  assert.equal((await api.post('/groups', { name: 'partners', description: 'all partners', protocols: ['sftp'], permissions: { '/': ['list'] } })).status, 201);
  assert.equal((await api.post('/users', { name: 'dave', password: 'dave-password', groups: ['partners'] })).status, 201);
  assert.equal((await api.post('/users', { name: 'erin', password: 'erin-password', groups: ['no-such-group'] })).status, 400);
  const group = await api.get('/groups/partners');
  assert.deepEqual([group.body.members, group.body.protocols], [['dave'], ['sftp']]);
  assert.equal(await ftpLogin('dave', 'dave-password'), 530, "the group's protocols (sftp only) apply");
  assert.equal((await api.patch('/groups/partners', { protocols: null })).status, 200);
  assert.equal(await ftpLogin('dave', 'dave-password'), 230, 'cleared on the group: every protocol again');
  const busy = await api.delete('/groups/partners');
  assert.equal(busy.status, 409);
  assert.match(busy.body.message, /still has members: dave/);

  const key = sshKeygen(tmp, 'ed25519', { comment: 'dave@laptop' });
  const added = await api.post('/users/dave/keys', { public_keys: [key.line] });
  assert.equal(added.status, 201);
  assert.deepEqual(added.body.public_keys, [key.line]);
  assert.equal((await api.post('/users/dave/keys', { public_keys: [key.line] })).status, 409, 'already one of its keys');
  assert.deepEqual((await api.get('/users/dave/keys')).body.items, [{ fingerprint: key.fingerprint, type: 'ssh-ed25519', comment: 'dave@laptop', line: key.line }]);
  const ssh = await sshConnect({ port: server.edge.sftpPort, username: 'dave', privateKey: (await import('node:fs')).readFileSync(key.privateFile) });
  await closeClient(ssh);
  assert.equal((await api.delete(`/users/dave/keys/${encodeURIComponent(key.fingerprint)}`)).status, 200);
  assert.deepEqual((await api.get('/users/dave/keys')).body.items, []);
  assert.equal((await api.delete(`/users/dave/keys/${encodeURIComponent(key.fingerprint)}`)).status, 404);

  assert.equal((await api.delete('/users/dave')).status, 204);
  assert.equal((await api.delete('/groups/partners')).status, 204);
});

test('disabling a user through the API refuses its logins and ends its live FTP and SFTP sessions within a second', async () => {
  assert.equal((await api.post('/users', { name: 'frank', password: 'frank-password' })).status, 201);
  const ftp = await RawClient.connect(server.port);
  await ftp.login('frank', 'frank-password');
  const ssh = await sshConnect({ port: server.edge.sftpPort, username: 'frank', password: 'frank-password', tryKeyboard: false });
  ssh.on('error', () => {});
  const sshClosed = new Promise<number>((resolve) => ssh.once('close', () => resolve(Date.now())));
  await eventually('both sessions registered', async () => (await api.get('/sessions?user=frank')).body.items.length === 2);

  const started = Date.now();
  const res = await api.patch('/users/frank', { disabled: true });
  assert.equal(res.status, 200);
  assert.equal(res.body.disabled, true);
  assert.equal((await ftp.reply(1000)).code, 421);
  await ftp.waitClosed(1000);
  assert.ok((await sshClosed) - started < 1000, 'SSH disconnected within a second');
  assert.equal(await ftpLogin('frank', 'frank-password'), 530);
  await assert.rejects(sshConnect({ port: server.edge.sftpPort, username: 'frank', password: 'frank-password', tryKeyboard: false }));
  assert.equal((await api.patch('/users/frank', { disabled: false })).status, 200);
  assert.equal(await ftpLogin('frank', 'frank-password'), 230);

  // The audit table: the store's own rows for its writes, the API's for ending sessions; who, through what, from where.
  const { rows } = await db.query("SELECT actor, via, address, action, target, before, after FROM ftp_admin_audit WHERE target = 'frank' ORDER BY id");
  assert.deepEqual(rows.map((r) => r.action), ['user.create', 'user.update', 'user.sessions.end', 'user.update']);
  for (const row of rows) assert.deepEqual([row.actor, row.via, row.address], ['ops', 'api', '127.0.0.1']);
  assert.equal(rows[1].after.disabled, true);
  assert.deepEqual(rows[2].after, { reason: 'user disabled', sessions: 2 });
  assert.ok(!JSON.stringify(rows).includes('scrypt$'), 'no password hash in the audit trail');
  const tokenRows = await db.query("SELECT actor, via FROM ftp_admin_audit WHERE action = 'token.create'");
  assert.deepEqual(tokenRows.rows, [{ actor: 'alice-the-operator', via: 'ftpctl' }]);
});

test('ftpctl --api drives the running edge: user add/list/passwd/add-key/disable, sessions list/kill, bans list/lift', async () => {
  const env = { FTPCTL_TOKEN: token };
  const url = `http://127.0.0.1:${server.edge.apiPort}`;
  const add = await ftpctl(['--api', url, 'user', 'add', 'grace', '--password-stdin', '--perm', '/=list,download'], env, 'grace-password\n');
  assert.equal(add.code, 0, add.stderr);
  assert.equal(await ftpLogin('grace', 'grace-password'), 230);
  const list = await ftpctl(['--api', url, 'user', 'list'], env);
  assert.match(list.stdout, /^grace\s+grace\s/m);
  assert.equal((await ftpctl(['--api', url, 'user', 'passwd', 'grace', '--password-stdin'], env, 'grace-password-2\n')).code, 0);
  assert.equal(await ftpLogin('grace', 'grace-password-2'), 230);
  const key = sshKeygen(tmp, 'ed25519');
  const addKey = await ftpctl(['--api', url, 'user', 'add-key', 'grace'], env, `${key.line}\n`);
  assert.equal(addKey.stdout.trim(), `added key ${key.fingerprint} to grace`);

  const ftp = await RawClient.connect(server.port);
  await ftp.login('grace', 'grace-password-2');
  const sessions = await eventually('listed by ftpctl', async () => {
    const out = await ftpctl(['--api', url, 'sessions', 'list', '--user', 'grace'], env);
    return out.stdout.split('\n').length >= 3 ? out.stdout : undefined;
  });
  const [header, row] = sessions.split('\n');
  assert.match(header, /^ID\s+USER\s+PROTO\s+CLIENT\s+REPLICA\s+STARTED\s+COMMAND\s+TRANSFER$/);
  const id = row.split(/\s+/)[0];
  assert.match(row, new RegExp(`^${id}\\s+grace\\s+ftp\\s+127\\.0\\.0\\.1\\s+${server.config.replicaId}\\s`));
  const kill = await ftpctl(['--api', url, 'sessions', 'kill', id], env);
  assert.equal(kill.stdout.trim(), `asked ${server.config.replicaId} to end session ${id}`);
  assert.equal((await ftp.reply(1000)).code, 421);

  assert.equal((await ftpctl(['--api', url, 'user', 'disable', 'grace'], env)).code, 0);
  assert.equal(await ftpLogin('grace', 'grace-password-2'), 530);
  assert.match((await ftpctl(['--api', url, 'bans', 'list'], env)).stdout, /^ADDRESS\s+UNTIL$/m);
  const lift = await ftpctl(['--api', url, 'bans', 'lift', '192.0.2.7'], env);
  assert.equal(lift.code, 1);
  assert.match(lift.stderr, /404 192\.0\.2\.7 is not banned/);
  const refused = await ftpctl(['--api', url, 'user', 'list'], { FTPCTL_TOKEN: 'ftpat_wrong' });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /401 unknown, revoked or expired token/);
  assert.equal((await ftpctl(['--api', url, 'user', 'list'], {})).code, 2, 'no token: a usage error');
});

test('limits through the API and ftpctl --api: user set (PATCH of the whole limits), user show (own, in force, usage), quota scan', async () => {
  const env = { FTPCTL_TOKEN: token };
  const url = `http://127.0.0.1:${server.edge.apiPort}`;
  assert.equal((await api.post('/groups', { name: 'metered', limits: { quota_bytes: 1_000_000, bandwidth_down: 0, sessions_per_minute: 5 } })).status, 201);
  const created = await api.post('/users', { name: 'judy', password: 'judy-password', groups: ['metered'], limits: { quota_files: 0 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.deepEqual(created.body.limits, { quota_files: 0 }, '0 is stored: none');

  let r = await ftpctl(['--api', url, 'user', 'set', 'judy', '--daily-download-bytes', '1G', '--bandwidth-up', '64K'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `limits of judy: quota_files=none daily_download_bytes=${2 ** 30} bandwidth_up=65536`);
  const judy = await api.get('/users/judy');
  assert.deepEqual(judy.body.limits, { quota_files: 0, daily_download_bytes: 2 ** 30, bandwidth_up: 65536 });
  assert.deepEqual(judy.body.effective_limits, {
    quota_bytes: 1_000_000,
    quota_files: 0,
    daily_upload_bytes: 0,
    daily_download_bytes: 2 ** 30,
    bandwidth_up: 65536,
    bandwidth_down: 0,
    session_bandwidth_up: 0,
    session_bandwidth_down: 0,
    sessions_per_minute: 5,
  });
  const audit = await db.query("SELECT after FROM ftp_admin_audit WHERE action = 'user.update' AND target = 'judy' ORDER BY id DESC LIMIT 1");
  assert.deepEqual(audit.rows[0].after.limits, { quota_files: 0, daily_download_bytes: 2 ** 30, bandwidth_up: 65536 });

  // What a user's session sees: the same limits, resolved by the store at login.
  assert.equal(await ftpLogin('judy', 'judy-password'), 230);
  mkdirSync(join(server.dataDir, 'judy', 'sub'), { recursive: true });
  writeFileSync(join(server.dataDir, 'judy', 'a.bin'), Buffer.alloc(300));
  writeFileSync(join(server.dataDir, 'judy', 'sub', 'b.bin'), Buffer.alloc(12));

  r = await ftpctl(['--api', url, 'quota', 'scan', 'judy'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^USER\s+BYTES\s+FILES\njudy\s+312\s+2\n$/);
  r = await ftpctl(['--api', url, 'user', 'show', 'judy'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^judy: home judy, groups metered\nLIMIT\s+OWN\s+IN FORCE\n/);
  assert.match(r.stdout, /^quota_bytes\s+-\s+1000000$/m);
  assert.match(r.stdout, /^quota_files\s+none\s+none$/m);
  assert.match(r.stdout, /^usage: 312 bytes in 2 files\ntoday \(UTC\): \d+ bytes uploaded, \d+ bytes downloaded$/m);
  r = await ftpctl(['--api', url, 'quota', 'scan'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^judy\s+312\s+2$/m, 'every user');

  r = await ftpctl(['--api', url, 'user', 'set', 'judy', '--quota-files', 'inherit', '--daily-download-bytes', 'inherit', '--bandwidth-up', 'inherit'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await api.get('/users/judy')).body.limits, undefined, 'all inherited: the limits cleared');
  assert.equal((await api.get('/users/judy')).body.effective_limits.quota_files, 0);
  assert.equal((await ftpctl(['--api', url, 'user', 'set', 'nobody', '--quota-bytes', '1'], env)).code, 1);
});

test('PostgreSQL cut off: existing users keep logging in, reads answer from memory, writes answer 503; all recovers by itself', async () => {
  assert.equal((await api.post('/users', { name: 'heidi', password: 'heidi-password' })).status, 201);
  await proxy.cut();
  try {
    assert.equal(await ftpLogin('heidi', 'heidi-password'), 230, 'logins go on from the users in memory');
    const write = await api.post('/users', { name: 'ivan', password: 'ivan-password' });
    assert.equal(write.status, 503, JSON.stringify(write.body));
    assert.match(write.body.message, /PostgreSQL is unavailable/);
    assert.equal((await api.patch('/users/heidi', { description: 'x' })).status, 503);
    assert.equal((await api.get('/users/heidi')).status, 200, 'reads come from memory');
    await eventually('healthz tells the store is down', async () => (await api.get('/healthz')).body.user_store.up === false, 15_000, 200);
  } finally {
    await proxy.reopen();
  }
  const created = await eventually('writes work again', async () => {
    const res = await api.post('/users', { name: 'ivan', password: 'ivan-password' });
    return res.status === 201 ? res : undefined;
  }, 30_000, 250);
  assert.equal(created.body.name, 'ivan');
  assert.equal(await ftpLogin('ivan', 'ivan-password'), 230);
  // Health follows the LISTEN connection, which reconnects on its own backoff (≤ 5 s): it may lag the pool's writes.
  await eventually('healthz tells the store is up again', async () => (await api.get('/healthz')).body.user_store.up === true, 15_000, 200);
});
