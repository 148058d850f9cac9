import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { PermanentStepError } from './errors';
import { mkdirInside, resolveInside, tempPathFor, writeFileAtomic } from './paths';

let base: string;
let root: string;

beforeEach(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'worker-paths-'));
  root = path.join(base, 'data');
  await fsp.mkdir(path.join(root, 'alice'), { recursive: true });
  await fsp.mkdir(path.join(base, 'outside'));
});
afterEach(() => fsp.rm(base, { recursive: true, force: true }));

test('paths inside resolve, relative or absolute, existing or not', async () => {
  await fsp.writeFile(path.join(root, 'alice', 'f'), '');
  assert.deepEqual(await resolveInside(root, 'alice/f'), { path: path.join(root, 'alice', 'f'), key: 'alice/f', exists: true });
  assert.deepEqual(await resolveInside(root, path.join(root, 'alice/new/deeper/x')), {
    path: path.join(root, 'alice', 'new', 'deeper', 'x'),
    key: 'alice/new/deeper/x',
    exists: false,
  });
  assert.deepEqual(await resolveInside(root, ''), { path: root, key: '', exists: true });
});

test('the root may be given through a symlink: keys stay relative to it', async () => {
  const linkRoot = path.join(base, 'link-to-data');
  await fsp.symlink(root, linkRoot);
  assert.equal((await resolveInside(linkRoot, path.join(linkRoot, 'alice', 'x'))).key, 'alice/x');
  assert.equal((await resolveInside(linkRoot, path.join(root, 'alice', 'x'))).key, 'alice/x');
});

test('.. anywhere, absolute paths elsewhere and NUL are refused', async () => {
  for (const target of ['../outside/x', 'alice/../../outside/x', 'alice/../alice/x', path.join(base, 'outside', 'x'), '/etc/passwd', 'a\0b']) {
    await assert.rejects(resolveInside(root, target), PermanentStepError, target);
  }
});

test('symlinks leading out are refused: as a directory on the way, as the last name, dangling', async () => {
  await fsp.symlink(path.join(base, 'outside'), path.join(root, 'alice', 'out'));
  await fsp.symlink(path.join(base, 'outside', 'file'), path.join(root, 'alice', 'file-out'));
  await fsp.symlink(path.join(root, 'nowhere'), path.join(root, 'alice', 'dangling'));
  await fsp.symlink(path.join(root, 'alice'), path.join(root, 'alias'));
  for (const target of ['alice/out/x', 'alice/out/new/x', 'alice/file-out', 'alice/dangling/x', 'alice/dangling']) {
    await assert.rejects(resolveInside(root, target), PermanentStepError, target);
  }
  // A symlink that stays inside is fine; the key names the real place.
  assert.equal((await resolveInside(root, 'alias/new')).key, 'alice/new');
  await assert.rejects(mkdirInside(root, 'alice/out/made'), PermanentStepError);
  assert.deepEqual(await fsp.readdir(path.join(base, 'outside')), []);
});

test('mkdirInside creates the directories and returns the real path', async () => {
  const made = await mkdirInside(root, 'alice/archive/2024/02');
  assert.equal(made.key, 'alice/archive/2024/02');
  assert.ok((await fsp.stat(made.path)).isDirectory());
});

test('writeFileAtomic replaces the file whole through a hidden temporary name', async () => {
  const file = path.join(root, 'alice', 'f.sha256');
  await writeFileAtomic(file, 'one\n');
  await writeFileAtomic(file, 'two\n');
  assert.equal(await fsp.readFile(file, 'utf8'), 'two\n');
  assert.deepEqual(await fsp.readdir(path.join(root, 'alice')), ['f.sha256']);
  const tmp = path.basename(tempPathFor(file));
  assert.match(tmp, /^\.f\.sha256\.[0-9a-f]{12}\.ftp-partial$/);
  // A failed write leaves neither a temp file nor a half target.
  await assert.rejects(writeFileAtomic(path.join(root, 'alice', 'missing-dir', 'x'), 'data'));
  assert.deepEqual(await fsp.readdir(path.join(root, 'alice')), ['f.sha256']);
});

test('jobs filing into the same new folder at once all succeed (a folder created meanwhile is not a dangling link)', async () => {
  for (let round = 0; round < 20; round++) {
    const dir = `alice/archive/${round}/11/26`;
    // Staggered, so that some calls look while others are creating the folders.
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => new Promise((resolve) => setTimeout(resolve, i % 4)).then(() => mkdirInside(root, dir))),
    );
    for (const result of results) assert.equal(result.key, dir);
  }
});
