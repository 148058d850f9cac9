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
    assert.match(r.stdout, /applying migration 001\.do\.user-store\.sql\nschema at version 1 \(was 0\)/);
    r = await ftpctl(['db', 'migrate'], '', env);
    assert.match(r.stdout, /schema already at version 1/);

    const key = sshKeygen(dir, 'ed25519');
    const source = path.join(dir, 'import.yaml');
    const hash = await hashPassword('pw');
    const yaml =
      `users:\n  ann:\n    password: ${hash}\n    groups: [partners, labels]\n    protocols: [sftp]\n    expires_at: 2031-01-01\n` +
      `    public_keys:\n      - ${key.line}\n  ben:\n    password: ${hash}\n    home: b\n    limits: {daily_bytes: 9}\n` +
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
