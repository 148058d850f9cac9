import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword } from './password';
import { sshKeygen } from './testKeys';
import { loadUsersFile, parseUsersFile, saveUsersFile, stringifyUsersFile } from './usersFile';

let dir: string;
let hash: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'identity-users-'));
  hash = await hashPassword('pw');
});
after(() => rm(dir, { recursive: true, force: true }));

const userYaml = (extra: string) => `users:\n  alice:\n    password: ${hash}\n${extra}`;

test('a full file loads with camelCase fields and defaults', async () => {
  const file = path.join(dir, 'full.yaml');
  await writeFile(
    file,
    `# comment
users:
  alice:
    password: ${hash}
    home: partners/alice
    permissions:
      /: [list, download]
      /inbox/: [list, upload]
    groups: [partners]
    allow_from: [127.0.0.1, 10.0.0.0/8]
    require_tls: true
    max_sessions: 4
  bob:
    password: ${hash}
anonymous:
  enabled: true
  home: pub
`,
  );
  const data = await loadUsersFile(file);
  assert.deepEqual(data.users.alice, {
    password: hash,
    home: 'partners/alice',
    permissions: { '/': ['list', 'download'], '/inbox': ['list', 'upload'] },
    groups: ['partners'],
    allowFrom: ['127.0.0.1', '10.0.0.0/8'],
    requireTls: true,
    maxSessions: 4,
    disabled: false,
    publicKeys: [],
  });
  assert.equal(data.users.alice.authMethods, undefined, 'absent: any one of password and public key');
  assert.equal(data.users.bob.home, 'bob');
  // Not set: the user's groups give it, or the default (everything on "/", see resolve.ts).
  assert.equal(data.users.bob.permissions, undefined);
  assert.equal(data.users.bob.allowFrom, undefined);
  assert.deepEqual(data.anonymous, { enabled: true, home: 'pub' });
});

test('an empty file means no users and anonymous off', () => {
  assert.deepEqual(parseUsersFile(''), { users: {}, groups: {}, anonymous: { enabled: false, home: 'pub' } });
});

test('plaintext passwords are refused with a hint', () => {
  assert.throws(() => parseUsersFile('users:\n  alice:\n    password: hunter2\n'), /users\.alice\.password: must be a scrypt hash.*plaintext.*hash-password/s);
  assert.throws(() => parseUsersFile('users:\n  alice:\n    password: scrypt$1$2\n'), /users\.alice\.password: malformed scrypt hash/);
  assert.throws(() => parseUsersFile('users:\n  alice: {}\n'), /users\.alice\.password: is required/);
});

test('unknown permissions name the user and folder', () => {
  assert.throws(
    () => parseUsersFile(userYaml('    permissions:\n      /: [list]\n      /inbox: [upload2]\n')),
    (err: Error) => err.message.includes('users.alice.permissions./inbox: unknown permission "upload2"'),
  );
  assert.throws(() => parseUsersFile(userYaml('    permissions:\n      /inbox: [upload]\n')), /users\.alice\.permissions: "\/" is required/);
});

test('home must stay inside the data root', () => {
  assert.throws(() => parseUsersFile(userYaml('    home: /etc\n')), /users\.alice\.home: "\/etc" must be relative/);
  assert.throws(() => parseUsersFile(userYaml('    home: a/../../b\n')), /users\.alice\.home: .* must not contain "\.\." segments/);
  assert.throws(() => parseUsersFile(userYaml('    home: ..\\x\n')), /users\.alice\.home/);
  assert.throws(() => parseUsersFile('anonymous:\n  home: ../pub\n'), /anonymous\.home/);
});

test('other mistakes are reported, all at once', () => {
  let message = '';
  try {
    parseUsersFile(userYaml('    alow_from: [1.2.3.4]\n    allow_from: [example.com]\n    max_sessions: 0\n    require_tls: "yes"\n'));
  } catch (err) {
    message = (err as Error).message;
  }
  assert.match(message, /users\.alice: unknown key "alow_from"/);
  assert.match(message, /users\.alice\.allow_from: "example\.com" is not an IP address or CIDR/);
  assert.match(message, /users\.alice\.max_sessions: must be a positive integer/);
  assert.match(message, /users\.alice\.require_tls: must be true or false/);
  assert.throws(() => parseUsersFile('users: [\n'), /not valid YAML/);
  assert.throws(() => parseUsersFile(`users:\n  "bad name":\n    password: ${hash}\n`), /users\.bad name: name must match/);
  assert.throws(() => parseUsersFile(`anonymous: {enabled: true}\nusers:\n  ftp:\n    password: ${hash}\n`), /users\.ftp: name is reserved/);
});

test('save writes atomically with mode 0600 and round-trips', async () => {
  const file = path.join(dir, 'sub', 'saved.yaml');
  const data = parseUsersFile(userYaml('    groups: [g]\n    permissions:\n      /: [list]\n      /in: [upload]\n'));
  await saveUsersFile(file, data);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(await loadUsersFile(file), data);
  await saveUsersFile(file, { ...data, users: {} });
  assert.deepEqual((await loadUsersFile(file)).users, {});
  assert.deepEqual(await readdir(path.dirname(file)), ['saved.yaml'], 'no temp files left behind');
  await assert.rejects(saveUsersFile(file, data, { exclusive: true }), { code: 'EEXIST' });
});

test('save refuses data the loader would refuse', async () => {
  const data = parseUsersFile(userYaml(''));
  data.users.alice.password = 'plaintext';
  await assert.rejects(saveUsersFile(path.join(dir, 'never.yaml'), data), /must be a scrypt hash/);
  await assert.rejects(stat(path.join(dir, 'never.yaml')), { code: 'ENOENT' });
});

test('public_keys and auth_methods load, with fingerprints as ssh-keygen -lf prints them', () => {
  const ed = sshKeygen(dir, 'ed25519', { comment: 'alice@laptop' });
  const rsa = sshKeygen(dir, 'rsa', { bits: 3072 });
  const data = parseUsersFile(userYaml(`    auth_methods: [publickey, password]\n    public_keys:\n      - ${ed.line}\n      - "${rsa.line}"\n`));
  const alice = data.users.alice;
  assert.deepEqual(alice.authMethods, ['publickey', 'password']);
  assert.deepEqual(
    alice.publicKeys.map((k) => [k.type, k.fingerprint, k.comment]),
    [
      ['ssh-ed25519', ed.fingerprint, 'alice@laptop'],
      ['ssh-rsa', rsa.fingerprint, 'rsa@test'],
    ],
  );
  assert.ok(Buffer.isBuffer(alice.publicKeys[0].data));
});

test('a bad key names the user, its place in the list and its line in the file; all problems at once', () => {
  const ed = sshKeygen(dir, 'ed25519');
  const rsa1024 = sshKeygen(dir, 'rsa', { bits: 1024 });
  const text = userYaml(`    public_keys:\n      - ${ed.line}\n      - ${rsa1024.line}\n      - from="10.0.0.1" ${ed.line}\n      - ${ed.line}\n      - 42\n`);
  let message = '';
  try {
    parseUsersFile(text, 'users.yaml');
  } catch (err) {
    message = (err as Error).message;
  }
  // users: line 1, alice: 2, password: 3, public_keys: 4, entries from line 5
  assert.match(message, /^users\.yaml: invalid users file:/);
  assert.match(message, /users\.alice\.public_keys\[1\] \(line 6\): ssh-rsa: 1024-bit key is too short/);
  assert.match(message, /users\.alice\.public_keys\[2\] \(line 7\): authorized_keys options before the key type/);
  assert.match(message, /users\.alice\.public_keys\[3\] \(line 8\): the same key \(SHA256:.+\) is listed twice/);
  assert.match(message, /users\.alice\.public_keys\[4\] \(line 9\): must be a string/);
  assert.doesNotMatch(message, /public_keys\[0\]/);
  assert.throws(() => parseUsersFile(userYaml('    public_keys: ssh-ed25519 AAAA\n')), /users\.alice\.public_keys: must be a list of authorized_keys lines/);
});

test('bad auth_methods are reported', () => {
  assert.throws(() => parseUsersFile(userYaml('    auth_methods: [publickey, otp]\n')), /users\.alice\.auth_methods: unknown method "otp"/);
  assert.throws(() => parseUsersFile(userYaml('    auth_methods: []\n')), /users\.alice\.auth_methods: must be a non-empty list/);
  assert.throws(() => parseUsersFile(userYaml('    auth_methods: publickey\n')), /users\.alice\.auth_methods: must be a list/);
  assert.throws(() => parseUsersFile(userYaml('    auth_methods: [keyboard-interactive]\n')), /write "password"/);
});

test('keys and auth methods round-trip through save: the key lines come back as given, one per line', async () => {
  const keys = [sshKeygen(dir, 'ed25519', { comment: 'a comment with  two spaces' }), sshKeygen(dir, 'ecdsa', { bits: 521 }), sshKeygen(dir, 'rsa')];
  const data = parseUsersFile(userYaml(`    auth_methods: [publickey]\n    public_keys:\n${keys.map((k) => `      - ${k.line}\n`).join('')}`));
  const text = stringifyUsersFile(data);
  for (const k of keys) assert.ok(text.includes(`\n      - ${k.line}\n`), `line kept as given:\n${text}`);
  assert.match(text, /auth_methods: \[publickey\]/);
  const file = path.join(dir, 'keys.yaml');
  await saveUsersFile(file, data);
  assert.deepEqual(await loadUsersFile(file), data);
  await saveUsersFile(file, await loadUsersFile(file));
  assert.equal(await readFile(file, 'utf8'), text, 'stable');
  assert.ok(!stringifyUsersFile(parseUsersFile(userYaml(''))).includes('public_keys'), 'no key, no entry');
});

test('groups, protocols, expires_at, description and limits load, report their mistakes and round-trip', async () => {
  const text =
    userYaml(
      '    groups: [partners, audit]\n    protocols: [sftp, ftps]\n    expires_at: 2030-01-31\n    description: ACME upload account\n' +
        '    limits: {daily_upload_bytes: 1000000, bandwidth_down: 0}\n',
    ) +
    'groups:\n  partners:\n    description: every partner\n    permissions:\n      /: [list, download]\n      /inbox: [list, upload]\n' +
    '    allow_from: [10.0.0.0/8]\n    limits: {quota_bytes: 5000000, quota_files: 1000, daily_download_bytes: 7, bandwidth_up: 100000,' +
    ' session_bandwidth_up: 1, session_bandwidth_down: 2, sessions_per_minute: 30}\n  audit: {}\n';
  const data = parseUsersFile(text);
  const alice = data.users.alice;
  assert.deepEqual(alice.protocols, ['sftp', 'ftps']);
  assert.equal(alice.expiresAt, '2030-01-31T00:00:00.000Z');
  assert.equal(alice.description, 'ACME upload account');
  assert.deepEqual(alice.limits, { dailyUploadBytes: 1000000, bandwidthDown: 0 }, '0 is kept: "none", not "unset"');
  assert.deepEqual(data.groups.partners, {
    description: 'every partner',
    permissions: { '/': ['list', 'download'], '/inbox': ['list', 'upload'] },
    allowFrom: ['10.0.0.0/8'],
    limits: { quotaBytes: 5000000, quotaFiles: 1000, dailyDownloadBytes: 7, bandwidthUp: 100000, sessionBandwidthUp: 1, sessionBandwidthDown: 2, sessionsPerMinute: 30 },
  });
  assert.deepEqual(data.groups.audit, {});
  const file = path.join(dir, 'groups.yaml');
  await saveUsersFile(file, data);
  assert.deepEqual(await loadUsersFile(file), data);
  assert.equal(parseUsersFile(userYaml('    expires_at: 2030-01-31T18:30:00+02:00\n')).users.alice.expiresAt, '2030-01-31T16:30:00.000Z');

  let message = '';
  try {
    parseUsersFile(
      userYaml('    protocols: [sftp, scp]\n    expires_at: tomorrow\n    limits: {daily_upload_bytes: -1, bandwidth_up: 1.5, daily_bytes: 3}\n    groups: [ok, "bad name"]\n') +
        'groups:\n  g1:\n    home: x\n    protocols: []\n',
    );
  } catch (err) {
    message = (err as Error).message;
  }
  assert.match(message, /users\.alice\.protocols: unknown protocol "scp"/);
  assert.match(message, /users\.alice\.expires_at: expected a date/);
  assert.match(message, /users\.alice\.limits\.daily_upload_bytes: must be a whole number, 0 or more \(0 = no limit\)/);
  assert.match(message, /users\.alice\.limits\.bandwidth_up: must be a whole number/);
  assert.match(message, /users\.alice\.limits: unknown key "daily_bytes", now daily_upload_bytes and daily_download_bytes \(known: quota_bytes, quota_files, daily_upload_bytes, /);
  assert.match(message, /users\.alice\.groups: "bad name" must match/);
  assert.match(message, /groups\.g1: unknown key "home"/);
  assert.match(message, /groups\.g1\.protocols: must be a non-empty list/);
});
