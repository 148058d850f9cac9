// The identity hook store against a real HTTPS receiver on loopback (self-signed certificate, trusted through `ca`),
// which checks every request's signature as a real identity provider would.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyHmacSignature, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '@ftp/signing';
import { generate } from 'selfsigned';
import { createHookStore, type HookRequest, type HookStoreOptions } from './hookStore';
import { NO_LIMITS } from './limits';
import { parseAuthorizedKey } from './publicKeys';
import { isUserStoreError, type UserStore } from './store';
import { sshKeygen } from './testKeys';

const SECRET = 'hook-secret-0123456789';

interface Received {
  body: HookRequest;
  raw: string;
  signed: boolean;
  headers: Record<string, string | string[] | undefined>;
}

/** What the receiver answers: status and JSON body, after an optional delay. */
type Reply = { status: number; body?: unknown; delayMs?: number };

let dir: string;
let server: Server;
let url: string;
let ca: string;
const received: Received[] = [];
let answer: (request: HookRequest, signed: boolean) => Reply = () => ({ status: 404 });
const stores: UserStore[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'identity-hook-'));
  aliceKey = sshKeygen(dir, 'ed25519');
  const pems = await generate([{ name: 'commonName', value: 'identity-hook-test' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  ca = pems.cert;
  server = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      // The receiver's side of the signature: the raw bytes, before parsing.
      const signed = verifyHmacSignature(SECRET, req.headers[TIMESTAMP_HEADER] as string, raw, req.headers[SIGNATURE_HEADER] as string);
      const body = JSON.parse(raw) as HookRequest;
      received.push({ body, raw, signed, headers: req.headers });
      const reply = signed ? answer(body, signed) : { status: 401, body: { error: 'bad signature' } };
      if (reply.delayMs) await sleep(reply.delayMs);
      if (res.destroyed) return;
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(reply.body === undefined ? '' : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/auth`;
});

after(async () => {
  for (const store of stores) await store.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

function open(options: Partial<HookStoreOptions> = {}) {
  const errors: { fields: Record<string, unknown>; message: string }[] = [];
  const log = { warn: () => {}, error: (fields: object, message: string) => errors.push({ fields: fields as Record<string, unknown>, message }) };
  const store = createHookStore({ url, secret: SECRET, dataRoot: path.join(dir, 'data'), ca, timeoutMs: 1000, log, ...options });
  stores.push(store);
  return { store, errors };
}

/** The identity provider's users: alice with password "pw" or her key; she may use SFTP and FTPS. */
let aliceKey: ReturnType<typeof sshKeygen>;
const ALICE = {
  home: 'partners/alice',
  permissions: { '/': ['list', 'download'], '/inbox': ['list', 'upload'] },
  groups: ['partners'],
  protocols: ['sftp', 'ftps'],
  limits: { daily_upload_bytes: 1000, bandwidth_down: 0 },
  max_sessions: 3,
};
const provider = (request: HookRequest): Reply => {
  if (request.user !== 'alice') return { status: 404 };
  const keyLine = aliceKey.line.split(' ').slice(0, 2).join(' ');
  if (request.password === 'pw' || request.public_key === keyLine) return { status: 200, body: { user: ALICE } };
  return { status: 200, body: { user: null } };
};

test('hook: a yes gives the user the hook describes (home created), signed requests carry {user, protocol, client, credential}', async () => {
  answer = provider;
  received.length = 0;
  // The server's defaults fill the limits the answer leaves out; its 0 (none) stays.
  const { store } = open({ defaultLimits: { ...NO_LIMITS, quotaFiles: 50, bandwidthDown: 4000 } });
  const result = await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp');
  assert.ok(result.ok);
  assert.deepEqual(result.user, {
    name: 'alice',
    root: path.join(dir, 'data', 'partners', 'alice'),
    permissions: { '/': ['list', 'download'], '/inbox': ['list', 'upload'] },
    groups: ['partners'],
    allowFrom: [],
    requireTls: false,
    maxSessions: 3,
    anonymous: false,
    publicKeys: [],
    protocols: ['sftp', 'ftps'],
    limits: { ...NO_LIMITS, dailyUploadBytes: 1000, quotaFiles: 50 },
  });
  assert.ok((await stat(result.user.root)).isDirectory());
  assert.equal(received.length, 1);
  assert.deepEqual(received[0].body, { user: 'alice', protocol: 'sftp', client: '203.0.113.7', method: 'password', password: 'pw' });
  assert.equal(received[0].signed, true);
  assert.equal(received[0].headers['content-type'], 'application/json');

  const key = parseAuthorizedKey(aliceKey.line);
  const byKey = await store.authenticateKey('alice', { type: key.type, data: key.data }, '203.0.113.7', 'sftp');
  assert.ok(byKey.ok);
  assert.equal(received[1].body.public_key, `${key.type} ${key.data.toString('base64')}`);
  assert.equal(received[1].body.password, undefined);
  assert.equal(store.health().up, true);
});

test('hook: refusals (a null user, 401/403/404) are wrong credentials; the answer still goes through admission', async () => {
  answer = provider;
  const { store, errors } = open();
  assert.deepEqual(await store.authenticate('alice', 'wrong', '203.0.113.7', 'sftp'), { ok: false, reason: 'bad-password' });
  assert.deepEqual(await store.authenticate('mallory', 'pw', '203.0.113.7', 'sftp'), { ok: false, reason: 'bad-password' });
  const other = parseAuthorizedKey(sshKeygen(dir, 'ed25519').line);
  assert.deepEqual(await store.authenticateKey('alice', { type: other.type, data: other.data }, '203.0.113.7', 'sftp'), { ok: false, reason: 'bad-key' });
  for (const status of [401, 403]) {
    answer = () => ({ status });
    assert.deepEqual(await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp'), { ok: false, reason: 'bad-password' });
  }
  assert.equal(errors.length, 0, 'a refusal is not an error');
  // The hook's yes is checked like any store's user: protocols, allow_from, disabled, expires_at.
  answer = provider;
  assert.deepEqual(await store.authenticate('alice', 'pw', '203.0.113.7', 'ftp'), { ok: false, reason: 'protocol-not-allowed' });
  answer = () => ({ status: 200, body: { user: { ...ALICE, allow_from: ['10.0.0.0/8'] } } });
  assert.deepEqual(await store.authenticate('alice', 'pw2', '203.0.113.7', 'sftp'), { ok: false, reason: 'address-denied' });
  answer = () => ({ status: 200, body: { user: { ...ALICE, expires_at: '2001-01-01' } } });
  assert.deepEqual(await store.authenticate('alice', 'pw3', '203.0.113.7', 'sftp'), { ok: false, reason: 'expired' });
  answer = () => ({ status: 200, body: { user: { ...ALICE, disabled: true } } });
  assert.deepEqual(await store.authenticate('alice', 'pw4', '203.0.113.7', 'sftp'), { ok: false, reason: 'disabled' });
});

test('hook: a timeout, a 5xx, a network error or a bad answer refuse the login with an error line, never let it in', async () => {
  const { store, errors } = open({ timeoutMs: 300 });
  const cases: [string, Reply | 'down', RegExp][] = [
    ['timeout', { status: 200, body: { user: ALICE }, delayMs: 1000 }, /no answer within 300 ms/],
    ['500', { status: 500, body: { user: ALICE } }, /HTTP 500/],
    ['503', { status: 503 }, /HTTP 503/],
    ['not json', { status: 200, body: undefined }, /not JSON/],
    ['invalid user', { status: 200, body: { user: { ...ALICE, home: '/etc', password: 'x' } } }, /invalid user in the answer: .*password.*home/],
    ['redirect', { status: 302 }, /HTTP 302/],
  ];
  for (const [what, reply] of cases.map(([w, r]) => [w, r] as const)) {
    answer = () => reply as Reply;
    const started = Date.now();
    assert.deepEqual(await store.authenticate('alice', `pw-${what}`, '203.0.113.7', 'sftp'), { ok: false, reason: 'unavailable' }, what);
    assert.ok(Date.now() - started < 900, `${what}: answered in ${Date.now() - started} ms`);
  }
  assert.deepEqual(
    errors.map((e) => e.message),
    cases.map(() => 'identity hook failed: login refused'),
  );
  cases.forEach(([what, , reason], i) => assert.match(String(errors[i].fields.reason), reason, what));
  assert.equal(errors[0].fields.user, 'alice');
  assert.ok(!JSON.stringify(errors).includes('pw-'), 'never the password in a log line');
  assert.equal(store.health().up, false);
  assert.match(store.health().detail, /failing since/);

  // An address nobody listens on.
  const { store: nowhere } = open({ url: 'https://127.0.0.1:1/auth' });
  assert.deepEqual(await nowhere.authenticate('alice', 'pw', '203.0.113.7', 'sftp'), { ok: false, reason: 'unavailable' });
  answer = provider;
  assert.equal((await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp')).ok, true);
  assert.equal(store.health().up, true, 'healthy again after a good answer');
});

test('hook: a request with a wrong secret fails the receiver’s signature check and the login is refused', async () => {
  answer = provider;
  received.length = 0;
  const { store } = open({ secret: 'not-the-shared-secret!' });
  assert.deepEqual(await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp'), { ok: false, reason: 'bad-password' });
  assert.equal(received[0].signed, false);
  // A replayed request (old timestamp) fails the same check on the receiver.
  const stale = verifyHmacSignature(SECRET, String(Math.floor(Date.now() / 1000) - 600), received[0].raw, received[0].headers[SIGNATURE_HEADER] as string);
  assert.equal(stale, false);
});

test('hook: a yes is reused within the TTL for the same (user, protocol, client, credential), then asked again', async () => {
  answer = provider;
  received.length = 0;
  let t = 1_000_000;
  const { store } = open({ cacheTtlMs: 60_000, now: () => t });
  assert.equal((await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp')).ok, true);
  assert.equal((await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp')).ok, true);
  assert.equal(received.length, 1, 'the second login is a cache hit');
  assert.deepEqual(await store.authenticate('alice', 'wrong', '203.0.113.7', 'sftp'), { ok: false, reason: 'bad-password' });
  assert.deepEqual(await store.authenticate('alice', 'wrong', '203.0.113.7', 'sftp'), { ok: false, reason: 'bad-password' });
  assert.equal(received.length, 3, 'refusals are not cached, and another password never matches the cached yes');
  assert.equal((await store.authenticate('alice', 'pw', '198.51.100.1', 'sftp')).ok, true);
  assert.equal((await store.authenticate('alice', 'pw', '203.0.113.7', 'ftps')).ok, true);
  assert.equal(received.length, 5, 'another address or protocol asks again');

  // Within the TTL the hook is not asked: its outage does not matter, nor would a change of mind.
  answer = () => ({ status: 503 });
  t += 59_000;
  assert.equal((await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp')).ok, true);
  assert.equal(received.length, 5);
  // Past it, the hook decides again.
  t += 2_000;
  assert.deepEqual(await store.authenticate('alice', 'pw', '203.0.113.7', 'sftp'), { ok: false, reason: 'unavailable' });
  assert.equal(received.length, 6);

  // 20 parallel logins with one credential make one call.
  answer = (r) => ({ ...provider(r), delayMs: 100 });
  received.length = 0;
  const results = await Promise.all(Array.from({ length: 20 }, () => store.authenticate('alice', 'pw', '192.0.2.50', 'sftp')));
  assert.ok(results.every((r) => r.ok));
  assert.equal(received.length, 1);

  // TTL 0: every login asks.
  const { store: uncached } = open({ cacheTtlMs: 0 });
  answer = provider;
  received.length = 0;
  await uncached.authenticate('alice', 'pw', '203.0.113.7', 'sftp');
  await uncached.authenticate('alice', 'pw', '203.0.113.7', 'sftp');
  assert.equal(received.length, 2);
});

test('hook: no list of users, no writes; https only (http to loopback), and a real secret', async () => {
  const { store } = open();
  await assert.rejects(store.listUsers(), (err) => isUserStoreError(err, 'unsupported'));
  await assert.rejects(store.createUser('x', { password: 'scrypt$', home: 'x', groups: [], disabled: false, publicKeys: [] }, { name: 't' }), (err) =>
    isUserStoreError(err, 'read-only'),
  );
  assert.equal(store.isAnonymous('anonymous'), false);
  assert.throws(() => createHookStore({ url: 'http://idp.example.com/auth', secret: SECRET, dataRoot: dir }), /must be https/);
  assert.throws(() => createHookStore({ url, secret: 'short', dataRoot: dir }), /at least 16 characters/);
  const local = createHookStore({ url: 'http://127.0.0.1:9/auth', secret: SECRET, dataRoot: dir });
  await local.close();
});
