import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureUsersFile, randomPassword } from './bootstrap';
import { verifyPassword } from './password';
import { loadUsersFile } from './usersFile';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'identity-boot-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('creates a demo user with a random password once', async () => {
  const usersFile = path.join(dir, 'conf', 'users.yaml');
  const dataRoot = path.join(dir, 'data');
  const first = await ensureUsersFile(usersFile, dataRoot);
  assert.equal(first.created, true);
  assert.equal(first.user, 'demo');
  assert.match(first.password ?? '', /^[A-Za-z0-9_-]{20}$/);
  assert.equal((await stat(usersFile)).mode & 0o777, 0o600);
  assert.ok((await stat(path.join(dataRoot, 'demo'))).isDirectory());

  const data = await loadUsersFile(usersFile);
  assert.deepEqual(Object.keys(data.users), ['demo']);
  assert.equal(data.users.demo.home, 'demo');
  assert.equal(data.users.demo.permissions?.['/'].length, 8);
  assert.equal(await verifyPassword(first.password ?? '', data.users.demo.password), true);
  assert.equal(data.anonymous.enabled, false);
  assert.ok(!(await readFile(usersFile, 'utf8')).includes(first.password ?? ''), 'only the hash is stored');

  const before = await readFile(usersFile, 'utf8');
  assert.deepEqual(await ensureUsersFile(usersFile, dataRoot), { created: false });
  assert.equal(await readFile(usersFile, 'utf8'), before, 'existing file untouched');
});

test('concurrent bootstraps create the file exactly once', async () => {
  const usersFile = path.join(dir, 'race.yaml');
  const results = await Promise.all([1, 2, 3].map(() => ensureUsersFile(usersFile, path.join(dir, 'data2'))));
  assert.equal(results.filter((r) => r.created).length, 1);
});

test('random passwords differ', () => {
  assert.notEqual(randomPassword(), randomPassword());
  assert.equal(randomPassword(32).length, 32);
});
