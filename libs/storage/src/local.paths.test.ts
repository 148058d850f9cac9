// Path safety: no method may reach outside the root, whatever the path or symlink.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fixturePerTest, readAll, SECRET, storageCode, uploadText } from './testFixture';

const fx = fixturePerTest();

const secretPath = () => path.join(fx.outside, 'secret.txt');
const TRAVERSALS = ['../outside/secret.txt', '/../outside/secret.txt', '../../../../../outside/secret.txt', 'a/../../outside/secret.txt'];

async function assertSecretUntouched(): Promise<void> {
  assert.equal(await fsp.readFile(secretPath(), 'utf8'), SECRET);
  assert.deepEqual(await fsp.readdir(fx.outside), ['secret.txt']);
}

test('.. traversal stays inside the root in every method', async () => {
  const s = fx.storage;
  await fsp.writeFile(path.join(fx.root, 'mine.txt'), 'mine');
  for (const p of TRAVERSALS) {
    // Clamped at the virtual root, these name root/outside/secret.txt, which does not exist.
    await assert.rejects(s.stat(p), storageCode('not-found'), p);
    await assert.rejects(s.openRead(p), storageCode('not-found'), p);
    await assert.rejects(s.list(path.posix.dirname(p)), storageCode('not-found'), p);
    await assert.rejects(s.delete(p), storageCode('not-found'), p);
    await assert.rejects(s.rename(p, '/stolen.txt'), storageCode('not-found'), p);
    await assert.rejects(s.rename('/mine.txt', p), storageCode('not-found'), p);
    await assert.rejects(s.setModifiedTime(p, new Date(0)), storageCode('not-found'), p);
    await assert.rejects(s.openUpload(p, { kind: 'replace' }), storageCode('not-found'), p);
    await assert.rejects(s.mkdir(path.posix.dirname(p) + '/x'), storageCode('not-found'), p);
    await assert.rejects(s.rmdir(path.posix.dirname(p)), storageCode('not-found'), p);
  }
  assert.deepEqual((await s.list('/../..')).map((e) => e.name), ['mine.txt']);
  await assertSecretUntouched();
});

test('a symlink to a file outside is denied everywhere and hidden from listings', async () => {
  const s = fx.storage;
  await fsp.symlink(secretPath(), path.join(fx.root, 'evil'));
  await fsp.writeFile(path.join(fx.root, 'mine.txt'), 'mine');
  await assert.rejects(s.stat('/evil'), storageCode('denied'));
  await assert.rejects(s.openRead('/evil'), storageCode('denied'));
  await assert.rejects(s.openUpload('/evil', { kind: 'replace' }), storageCode('denied'));
  await assert.rejects(s.openUpload('/evil', { kind: 'append' }), storageCode('denied'));
  await assert.rejects(s.delete('/evil'), storageCode('denied'));
  await assert.rejects(s.rename('/evil', '/got.txt'), storageCode('denied'));
  await assert.rejects(s.rename('/mine.txt', '/evil'), storageCode('denied'));
  await assert.rejects(s.setModifiedTime('/evil', new Date(0)), storageCode('denied'));
  assert.deepEqual((await s.list('/')).map((e) => e.name), ['mine.txt']);
  await assertSecretUntouched();
});

test('a symlink to a directory outside cannot be listed, written into or renamed into', async () => {
  const s = fx.storage;
  await fsp.symlink(fx.outside, path.join(fx.root, 'out'));
  await fsp.writeFile(path.join(fx.root, 'mine.txt'), 'mine');
  await assert.rejects(s.list('/out'), storageCode('denied'));
  await assert.rejects(s.stat('/out/secret.txt'), storageCode('denied'));
  await assert.rejects(s.openRead('/out/secret.txt'), storageCode('denied'));
  await assert.rejects(s.openUpload('/out/new.txt', { kind: 'replace' }), storageCode('denied'));
  await assert.rejects(s.openUpload('/out/secret.txt', { kind: 'resume', offset: 0 }), storageCode('denied'));
  await assert.rejects(s.mkdir('/out/d'), storageCode('denied'));
  await assert.rejects(s.rmdir('/out'), storageCode('denied'));
  await assert.rejects(s.delete('/out/secret.txt'), storageCode('denied'));
  await assert.rejects(s.rename('/mine.txt', '/out/mine.txt'), storageCode('denied'));
  await assert.rejects(s.rename('/out/secret.txt', '/stolen.txt'), storageCode('denied'));
  await assertSecretUntouched();
  assert.equal(await fsp.readFile(path.join(fx.root, 'mine.txt'), 'utf8'), 'mine');
});

test('a dangling symlink is hidden from listings and refused', async () => {
  const s = fx.storage;
  await fsp.symlink(path.join(fx.outside, 'not-yet'), path.join(fx.root, 'dangling'));
  assert.deepEqual(await s.list('/'), []);
  await assert.rejects(s.stat('/dangling'), storageCode('denied'));
  await assert.rejects(s.openUpload('/dangling', { kind: 'replace' }), storageCode('denied'));
  await assert.rejects(s.openUpload('/dangling/x', { kind: 'replace' }), storageCode('denied'));
  await assert.rejects(fsp.access(path.join(fx.outside, 'not-yet')));
});

test('symlinks that stay inside the root work', async () => {
  const s = fx.storage;
  await fsp.mkdir(path.join(fx.root, 'real'));
  await fsp.writeFile(path.join(fx.root, 'real', 'a.txt'), 'hello');
  await fsp.symlink('real', path.join(fx.root, 'dirlink'));
  await fsp.symlink(path.join(fx.root, 'real', 'a.txt'), path.join(fx.root, 'filelink'));

  assert.equal((await s.stat('/filelink')).type, 'file');
  assert.equal(await readAll((await s.openRead('/filelink')).stream), 'hello');
  assert.equal(await readAll((await s.openRead('/dirlink/a.txt')).stream), 'hello');
  assert.deepEqual((await s.list('/dirlink')).map((e) => e.name), ['a.txt']);
  const top = await s.list('/');
  assert.deepEqual(top.map((e) => [e.name, e.type]), [['dirlink', 'dir'], ['filelink', 'file'], ['real', 'dir']]);

  await uploadText(s, '/dirlink/b.txt', 'via link');
  assert.equal(await fsp.readFile(path.join(fx.root, 'real', 'b.txt'), 'utf8'), 'via link');
  // Deleting a symlink removes the link, not what it points to.
  await s.delete('/filelink');
  assert.equal(await fsp.readFile(path.join(fx.root, 'real', 'a.txt'), 'utf8'), 'hello');
});

test('NUL, CR, LF and reserved partial names are bad names', async () => {
  const s = fx.storage;
  for (const p of ['/a\0b', '/a\rb', '/a\nb', '/.x.ftp-partial', '/d/.x.ftp-partial']) {
    await assert.rejects(s.stat(p), storageCode('bad-name'), JSON.stringify(p));
    await assert.rejects(s.openUpload(p, { kind: 'replace' }), storageCode('bad-name'), JSON.stringify(p));
    await assert.rejects(s.mkdir(p), storageCode('bad-name'), JSON.stringify(p));
    await assert.rejects(s.rename('/x', p), storageCode('bad-name'), JSON.stringify(p));
  }
  assert.deepEqual(await fsp.readdir(fx.root), []);
});

test('a missing root is reported, and found once it exists', async () => {
  await fsp.rm(fx.root, { recursive: true });
  await assert.rejects(fx.storage.list('/'), storageCode('not-found'));
  await fsp.mkdir(fx.root);
  assert.deepEqual(await fx.storage.list('/'), []);
});
