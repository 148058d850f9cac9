import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { partialNameFor } from './partial';
import { scanTree as scanUsage } from './usage';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'quota-scan-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('counts regular files and their bytes in every folder, not partial uploads, not what symlinks point at', async () => {
  const home = path.join(dir, 'alice');
  const outside = path.join(dir, 'bob');
  await mkdir(path.join(home, 'in', 'deep', 'er'), { recursive: true });
  await mkdir(path.join(home, 'empty'));
  await mkdir(outside);
  await writeFile(path.join(outside, 'big.bin'), Buffer.alloc(10_000));
  await writeFile(path.join(home, 'a.txt'), 'hello'); // 5
  await writeFile(path.join(home, '.hidden'), 'abc'); // 3: hidden files are files
  await writeFile(path.join(home, 'in', 'b.bin'), Buffer.alloc(1000));
  await writeFile(path.join(home, 'in', 'deep', 'er', 'c.bin'), Buffer.alloc(24));
  await writeFile(path.join(home, 'zero'), '');
  await writeFile(path.join(home, 'in', partialNameFor('upload.bin')), Buffer.alloc(777)); // an upload in progress
  await symlink(path.join(outside, 'big.bin'), path.join(home, 'link-to-file'));
  await symlink(outside, path.join(home, 'link-to-dir'));
  await symlink(path.join(dir, 'nowhere'), path.join(home, 'dangling'));
  assert.deepEqual(await scanUsage(home), { bytes: 5 + 3 + 1000 + 24, files: 5 });
});

test('a home that does not exist yet holds nothing; many files are all counted', async () => {
  assert.deepEqual(await scanUsage(path.join(dir, 'nobody')), { bytes: 0, files: 0 });
  const home = path.join(dir, 'many');
  await mkdir(home);
  await Promise.all(Array.from({ length: 300 }, (_, i) => writeFile(path.join(home, `f${i}`), Buffer.alloc(i))));
  assert.deepEqual(await scanUsage(home), { bytes: (299 * 300) / 2, files: 300 });
});
