import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { createTestDatabase } from '../../../../test/support/postgres';
import { hashPassword, verifyPassword } from '../password';
import { sshKeygen } from '../testKeys';
import { loadUsersFile, parseUsersFile, saveUsersFile } from '../usersFile';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
let dir: string;
let usersFile: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'identity-cli-'));
  usersFile = path.join(dir, 'users.yaml');
});
after(() => rm(dir, { recursive: true, force: true }));

/** Runs ftpctl as `npm run ftpctl` would, with the given stdin. */
function ftpctl(args: string[], stdin = '', env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'libs/identity/src/cli/ftpctl.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, FTP_USERS_FILE: usersFile, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

test('hash-password reads stdin and prints a verifiable hash', async () => {
  const r = await ftpctl(['hash-password'], 's3cret\n');
  assert.equal(r.code, 0, r.stderr);
  const hash = r.stdout.trim();
  assert.match(hash, /^scrypt\$/);
  assert.equal(await verifyPassword('s3cret', hash), true);
  assert.equal((await ftpctl(['hash-password'], '')).code, 1, 'empty password');
});

test('user add, list, passwd, remove', async () => {
  let r = await ftpctl(
    ['user', 'add', 'alice', '--password-stdin', '--home', 'partners/alice', '--perm', '/=list,download', '--perm', '/inbox=list,upload', '--group', 'partners'],
    'pw1\r\n',
  );
  assert.equal(r.code, 0, r.stderr);
  r = await ftpctl(['user', 'add', 'bob', '--password-stdin'], 'pw2\n');
  assert.equal(r.code, 0, r.stderr);

  const data = await loadUsersFile(usersFile);
  assert.equal(await verifyPassword('pw1', data.users.alice.password), true);
  assert.deepEqual(data.users.alice.permissions, { '/': ['list', 'download'], '/inbox': ['list', 'upload'] });
  assert.equal(data.users.alice.home, 'partners/alice');
  assert.deepEqual(data.users.alice.groups, ['partners']);
  assert.equal(data.users.bob.permissions?.['/'].length, 8);

  r = await ftpctl(['user', 'list']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAME\s+HOME\s+GROUPS\s+AUTH\n/);
  assert.match(r.stdout, /alice\s+partners\/alice\s+partners/);
  assert.match(r.stdout, /bob\s+bob\s+password\|publickey\n/);
  assert.ok(!r.stdout.includes('scrypt'), 'list never prints hashes');

  r = await ftpctl(['user', 'passwd', 'alice', '--password-stdin'], 'pw3\n');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await verifyPassword('pw3', (await loadUsersFile(usersFile)).users.alice.password), true);

  r = await ftpctl(['user', 'remove', 'bob']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Object.keys((await loadUsersFile(usersFile)).users), ['alice']);
  assert.equal((await ftpctl(['user', 'remove', 'bob'])).code, 1);
});

test('adding an existing user fails with exit 1 and leaves the file alone', async () => {
  assert.equal((await ftpctl(['user', 'add', 'carol', '--password-stdin'], 'a\n')).code, 0);
  const before = await readFile(usersFile, 'utf8');
  const r = await ftpctl(['user', 'add', 'carol', '--password-stdin'], 'b\n');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /user "carol" already exists/);
  assert.equal(await readFile(usersFile, 'utf8'), before);
});

test('usage errors exit 2', async () => {
  for (const args of [[], ['frobnicate'], ['user'], ['user', 'add', 'bad name!', '--password-stdin'], ['user', 'add', 'dave'], ['user', 'add', 'dave', '--password-stdin', '--perm', '/=fly'], ['user', 'add', 'dave', '--bogus']]) {
    const r = await ftpctl(args, 'pw\n');
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.length > 0);
  }
});

test('user add-key, list, set-auth-methods, remove-key', async () => {
  assert.equal((await ftpctl(['user', 'add', 'erin', '--password-stdin'], 'pw\n')).code, 0);
  const ed = sshKeygen(dir, 'ed25519', { comment: 'erin@laptop' });
  const ec = sshKeygen(dir, 'ecdsa', { bits: 384 });
  const rsa = sshKeygen(dir, 'rsa', { bits: 2048 });

  // Several lines at once, as in an authorized_keys file: blank lines and comments are skipped.
  let r = await ftpctl(['user', 'add-key', 'erin'], `# erin's keys\n${ed.line}\n\n${ec.line}\r\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`added key ${escape(ed.fingerprint)} \\(ssh-ed25519\\) to erin`));
  r = await ftpctl(['user', 'add-key', 'erin'], rsa.line);
  assert.equal(r.code, 0, r.stderr);
  let erin = (await loadUsersFile(usersFile)).users.erin;
  assert.deepEqual(
    erin.publicKeys.map((k) => k.fingerprint),
    [ed.fingerprint, ec.fingerprint, rsa.fingerprint],
  );
  assert.ok((await readFile(usersFile, 'utf8')).includes(`      - ${ed.line}\n`), 'stored as given');

  r = await ftpctl(['user', 'list']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /erin\s+erin\s+password\|publickey\n/);
  for (const k of [ed, ec, rsa]) assert.ok(r.stdout.includes(`  key ${k.fingerprint} `), r.stdout);
  assert.ok(r.stdout.includes(`  key ${ed.fingerprint} ssh-ed25519 erin@laptop\n`), r.stdout);
  assert.ok(!r.stdout.includes('AAAA'), 'list shows fingerprints, not keys');

  r = await ftpctl(['user', 'set-auth-methods', 'erin', 'publickey,password']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /auth methods of erin: publickey\+password/);
  assert.deepEqual((await loadUsersFile(usersFile)).users.erin.authMethods, ['publickey', 'password']);
  assert.match((await ftpctl(['user', 'list'])).stdout, /erin\s+erin\s+publickey\+password\n/);

  // remove-key takes the fingerprint as list shows it, with or without the SHA256: prefix.
  r = await ftpctl(['user', 'remove-key', 'erin', ec.fingerprint]);
  assert.equal(r.code, 0, r.stderr);
  r = await ftpctl(['user', 'remove-key', 'erin', rsa.fingerprint.slice('SHA256:'.length)]);
  assert.equal(r.code, 0, r.stderr);
  erin = (await loadUsersFile(usersFile)).users.erin;
  assert.deepEqual(
    erin.publicKeys.map((k) => k.fingerprint),
    [ed.fingerprint],
  );
  r = await ftpctl(['user', 'remove-key', 'erin', ec.fingerprint]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /user erin has no key SHA256:/);

  // The last key of a user who needs one stays, until the methods change.
  const before = await readFile(usersFile, 'utf8');
  r = await ftpctl(['user', 'remove-key', 'erin', ed.fingerprint]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /last key of erin, whose auth methods require one/);
  assert.equal(await readFile(usersFile, 'utf8'), before);
  assert.equal((await ftpctl(['user', 'set-auth-methods', 'erin', 'any'])).code, 0);
  assert.equal((await loadUsersFile(usersFile)).users.erin.authMethods, undefined);
  assert.equal((await ftpctl(['user', 'remove-key', 'erin', ed.fingerprint])).code, 0);
  assert.deepEqual((await loadUsersFile(usersFile)).users.erin.publicKeys, []);

  // Requiring keys of a user without any would lock them out.
  r = await ftpctl(['user', 'set-auth-methods', 'erin', 'publickey']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /erin has no public key: add one first/);
  assert.equal((await ftpctl(['user', 'set-auth-methods', 'erin', 'password'])).code, 0);
  assert.deepEqual((await loadUsersFile(usersFile)).users.erin.authMethods, ['password']);
});

test('user add-key refuses bad and duplicate keys, adding none of the input', async () => {
  assert.equal((await ftpctl(['user', 'add', 'frank', '--password-stdin'], 'pw\n')).code, 0);
  const ed = sshKeygen(dir, 'ed25519');
  const other = sshKeygen(dir, 'ed25519');
  const rsa1024 = sshKeygen(dir, 'rsa', { bits: 1024 });
  assert.equal((await ftpctl(['user', 'add-key', 'frank'], ed.line)).code, 0);
  const before = await readFile(usersFile, 'utf8');

  let r = await ftpctl(['user', 'add-key', 'frank'], `${other.line}\n${ed.line}\n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`no key added: user frank already has key ${escape(ed.fingerprint)}`));
  r = await ftpctl(['user', 'add-key', 'frank'], `${other.line}\n${other.line}\n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /line 2: the same key \(SHA256:.+\) appears twice/);
  r = await ftpctl(['user', 'add-key', 'frank'], `${other.line}\n# old\n${rsa1024.line}\nrestrict ${other.line}\n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /line 3: ssh-rsa: 1024-bit key is too short/);
  assert.match(r.stderr, /line 4: authorized_keys options before the key type/);
  r = await ftpctl(['user', 'add-key', 'frank'], await readFile(ed.privateFile, 'utf8'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /holds a private key/);
  assert.ok(!r.stderr.includes('b3BlbnNzaC'), 'no piece of the private key echoed');
  r = await ftpctl(['user', 'add-key', 'frank'], '\n# nothing\n');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no public key on standard input/);
  assert.equal(await readFile(usersFile, 'utf8'), before, 'file untouched');

  assert.equal((await ftpctl(['user', 'add-key', 'nobody'], other.line)).code, 1);
  for (const args of [['user', 'add-key'], ['user', 'add-key', 'frank', 'extra'], ['user', 'remove-key', 'frank'], ['user', 'set-auth-methods', 'frank'], ['user', 'set-auth-methods', 'frank', 'publickey,otp']]) {
    r = await ftpctl(args, other.line);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  assert.equal(await readFile(usersFile, 'utf8'), before, 'file untouched');
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

test('db migrate, users import FILE (YAML → PostgreSQL) and users export (the reverse), with a test database', async () => {
  const db = await createTestDatabase('ftpctl');
  try {
    const env = { FTP_USERS_DATABASE_URL: db.url, FTP_DATA_DIR: path.join(dir, 'data') };
    let r = await ftpctl(['db', 'migrate'], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applying migration 001\.do\.user-store\.sql\napplying migration 002\.do\.limit-names\.sql\nschema at version 2 \(was 0\)/);
    r = await ftpctl(['db', 'migrate'], '', env);
    assert.match(r.stdout, /schema already at version 2/);

    const key = sshKeygen(dir, 'ed25519');
    const source = path.join(dir, 'import.yaml');
    const hash = await hashPassword('pw');
    const yaml =
      `users:\n  ann:\n    password: ${hash}\n    groups: [partners, labels]\n    protocols: [sftp]\n    expires_at: 2031-01-01\n` +
      `    public_keys:\n      - ${key.line}\n  ben:\n    password: ${hash}\n    home: b\n    limits: {daily_upload_bytes: 9, bandwidth_down: 0}\n` +
      'groups:\n  partners:\n    description: p\n    permissions:\n      /: [list]\n';
    await saveUsersFile(source, parseUsersFile(yaml));
    r = await ftpctl(['users', 'import', source], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 2 users and 2 groups into PostgreSQL/);
    const count = await db.query('SELECT count(*)::int AS n FROM ftp_users');
    assert.equal(count.rows[0].n, 2);

    r = await ftpctl(['users', 'export'], '', env);
    assert.equal(r.code, 0, r.stderr);
    const exported = parseUsersFile(r.stdout);
    const original = parseUsersFile(yaml);
    assert.deepEqual(exported.users, original.users);
    assert.deepEqual(exported.groups, { ...original.groups, labels: {} }, 'the label became an empty group');
    const file = path.join(dir, 'exported.yaml');
    r = await ftpctl(['users', 'export', file], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await loadUsersFile(file)).users, original.users);

    // --prune: the database ends up with the file's users only.
    await saveUsersFile(source, { ...original, users: { ben: original.users.ben } });
    r = await ftpctl(['users', 'import', source, '--prune'], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await db.query('SELECT name FROM ftp_users')).rows, [{ name: 'ben' }]);

    assert.equal((await ftpctl(['users', 'import'], '', env)).code, 2);
    assert.equal((await ftpctl(['users', 'import', path.join(dir, 'nope.yaml')], '', env)).code, 1);
    assert.equal((await ftpctl(['db', 'migrate'], '', { FTP_USERS_DATABASE_URL: '' })).code, 2, 'no database URL');
    r = await ftpctl(['users', 'export'], '', { FTP_USERS_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ftpctl: .*(ECONNREFUSED|connect)/);
  } finally {
    await db.drop();
  }
});

const LIMIT_ROW = (name: string, own: string, inForce: string, from: string) => new RegExp(`^${name}\\s+${escape(own)}\\s+${escape(inForce)}\\s+${escape(from)}$`, 'm');

test('user set changes only the limits given (sizes, 0 = none, inherit), user show tells where each limit comes from', async () => {
  const hash = await hashPassword('pw');
  await saveUsersFile(
    usersFile,
    parseUsersFile(
      `users:\n  lim:\n    password: ${hash}\n    groups: [partners, gold]\n    limits: {quota_files: 10}\n` +
        'groups:\n  partners:\n    limits: {quota_bytes: 5000, bandwidth_up: 700}\n  gold:\n    limits: {quota_bytes: 9000, sessions_per_minute: 3}\n',
    ),
  );
  let r = await ftpctl(['user', 'set', 'lim', '--daily-upload-bytes', '10G', '--bandwidth-down', '4MiB', '--session-bandwidth-up', '2MB', '--bandwidth-up', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `limits of lim: quota_files=10 daily_upload_bytes=${10 * 2 ** 30} bandwidth_up=none bandwidth_down=${4 * 2 ** 20} session_bandwidth_up=2000000`);
  assert.deepEqual((await loadUsersFile(usersFile)).users.lim.limits, {
    quotaFiles: 10,
    dailyUploadBytes: 10 * 2 ** 30,
    bandwidthUp: 0,
    bandwidthDown: 4 * 2 ** 20,
    sessionBandwidthUp: 2_000_000,
  });

  r = await ftpctl(['user', 'show', 'lim'], '', { FTP_DEFAULT_QUOTA_FILES: '99', FTP_DEFAULT_DAILY_DOWNLOAD_BYTES: '12345', REDIS_URL: '' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^lim: home lim, groups partners, gold\nLIMIT\s+OWN\s+IN FORCE\s+FROM\n/);
  assert.match(r.stdout, LIMIT_ROW('quota_bytes', '-', '5000', 'group partners'));
  assert.match(r.stdout, LIMIT_ROW('quota_files', '10', '10', 'user'));
  assert.match(r.stdout, LIMIT_ROW('daily_download_bytes', '-', '12345', 'default (FTP_DEFAULT_DAILY_DOWNLOAD_BYTES)'));
  assert.match(r.stdout, LIMIT_ROW('bandwidth_up', 'none', 'none', 'user'), "the user's 0 wins over the group's 700");
  assert.match(r.stdout, LIMIT_ROW('session_bandwidth_down', '-', 'none', 'default (FTP_DEFAULT_SESSION_BANDWIDTH_DOWN)'));
  assert.match(r.stdout, LIMIT_ROW('sessions_per_minute', '-', '3', 'group gold'));
  assert.match(r.stdout, /^usage: not shown: REDIS_URL is not set/m);

  // inherit drops the user's own value; the last one gone, so is `limits:`.
  r = await ftpctl(['user', 'set', 'lim', '--bandwidth-up', 'inherit', '--quota-files', 'inherit', '--daily-upload-bytes', 'inherit']);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await ftpctl(['user', 'show', 'lim'], '', { REDIS_URL: '' })).stdout, LIMIT_ROW('bandwidth_up', '-', '700', 'group partners'));
  r = await ftpctl(['user', 'set', 'lim', '--bandwidth-down', 'inherit', '--session-bandwidth-up', 'inherit']);
  assert.equal(r.stdout.trim(), 'limits of lim: none of its own (all inherited)');
  assert.equal((await loadUsersFile(usersFile)).users.lim.limits, undefined);

  const before = await readFile(usersFile, 'utf8');
  for (const args of [
    ['user', 'set', 'lim'],
    ['user', 'set', 'lim', '--quota-bytes', '-1'],
    ['user', 'set', 'lim', '--quota-bytes', '1.5G'],
    ['user', 'set', 'lim', '--quota-files', '10K'],
    ['user', 'set', 'lim', '--sessions-per-minute', 'lots'],
    ['user', 'set', 'lim', '--quota-bytes', '99999999T'],
    ['user', 'set', 'lim', '--speed', '1'],
    ['user', 'set'],
    ['user', 'show'],
  ]) {
    r = await ftpctl(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  assert.match((await ftpctl(['user', 'set', 'lim', '--quota-files', '10K'])).stderr, /--quota-files 10K: expected a whole number \(0 = none\), or inherit/);
  r = await ftpctl(['user', 'set', 'nobody', '--quota-bytes', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no user "nobody"/);
  assert.equal((await ftpctl(['user', 'show', 'nobody'], '', { REDIS_URL: '' })).code, 1);
  assert.equal(await readFile(usersFile, 'utf8'), before, 'file untouched');
  r = await ftpctl(['quota', 'scan']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /quota scan runs in the edge.*--api URL quota scan/);
});

test('user show reads the usage and today\'s bytes from Redis (REDIS_URL, FTP_REDIS_PREFIX), as the edge keeps them', async () => {
  const { createRedisClusterState, createRedisConnection } = await import('@ftp/cluster-state');
  const { deleteKeysUnder } = await import('../../../../test/support/redisKeys');
  const url = process.env.FTP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `ftpctl-test-${process.pid}-${Date.now()}:`;
  const state = await createRedisClusterState({ url, prefix, pasvRange: { min: 30000, max: 30001 } });
  const admin = createRedisConnection(url);
  try {
    const hash = await hashPassword('pw');
    await saveUsersFile(usersFile, parseUsersFile(`users:\n  used:\n    password: ${hash}\n    limits: {quota_bytes: 100000}\n  fresh:\n    password: ${hash}\n`));
    await state.usage.set('used', { bytes: 4321, files: 7 });
    await state.budgets.take({ user: 'used', direction: 'upload', replicaId: 'r1', want: 300, bytesPerSecond: 0, burstMs: 1000, dailyBytes: 1_000_000 });
    const env = { REDIS_URL: url, FTP_REDIS_PREFIX: prefix };
    let r = await ftpctl(['user', 'show', 'used'], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: 4321 bytes in 7 files$/m);
    assert.match(r.stdout, /^today \(UTC\): 300 bytes uploaded, 0 bytes downloaded$/m);
    r = await ftpctl(['user', 'show', 'fresh'], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: not scanned yet/m);
    r = await ftpctl(['user', 'show', 'used'], '', { REDIS_URL: 'redis://127.0.0.1:1', FTP_REDIS_PREFIX: prefix });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: not shown: Redis did not answer/m, 'the limits are shown all the same');
  } finally {
    await state.close();
    await deleteKeysUnder(admin, prefix);
    admin.disconnect();
  }
});

test('user set and user show on PostgreSQL (FTP_USERS_DATABASE_URL), audited as ftpctl', async () => {
  const db = await createTestDatabase('ftpctl_limits');
  try {
    const env = { FTP_USERS_DATABASE_URL: db.url, FTP_DATA_DIR: path.join(dir, 'data'), REDIS_URL: '', USER: 'opal' };
    const hash = await hashPassword('pw');
    const source = path.join(dir, 'limits-import.yaml');
    await saveUsersFile(source, parseUsersFile(`users:\n  pam:\n    password: ${hash}\n    groups: [partners]\ngroups:\n  partners:\n    limits: {quota_bytes: 777}\n`));
    assert.equal((await ftpctl(['users', 'import', source], '', env)).code, 0);

    let r = await ftpctl(['user', 'set', 'pam', '--quota-bytes', '0', '--sessions-per-minute', '12'], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'limits of pam: quota_bytes=none sessions_per_minute=12');
    assert.deepEqual((await db.query("SELECT limits FROM ftp_users WHERE name = 'pam'")).rows[0].limits, { quota_bytes: 0, sessions_per_minute: 12 });
    const audit = await db.query("SELECT actor, via, after FROM ftp_admin_audit WHERE action = 'user.update' AND target = 'pam'");
    assert.equal(audit.rows.length, 1);
    assert.deepEqual([audit.rows[0].actor, audit.rows[0].via, audit.rows[0].after.limits], ['opal', 'ftpctl', { quota_bytes: 0, sessions_per_minute: 12 }]);

    r = await ftpctl(['user', 'show', 'pam'], '', { ...env, FTP_DEFAULT_BANDWIDTH_UP: '5' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, LIMIT_ROW('quota_bytes', 'none', 'none', 'user'));
    assert.match(r.stdout, LIMIT_ROW('bandwidth_up', '-', '5', 'default (FTP_DEFAULT_BANDWIDTH_UP)'));
    assert.match(r.stdout, LIMIT_ROW('sessions_per_minute', '12', '12', 'user'));

    r = await ftpctl(['user', 'set', 'pam', '--quota-bytes', 'inherit', '--sessions-per-minute', 'inherit'], '', env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await db.query("SELECT limits FROM ftp_users WHERE name = 'pam'")).rows[0].limits, null);
    assert.match((await ftpctl(['user', 'show', 'pam'], '', env)).stdout, LIMIT_ROW('quota_bytes', '-', '777', 'group partners'));
    assert.equal((await ftpctl(['user', 'set', 'nobody', '--quota-bytes', '1'], '', env)).code, 1);
  } finally {
    await db.drop();
  }
});
