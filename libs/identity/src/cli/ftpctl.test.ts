import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { verifyPassword } from '../password';
import { loadUsersFile } from '../usersFile';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
let dir: string;
let usersFile: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'identity-cli-'));
  usersFile = path.join(dir, 'users.yaml');
});
after(() => rm(dir, { recursive: true, force: true }));

/** Runs ftpctl as `npm run ftpctl` would, with the given stdin. */
function ftpctl(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'libs/identity/src/cli/ftpctl.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, FTP_USERS_FILE: usersFile },
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
  assert.equal(data.users.bob.permissions['/'].length, 8);

  r = await ftpctl(['user', 'list']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAME\s+HOME\s+GROUPS\n/);
  assert.match(r.stdout, /alice\s+partners\/alice\s+partners/);
  assert.match(r.stdout, /bob\s+bob/);
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
