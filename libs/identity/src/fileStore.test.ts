import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createFileStore, type FileStoreOptions } from './fileStore';
import { NO_LIMITS } from './limits';
import { hashPassword, verifyPassword } from './password';
import { parseAuthorizedKey } from './publicKeys';
import { userStoreContract } from './storeContract';
import { sshKeygen, type GeneratedKey } from './testKeys';
import { saveUsersFile } from './usersFile';

let dir: string;
let hashPw: string;
let hashOther: string;
let keyA: GeneratedKey;
let keyB: GeneratedKey;
let keyC: GeneratedKey;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'identity-file-'));
  [hashPw, hashOther] = await Promise.all([hashPassword('pw'), hashPassword('other')]);
  keyA = sshKeygen(dir, 'ed25519');
  keyB = sshKeygen(dir, 'ecdsa');
  keyC = sshKeygen(dir, 'rsa', { bits: 2048 });
});
after(() => rm(dir, { recursive: true, force: true }));

userStoreContract('file', {
  writable: false,
  async open(seed, options) {
    const usersFile = path.join(options.dataRoot, '..', 'users.yaml');
    await saveUsersFile(usersFile, seed);
    const store = await createFileStore({ usersFile, reloadCheckMs: 0, ...options });
    return { store, replaceSource: (data) => saveUsersFile(usersFile, data) };
  },
});

let n = 0;
/** Writes a users file and opens an identity on it, counting real password verifications. */
async function setup(yaml: string, options: Partial<FileStoreOptions> = {}) {
  const base = path.join(dir, `case${n++}`);
  const usersFile = `${base}.yaml`;
  await writeFile(usersFile, yaml);
  const counter = { verifications: 0 };
  const identity = await createFileStore({
    usersFile,
    dataRoot: path.join(base, 'data'),
    verifyPassword: (p, e) => {
      counter.verifications++;
      return verifyPassword(p, e);
    },
    ...options,
  });
  return { identity, usersFile, dataRoot: path.join(base, 'data'), counter };
}

const aliceYaml = (hash: string, extra = '') => `users:\n  alice:\n    password: ${hash}\n    groups: [partners]\n${extra}`;

test('valid credentials give the user and create the home folder', async () => {
  const { identity, dataRoot } = await setup(aliceYaml(hashPw, '    home: homes/alice\n    max_sessions: 3\n'));
  const result = await identity.authenticate('alice', 'pw', '127.0.0.1', 'ftp');
  assert.ok(result.ok);
  assert.deepEqual(result.user, {
    name: 'alice',
    root: path.join(dataRoot, 'homes', 'alice'),
    permissions: { '/': ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'rmdir'] },
    groups: ['partners'],
    allowFrom: [],
    requireTls: false,
    maxSessions: 3,
    anonymous: false,
    publicKeys: [],
    limits: NO_LIMITS,
  });
  assert.ok((await stat(result.user.root)).isDirectory());
  identity.close();
});

test('anonymous is off by default', async () => {
  const { identity } = await setup(aliceYaml(hashPw));
  assert.equal(identity.isAnonymous('anonymous'), false);
  assert.deepEqual(await identity.authenticate('anonymous', 'me@example.com', '127.0.0.1', 'ftp'), { ok: false, reason: 'unknown-user' });
  identity.close();
});

test('anonymous when enabled: any password, read-only', async () => {
  const { identity, dataRoot } = await setup(aliceYaml(hashPw) + 'anonymous:\n  enabled: true\n  home: pub\n', { defaultLimits: { ...NO_LIMITS, bandwidthDown: 1000 } });
  assert.equal(identity.isAnonymous('anonymous'), true);
  assert.equal(identity.isAnonymous('FTP'), true);
  assert.equal(identity.isAnonymous('alice'), false);
  for (const name of ['anonymous', 'ftp']) {
    const result = await identity.authenticate(name, 'me@example.com', '127.0.0.1', 'ftp');
    assert.ok(result.ok);
    assert.equal(result.user.anonymous, true);
    assert.equal(result.user.root, path.join(dataRoot, 'pub'));
    assert.deepEqual(result.user.permissions, { '/': ['list', 'download'] });
    assert.deepEqual(result.user.limits, { ...NO_LIMITS, bandwidthDown: 1000 }, "the server's defaults");
  }
  identity.close();
});

test('password cache: a repeat login skips scrypt; a changed hash invalidates it', async () => {
  const { identity, usersFile, counter } = await setup(aliceYaml(hashPw), { reloadCheckMs: 0 });
  assert.equal((await identity.authenticate('alice', 'pw', '127.0.0.1', 'ftp')).ok, true);
  assert.equal(counter.verifications, 1);
  assert.equal((await identity.authenticate('alice', 'pw', '127.0.0.1', 'ftp')).ok, true);
  assert.equal(counter.verifications, 1, 'second login served from the cache');
  assert.deepEqual(await identity.authenticate('alice', 'wrong', '127.0.0.1', 'ftp'), { ok: false, reason: 'bad-password' });
  assert.equal(counter.verifications, 2, 'a different password is verified for real');

  // Same password, re-hashed (new salt): the cache entry no longer applies.
  await writeFile(usersFile, aliceYaml(await hashPassword('pw')));
  await identity.reload();
  assert.equal((await identity.authenticate('alice', 'pw', '127.0.0.1', 'ftp')).ok, true);
  assert.equal(counter.verifications, 3);

  // Password changed: the old one stops working at once.
  await writeFile(usersFile, aliceYaml(hashOther));
  await identity.reload();
  assert.deepEqual(await identity.authenticate('alice', 'pw', '127.0.0.1', 'ftp'), { ok: false, reason: 'bad-password' });
  assert.equal((await identity.authenticate('alice', 'other', '127.0.0.1', 'ftp')).ok, true);
  identity.close();
});

test('the file is reloaded when it changes; a bad file keeps the previous users', async () => {
  const errors: unknown[] = [];
  const { identity, usersFile } = await setup(aliceYaml(hashPw), { reloadCheckMs: 0, onReloadError: (e) => errors.push(e) });
  assert.deepEqual(await identity.authenticate('carol', 'pw', '127.0.0.1', 'ftp'), { ok: false, reason: 'unknown-user' });

  await writeFile(usersFile, aliceYaml(hashPw) + `  carol:\n    password: ${hashPw}\n`);
  assert.equal((await identity.authenticate('carol', 'pw', '127.0.0.1', 'ftp')).ok, true, 'picked up without reload()');

  await writeFile(usersFile, 'users:\n  carol:\n    password: plaintext\n');
  assert.equal((await identity.authenticate('carol', 'pw', '127.0.0.1', 'ftp')).ok, true, 'previous users kept');
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /users\.carol\.password/);
  await assert.rejects(identity.reload(), /users\.carol\.password/);
  assert.equal(identity.health().up, false);
  assert.match(identity.health().detail, /unreadable or invalid since .*users\.carol\.password.*serving the 2 users read at/);
  await writeFile(usersFile, aliceYaml(hashPw));
  await identity.reload();
  assert.equal(identity.health().up, true);
  identity.close();
});

test('reload checks are throttled by reloadCheckMs', async () => {
  const { identity, usersFile } = await setup(aliceYaml(hashPw), { reloadCheckMs: 60_000 });
  await writeFile(usersFile, aliceYaml(hashPw) + `  carol:\n    password: ${hashPw}\n`);
  assert.deepEqual(await identity.authenticate('carol', 'pw', '127.0.0.1', 'ftp'), { ok: false, reason: 'unknown-user' });
  identity.close();
});

test('an invalid file at start-up is an error', async () => {
  await assert.rejects(setup('users:\n  alice:\n    password: hunter2\n'), /plaintext/);
});

/** What an SSH client offers for a key: its type and wire blob. */
const offer = (key: GeneratedKey) => {
  const parsed = parseAuthorizedKey(key.line);
  return { type: parsed.type, data: Buffer.from(parsed.data) };
};
const keysYaml = (...keys: GeneratedKey[]) => `    public_keys:\n${keys.map((k) => `      - ${k.line}\n`).join('')}`;

test("authenticateKey: any of the user's keys is accepted and gives the user with its keys; others are refused", async () => {
  const { identity, dataRoot, counter } = await setup(aliceYaml(hashPw, keysYaml(keyA, keyB) + '    home: homes/alice\n'));
  for (const key of [keyA, keyB]) {
    const result = await identity.authenticateKey('alice', offer(key), '127.0.0.1', 'sftp');
    assert.ok(result.ok, key.line);
    assert.equal(result.user.name, 'alice');
    assert.equal(result.user.root, path.join(dataRoot, 'homes', 'alice'));
    assert.deepEqual(
      result.user.publicKeys?.map((k) => k.fingerprint),
      [keyA.fingerprint, keyB.fingerprint],
    );
    assert.equal(result.user.authMethods, undefined);
    assert.ok((await stat(result.user.root)).isDirectory());
  }
  assert.deepEqual(await identity.authenticateKey('alice', offer(keyC), '127.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
  // The blob decides, not the claimed type (an RSA key is offered as rsa-sha2-256 too).
  assert.equal((await identity.authenticateKey('alice', { type: 'rsa-sha2-256', data: offer(keyA).data }, '127.0.0.1', 'sftp')).ok, true);
  const truncated = { type: 'ssh-ed25519', data: offer(keyA).data.subarray(0, 40) };
  assert.deepEqual(await identity.authenticateKey('alice', truncated, '127.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
  assert.equal(counter.verifications, 0, 'no scrypt for keys');
  identity.close();
});

test('authenticateKey: unknown users, users without keys, disabled, allow_from', async () => {
  const { identity } = await setup(
    aliceYaml(hashPw, keysYaml(keyA) + '    allow_from: [10.0.0.0/8]\n') +
      `  bob:\n    password: ${hashPw}\n    disabled: true\n${keysYaml(keyB)}` +
      `  carol:\n    password: ${hashPw}\n` +
      'anonymous:\n  enabled: true\n',
  );
  assert.deepEqual(await identity.authenticateKey('mallory', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' });
  assert.deepEqual(await identity.authenticateKey('__proto__', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' });
  assert.deepEqual(await identity.authenticateKey('anonymous', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' });
  const zeros = { type: 'ssh-ed25519', data: Buffer.alloc(offer(keyA).data.length) };
  assert.deepEqual(await identity.authenticateKey('mallory', zeros, '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' }, 'the dummy key never lets in');
  assert.deepEqual(await identity.authenticateKey('carol', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
  assert.deepEqual(await identity.authenticateKey('bob', offer(keyB), '10.0.0.1', 'sftp'), { ok: false, reason: 'disabled' });
  assert.deepEqual(await identity.authenticateKey('bob', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' }, 'disabled only told to the key holder');
  assert.deepEqual(await identity.authenticateKey('alice', offer(keyA), '192.168.0.1', 'sftp'), { ok: false, reason: 'address-denied' });
  assert.deepEqual(await identity.authenticateKey('alice', offer(keyB), '192.168.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
  assert.equal((await identity.authenticateKey('alice', offer(keyA), '::ffff:10.1.2.3', 'sftp')).ok, true);
  identity.close();
});

test('auth_methods: a method the user does not have is refused after its credential; both methods each succeed alone', async () => {
  const { identity } = await setup(
    aliceYaml(hashPw, keysYaml(keyA) + '    auth_methods: [publickey]\n') +
      `  bob:\n    password: ${hashPw}\n    auth_methods: [password]\n${keysYaml(keyB)}` +
      `  carol:\n    password: ${hashPw}\n    auth_methods: [publickey, password]\n${keysYaml(keyC)}`,
  );
  assert.deepEqual(await identity.authenticate('alice', 'pw', '127.0.0.1', 'ftp'), { ok: false, reason: 'method-not-allowed' });
  assert.deepEqual(await identity.authenticate('alice', 'nope', '127.0.0.1', 'ftp'), { ok: false, reason: 'bad-password' });
  const alice = await identity.authenticateKey('alice', offer(keyA), '127.0.0.1', 'sftp');
  assert.ok(alice.ok);
  assert.deepEqual(alice.user.authMethods, ['publickey']);

  assert.deepEqual(await identity.authenticateKey('bob', offer(keyB), '127.0.0.1', 'sftp'), { ok: false, reason: 'method-not-allowed' });
  assert.equal((await identity.authenticate('bob', 'pw', '127.0.0.1', 'ftp')).ok, true);

  // Two methods: each credential is accepted on its own; nextMethods decides when the login is complete.
  const byPassword = await identity.authenticate('carol', 'pw', '127.0.0.1', 'ftp');
  assert.ok(byPassword.ok);
  assert.deepEqual(byPassword.user.authMethods, ['publickey', 'password']);
  assert.equal((await identity.authenticateKey('carol', offer(keyC), '127.0.0.1', 'sftp')).ok, true);
  identity.close();
});

test('a key added to the file works without a restart; a removed one stops working', async () => {
  const { identity, usersFile } = await setup(aliceYaml(hashPw, keysYaml(keyA)), { reloadCheckMs: 0 });
  assert.deepEqual(await identity.authenticateKey('alice', offer(keyB), '127.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
  await writeFile(usersFile, aliceYaml(hashPw, keysYaml(keyB)));
  assert.equal((await identity.authenticateKey('alice', offer(keyB), '127.0.0.1', 'sftp')).ok, true);
  assert.deepEqual(await identity.authenticateKey('alice', offer(keyA), '127.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
  identity.close();
});
