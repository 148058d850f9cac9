// The admin REST API of an embedded edge (users file, in-memory cluster state), through real HTTP: the OpenAPI
// document and its validity, every scope refused without its token, every validation error naming its field, the
// file store's 409, the rate limit on wrong tokens (the shared ban list), and live FTP and SFTP sessions listed with
// their transfer bytes and ended through the API.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ADMIN_SCOPES, createFileTokenStore, type AdminScope } from '@ftp/identity';
import { partialNameFor } from '@ftp/storage';
import { adminApi, eventually, type AdminApi } from '../../../../test/support/adminApi';
import { freeBlock } from '../../../../test/support/processes';
import { passiveFrom } from '../../../../test/support/clusterClient';
import { RawClient } from '../../../../test/support/rawClient';
import { startTestServer, type TestServer } from '../../../../test/support/server';
import { closeClient, sftpOf, sshConnect } from '../../../../test/support/sftpClient';

let server: TestServer;
let base: string;
/** One token per scope, and one with all of them. */
const tokens = {} as Record<AdminScope | 'all', string>;
let api: AdminApi;

before(async () => {
  const apiPort = await freeBlock(1, ['127.0.0.1']);
  server = await startTestServer({
    sftp: true,
    env: {
      FTP_API_PORT: String(apiPort),
      FTP_BAN_AFTER_FAILURES: '3',
      FTP_BAN_SECONDS: '600',
      FTP_TRANSFER_PROGRESS_SECONDS: '1',
      FTP_DEFAULT_QUOTA_FILES: '1000',
      FTP_DEFAULT_BANDWIDTH_DOWN: '5000000',
    },
  });
  base = `http://127.0.0.1:${server.edge.apiPort}`;
  // What `ftpctl token create` does with the file backend: the tokens file beside the users file.
  const store = createFileTokenStore({ file: server.config.apiTokensFile });
  for (const scope of ADMIN_SCOPES) tokens[scope] = (await store.createToken({ name: `only-${scope.replace(':', '-')}`, scopes: [scope] }, { name: 'test' })).token;
  tokens.all = (await store.createToken({ name: 'all', scopes: [...ADMIN_SCOPES] }, { name: 'test' })).token;
  api = adminApi(base, tokens.all);
});

after(async () => {
  await server?.close();
});

/** Every operation of the API with the scope it needs and a request that passes validation. */
const OPERATIONS: Array<{ method: string; path: string; scope: AdminScope; body?: unknown }> = [
  { method: 'GET', path: '/users', scope: 'users:read' },
  { method: 'GET', path: '/users/alice', scope: 'users:read' },
  { method: 'POST', path: '/users', scope: 'users:write', body: { name: 'bob', password: 'password-of-bob' } },
  { method: 'PATCH', path: '/users/alice', scope: 'users:write', body: { description: 'x' } },
  { method: 'DELETE', path: '/users/alice', scope: 'users:write' },
  { method: 'PUT', path: '/users/alice/password', scope: 'users:write', body: { password: 'a new password' } },
  { method: 'GET', path: '/users/alice/keys', scope: 'users:read' },
  { method: 'POST', path: '/users/alice/keys', scope: 'users:write', body: { public_keys: ['ssh-ed25519 AAAA'] } },
  { method: 'DELETE', path: '/users/alice/keys/SHA256%3Aabc', scope: 'users:write' },
  { method: 'DELETE', path: '/users/nobody/sessions', scope: 'sessions:write' },
  { method: 'POST', path: '/users/alice/quota-scan', scope: 'users:write' },
  { method: 'GET', path: '/groups', scope: 'users:read' },
  { method: 'GET', path: '/groups/partners', scope: 'users:read' },
  { method: 'POST', path: '/groups', scope: 'users:write', body: { name: 'partners' } },
  { method: 'PATCH', path: '/groups/partners', scope: 'users:write', body: { description: 'x' } },
  { method: 'DELETE', path: '/groups/partners', scope: 'users:write' },
  { method: 'GET', path: '/sessions', scope: 'sessions:read' },
  { method: 'GET', path: '/sessions/no-such-session', scope: 'sessions:read' },
  { method: 'DELETE', path: '/sessions/no-such-session', scope: 'sessions:write' },
  { method: 'GET', path: '/bans', scope: 'sessions:read' },
  { method: 'DELETE', path: '/bans/192.0.2.1', scope: 'bans:write' },
];

const openapiPath = (path: string) => `/api/v1${path.replace(/\/(alice|nobody|partners|no-such-session|192\.0\.2\.1)(?=\/|$)/, (_, seg) => `/{${seg === 'partners' || seg === 'alice' || seg === 'nobody' ? 'name' : seg === '192.0.2.1' ? 'address' : 'id'}}`).replace('SHA256%3Aabc', '{fingerprint}')}`;

test('the OpenAPI document is served without a token, generated from the route schemas, and valid OpenAPI 3.1', async () => {
  const res = await adminApi(base).get('/openapi.json');
  assert.equal(res.status, 200);
  const doc = res.body;
  assert.equal(doc.openapi, '3.1.0');
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));

  // Every operation of the document is one this test covers, and the other way round.
  const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  const covered = [...OPERATIONS.map((o) => `${o.method} ${openapiPath(o.path)}`), 'GET /api/v1/healthz'];
  assert.deepEqual(documented.sort(), [...new Set(covered)].sort());
  // Request and response schemas come from the routes: the create body refuses unknown fields, the user has no password.
  const create = doc.paths['/api/v1/users'].post;
  assert.equal(create.requestBody.content['application/json'].schema.additionalProperties, false);
  assert.ok(create.requestBody.content['application/json'].schema.required.includes('name'));
  assert.ok(!('password' in doc.paths['/api/v1/users/{name}'].get.responses['200'].content['application/json'].schema.properties));
  assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: 'ftpat_… token (ftpctl token create)' });
  assert.deepEqual(doc.paths['/api/v1/healthz'].get.security, [], 'healthz needs no token');
});

test('/healthz answers without a token', async () => {
  const res = await adminApi(base).get('/healthz');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { status: 'ok', replica: server.config.replicaId, user_store: { backend: 'file', up: true }, cluster_state: { kind: 'memory', up: true } });
});

test('every operation is refused without a token (401), with a token of another scope (403), and passes the check with its own', async () => {
  for (const op of OPERATIONS) {
    const at = `${op.method} ${op.path}`;
    const anonymous = await api.call(op.method, op.path, op.body, { token: null });
    assert.equal(anonymous.status, 401, at);
    assert.match(String(anonymous.headers['www-authenticate']), /^Bearer realm="ftp-admin"/, at);
    assert.match(anonymous.body.message, /bearer token is required/);
    for (const other of ADMIN_SCOPES.filter((s) => s !== op.scope)) {
      const res = await api.call(op.method, op.path, op.body, { token: tokens[other] });
      assert.equal(res.status, 403, `${at} with ${other}`);
      assert.match(res.body.message, new RegExp(`lacks the scope ${op.scope}`), at);
      assert.match(String(res.headers['www-authenticate']), new RegExp(`error="insufficient_scope", scope="${op.scope}"`), at);
    }
    const own = await api.call(op.method, op.path, op.body, { token: tokens[op.scope] });
    assert.ok(![401, 403, 429].includes(own.status), `${at} with ${op.scope}: ${own.status} ${JSON.stringify(own.body)}`);
  }
});

test('every validation error answers 400 naming the field', async () => {
  const cases: Array<[string, string, unknown, RegExp, string[]]> = [
    ['POST', '/users', { password: 'long enough' }, /body\.name: is required/, ['name']],
    ['POST', '/users', { name: 'bad name!', password: 'long enough' }, /body\.name: must match pattern/, ['name']],
    ['POST', '/users', { name: 'bob', password: 'short' }, /body\.password: must NOT have fewer than 8 characters/, ['password']],
    ['POST', '/users', { name: 'bob', password: 'long enough', shell: '/bin/sh' }, /body\.shell: is not a known field/, ['shell']],
    ['POST', '/users', { name: 'bob', password: 'long enough', disabled: 'yes' }, /body\.disabled: must be boolean/, ['disabled']],
    ['POST', '/users', { name: 'bob', password: 'long enough', max_sessions: 0 }, /body\.max_sessions: must be >= 1/, ['max_sessions']],
    ['POST', '/users', { name: 'bob', password: 'long enough', protocols: ['gopher'] }, /body\.protocols\[0\]: must be one of ftp, ftps, sftp/, ['protocols[0]']],
    ['POST', '/users', { name: 'bob', password: 'long enough', permissions: { '/': ['fly'] } }, /body\.permissions\["\/"\]\[0\]: must be one of list, download/, ['permissions["/"][0]']],
    ['POST', '/users', { name: 'bob', password: 'long enough', limits: { speed: 1 } }, /body\.limits\.speed: is not a known field/, ['limits.speed']],
    ['POST', '/users', { name: 'bob', password: 'long enough', limits: { storage_bytes: 1 } }, /body\.limits\.storage_bytes: is not a known field/, ['limits.storage_bytes']],
    ['POST', '/users', { name: 'bob', password: 'long enough', limits: { quota_bytes: -1 } }, /body\.limits\.quota_bytes: must be >= 0/, ['limits.quota_bytes']],
    ['PATCH', '/groups/g', { limits: { bandwidth_up: 1.5 } }, /body\.limits\.bandwidth_up: must be integer/, ['limits.bandwidth_up']],
    ['POST', '/users', { name: 'bob', password: 'long enough', groups: 'staff' }, /body\.groups: must be array/, ['groups']],
    // Checks only the users file's parser makes: the same words as for the file.
    ['POST', '/users', { name: 'bob', password: 'long enough', home: '../etc' }, /body\.home: "\.\.\/etc" must not contain "\.\." segments/, ['home']],
    ['POST', '/users', { name: 'bob', password: 'long enough', permissions: { '/in': ['list'] } }, /body\.permissions: "\/" is required/, ['permissions']],
    ['POST', '/users', { name: 'bob', password: 'long enough', allow_from: ['10.0.0.0/99'] }, /body\.allow_from: /, ['allow_from']],
    ['POST', '/users', { name: 'bob', password: 'long enough', expires_at: 'next week' }, /body\.expires_at: expected a date/, ['expires_at']],
    ['POST', '/users', { name: 'bob', password: 'scrypt$broken' }, /body\.password: malformed scrypt hash/, ['password']],
    ['POST', '/users', { name: 'bob', password: 'long enough', public_keys: ['ssh-ed25519 not-base64!'] }, /body\.public_keys\[0\]/, ['public_keys']],
    ['PATCH', '/users/alice', {}, /body: must NOT have fewer than 1 properties/, []],
    ['PATCH', '/users/alice', { name: 'carol' }, /body\.name: is not a known field/, ['name']],
    ['PATCH', '/users/alice', { home: null }, /body\.home: must be string/, ['home']],
    ['PATCH', '/users/alice', { description: 7, require_tls: 'no' }, /body\.description: must be string; body\.require_tls: must be boolean/, ['description', 'require_tls']],
    ['PATCH', '/users/bad%20name', { description: 'x' }, /params\.name: must match pattern/, ['name']],
    ['PUT', '/users/alice/password', { password: 1234567890 }, /body\.password: must be string/, ['password']],
    ['PUT', '/users/alice/password', {}, /body\.password: is required/, ['password']],
    ['POST', '/users/alice/keys', { public_keys: [] }, /body\.public_keys: must NOT have fewer than 1 items/, ['public_keys']],
    ['POST', '/users/alice/keys', { public_keys: ['-----BEGIN OPENSSH PRIVATE KEY-----'] }, /body\.public_keys\[0\]: this is a private key/, ['public_keys']],
    ['POST', '/groups', { name: 'g', protocols: [] }, /body\.protocols: must NOT have fewer than 1 items/, ['protocols']],
    ['POST', '/groups', { name: 'g', password: 'x' }, /body\.password: is not a known field/, ['password']],
    ['PATCH', '/groups/g', { members: ['alice'] }, /body\.members: is not a known field/, ['members']],
    ['GET', '/sessions?protocol=gopher', undefined, /querystring\.protocol: must be one of ftp, ftps, sftp/, ['protocol']],
    ['GET', '/sessions?user=a%20b', undefined, /querystring\.user: must match pattern/, ['user']],
    ['GET', '/sessions?colour=red', undefined, /querystring\.colour: is not a known field/, ['colour']],
    ['DELETE', '/bans/not-an-address', undefined, /params\.address: "not-an-address" is not an IP address/, ['address']],
    ['POST', '/users', '{"name": "bob",', /JSON/, []],
  ];
  for (const [method, path, body, message, fields] of cases) {
    const res = await api.call(method, path, body);
    const at = `${method} ${path} ${typeof body === 'string' ? body : JSON.stringify(body)}`;
    assert.equal(res.status, 400, `${at}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.message, message, at);
    assert.deepEqual(res.body.fields ?? [], fields, at);
  }
});

test('with the users file the API reads users but refuses writes with 409 and the reason', async () => {
  const list = await api.get('/users');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.items, [{ name: 'alice', home: 'alice', groups: [], disabled: false, public_keys: [] }], 'no password hash, ever');
  assert.equal((await api.get('/users/alice')).body.name, 'alice');
  assert.equal((await api.get('/users/nobody')).status, 404);
  for (const [method, path, body] of [
    ['POST', '/users', { name: 'bob', password: 'password-of-bob' }],
    ['PATCH', '/users/alice', { disabled: true }],
    ['PUT', '/users/alice/password', { password: 'another password' }],
    ['DELETE', '/users/alice', undefined],
    ['POST', '/groups', { name: 'partners' }],
  ] as const) {
    const res = await api.call(method, path, body);
    assert.equal(res.status, 409, `${method} ${path}`);
    assert.match(res.body.message, /users come from the users file .* which is the source of truth/);
  }
  const ftp = await RawClient.connect(server.port);
  await ftp.login('alice', server.password); // nothing changed
  ftp.close();
});

test("GET /users/{name} shows the limits in force (the server's defaults here) and the usage; quota-scan recounts the home", async () => {
  const home = join(server.dataDir, 'alice');
  mkdirSync(join(home, 'scan', 'deep'), { recursive: true });
  writeFileSync(join(home, 'scan', 'one.bin'), Buffer.alloc(1000));
  writeFileSync(join(home, 'scan', 'deep', 'two.bin'), Buffer.alloc(24));
  writeFileSync(join(home, 'scan', partialNameFor('three.bin')), Buffer.alloc(500)); // an upload in progress: not counted

  let alice = await api.get('/users/alice');
  assert.equal(alice.status, 200);
  assert.deepEqual(alice.body.effective_limits, {
    quota_bytes: 0,
    quota_files: 1000,
    daily_upload_bytes: 0,
    daily_download_bytes: 0,
    bandwidth_up: 0,
    bandwidth_down: 5000000,
    session_bandwidth_up: 0,
    session_bandwidth_down: 0,
    sessions_per_minute: 0,
  });
  assert.equal(alice.body.limits, undefined, 'alice sets none of her own');
  // null until the home is scanned: by this API, or by the edge itself once a quota needs it (alice has one, from the
  // server's default, and logged in before), which counted the home before the files above were written behind its back.
  assert.ok(alice.body.usage === null || alice.body.usage.bytes < 1024, JSON.stringify(alice.body.usage));

  const scan = await api.post('/users/alice/quota-scan');
  assert.equal(scan.status, 200, JSON.stringify(scan.body));
  const files = readdirSync(home, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.ftp-partial'));
  const bytes = files.reduce((sum, e) => sum + statSync(join(e.parentPath, e.name)).size, 0);
  assert.deepEqual(scan.body, { bytes, files: files.length });
  assert.ok(scan.body.bytes >= 1024 && scan.body.files >= 2);

  alice = await api.get('/users/alice');
  assert.deepEqual(alice.body.usage, { bytes, files: files.length, today_upload_bytes: alice.body.usage.today_upload_bytes, today_download_bytes: alice.body.usage.today_download_bytes });
  assert.ok(Number.isInteger(alice.body.usage.today_upload_bytes) && Number.isInteger(alice.body.usage.today_download_bytes));
  assert.equal((await api.post('/users/nobody/quota-scan')).status, 404);
  assert.ok(server.logs.some((l) => l.event === 'admin-audit' && l.action === 'user.quota-scan' && l.target === 'alice'));
  rmSync(join(home, 'scan'), { recursive: true, force: true });
});

test('wrong tokens count like failed logins: the address is banned (429, FTP refused too) until the ban is lifted through the API', async () => {
  const attacker = '127.0.0.33';
  for (let i = 0; i < 3; i++) assert.equal((await api.call('GET', '/users', undefined, { token: `ftpat_guess${i}`, from: attacker })).status, 401);
  assert.equal((await api.call('GET', '/users', undefined, { from: attacker })).status, 429, 'a valid token does not help a banned address');
  const ftp = await RawClient.connect(server.port, '127.0.0.1', attacker);
  assert.equal((await ftp.reply()).code, 421, 'the same ban list as FTP logins');
  ftp.close();

  const bans = await api.get('/bans');
  assert.equal(bans.status, 200);
  const ban = bans.body.items.find((b: { address: string }) => b.address === attacker);
  assert.ok(ban && Date.parse(ban.until) > Date.now() + 500_000, JSON.stringify(bans.body));
  assert.equal((await api.delete(`/bans/${attacker}`)).status, 204);
  assert.equal((await api.delete(`/bans/${attacker}`)).status, 404, 'nothing left to lift');
  assert.equal((await api.call('GET', '/users', undefined, { from: attacker })).status, 200, 'lifted: the address is welcome again');
  assert.equal((await api.call('GET', '/users', undefined, { token: 'ftpat_one-more-typo', from: attacker })).status, 401, 'its failures went with the ban');
  assert.equal((await api.call('GET', '/users', undefined, { from: attacker })).status, 200);
  assert.ok(server.logs.some((l) => l.event === 'admin-audit' && l.action === 'ban.lift' && l.target === attacker && l.actor === 'all'));
});

test('live FTP and SFTP sessions are listed with their replica and running transfer bytes, filtered, and ended through the API', async () => {
  const ftp = await RawClient.connect(server.port);
  await ftp.login('alice', server.password);
  assert.equal((await ftp.command('NOOP')).code, 200);
  const ssh = await sshConnect({ port: server.edge.sftpPort, username: 'alice', password: server.password, tryKeyboard: false });
  const sftp = await sftpOf(ssh);
  const sshClosed = new Promise<number>((resolve) => ssh.once('close', () => resolve(Date.now())));
  ssh.on('error', () => {});
  // An SFTP upload that stays open: 3 MiB written, the handle not closed.
  const handle = await new Promise<Buffer>((resolve, reject) => sftp.open('/partial.bin', 'w', (err, h) => (err ? reject(err) : resolve(h))));
  const chunk = Buffer.alloc(256 * 1024, 7);
  for (let i = 0; i < 12; i++) await new Promise<void>((resolve, reject) => sftp.write(handle, chunk, 0, chunk.length, i * chunk.length, (err) => (err ? reject(err) : resolve())));

  const sessions = await eventually('both sessions listed, the SFTP upload with its bytes', async () => {
    const res = await api.get('/sessions?user=alice');
    const items = res.body.items as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const s = items.find((i) => i.protocol === 'sftp');
    return items.length === 2 && s?.transfer?.bytes === 12 * chunk.length ? items : undefined;
  }, 5000);
  const ftpRecord = sessions.find((s) => s.protocol === 'ftp')!;
  const sftpRecord = sessions.find((s) => s.protocol === 'sftp')!;
  assert.equal(ftpRecord.replica, server.config.replicaId);
  assert.equal(ftpRecord.client, '127.0.0.1');
  assert.equal(ftpRecord.user, 'alice');
  assert.ok(ftpRecord.command === undefined || ftpRecord.command === 'NOOP', 'the last command comes with the next heartbeat');
  assert.ok(Date.parse(ftpRecord.started) <= Date.now());
  assert.deepEqual({ ...sftpRecord.transfer, started: undefined }, { direction: 'upload', path: '/partial.bin', bytes: 12 * chunk.length, started: undefined });
  assert.equal((await api.get('/sessions?protocol=sftp')).body.items.length, 1);
  assert.equal((await api.get(`/sessions?replica=${server.config.replicaId}&protocol=ftp`)).body.items.length, 1);
  assert.equal((await api.get('/sessions?replica=elsewhere')).body.items.length, 0);
  assert.equal((await api.get(`/sessions/${ftpRecord.id}`)).body.id, ftpRecord.id);

  // FTP: 421, then the server closes the control connection, within a second.
  let started = Date.now();
  const kill = await api.delete(`/sessions/${ftpRecord.id}`);
  assert.equal(kill.status, 202);
  assert.deepEqual(kill.body, { id: ftpRecord.id, user: 'alice', replica: server.config.replicaId, sessions: 1 });
  const reply = await ftp.reply(1000);
  assert.equal(reply.code, 421);
  assert.match(reply.text, /ended by an administrator/);
  await ftp.waitClosed(1000);
  assert.ok(Date.now() - started < 1000);

  // SFTP: an SSH disconnect; the open upload stays as a partial for a resume.
  started = Date.now();
  assert.equal((await api.delete(`/sessions/${sftpRecord.id}`)).status, 202);
  const closedAt = await Promise.race([sshClosed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 1000))]);
  assert.ok(closedAt - started < 1000, 'SSH connection closed within a second');
  const partial = join(server.dataDir, 'alice', partialNameFor('partial.bin'));
  await eventually('the partial kept', async () => existsSync(partial) && statSync(partial).size === 12 * chunk.length, 2000);
  await closeClient(ssh);

  await eventually('both records gone', async () => (await api.get('/sessions')).body.items.length === 0, 2000);
  assert.equal((await api.delete(`/sessions/${ftpRecord.id}`)).status, 404);
  const audits = server.logs.filter((l) => l.event === 'admin-audit' && l.action === 'session.end');
  assert.deepEqual(audits.map((l) => l.target), [ftpRecord.id, sftpRecord.id]);
  assert.equal((audits[0].before as { user: string }).user, 'alice');
});

test('DELETE /users/{name}/sessions ends every session of the user, of both front doors', async () => {
  const ftp = [await RawClient.connect(server.port), await RawClient.connect(server.port)];
  for (const c of ftp) await c.login('alice', server.password);
  const ssh = await sshConnect({ port: server.edge.sftpPort, username: 'alice', password: server.password, tryKeyboard: false });
  ssh.on('error', () => {});
  const sshClosed = new Promise<void>((resolve) => ssh.once('close', () => resolve()));
  await eventually('three sessions', async () => (await api.get('/sessions?user=alice')).body.items.length === 3);
  const res = await api.delete('/users/alice/sessions');
  assert.equal(res.status, 202);
  assert.deepEqual(res.body, { user: 'alice', sessions: 3 });
  for (const c of ftp) {
    assert.equal((await c.reply(1000)).code, 421);
    await c.waitClosed(1000);
  }
  await Promise.race([sshClosed, new Promise((_, reject) => setTimeout(() => reject(new Error('SSH still open')), 1000))]);
  assert.equal((await api.delete('/users/nobody/sessions')).body.sessions, 0);
});

test('an FTP session ended mid-upload gets 421 and keeps what it uploaded as a partial, which REST + STOR resumes', async () => {
  const ftp = await RawClient.connect(server.port);
  await ftp.login('alice', server.password);
  assert.equal((await ftp.command('TYPE I')).code, 200);
  const data = await passiveFrom(ftp, '127.0.0.1');
  assert.equal((await ftp.command('STOR resumable.bin')).code, 150);
  const first = Buffer.alloc(1024 * 1024, 3);
  data.write(first);
  const partial = join(server.dataDir, 'alice', partialNameFor('resumable.bin'));
  await eventually('the first MiB on disk', async () => existsSync(partial) && statSync(partial).size === first.length, 5000);
  const record = await eventually('the upload listed', async () => (await api.get('/sessions?protocol=ftp')).body.items.find((s: { transfer?: unknown }) => s.transfer));
  assert.deepEqual([record.transfer.direction, record.transfer.path], ['upload', '/resumable.bin']);

  assert.equal((await api.delete(`/sessions/${record.id}`)).status, 202);
  assert.equal((await ftp.reply(1000)).code, 421);
  await ftp.waitClosed(1000);
  data.destroy();
  await eventually('the partial stays', async () => existsSync(partial) && statSync(partial).size === first.length, 2000);

  const again = await RawClient.connect(server.port);
  await again.login('alice', server.password);
  assert.equal((await again.command('TYPE I')).code, 200);
  const rest = await again.command(`REST ${first.length}`);
  assert.equal(rest.code, 350);
  const data2 = await passiveFrom(again, '127.0.0.1');
  assert.equal((await again.command('STOR resumable.bin')).code, 150);
  data2.end(Buffer.alloc(1000, 4));
  assert.equal((await again.reply(10_000)).code, 226);
  again.close();
  assert.equal(statSync(join(server.dataDir, 'alice', 'resumable.bin')).size, first.length + 1000, 'resumed after the kick');
});
