// The plain file operations: stat, list, read, mkdir, rmdir, delete, rename, mtime.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fixturePerTest, interruptedUpload, readAll, storageCode, uploadText } from './testFixture';

const fx = fixturePerTest({ checkFds: true });

const host = (name: string) => path.join(fx.root, name);
const exists = (name: string) => fsp.access(host(name)).then(() => true, () => false);

test('stat reports files, directories and the root', async () => {
  await fsp.mkdir(host('d'));
  await fsp.writeFile(host('d/f.txt'), 'abcd', { mode: 0o640 });
  const f = await fx.storage.stat('/d/f.txt');
  assert.equal(f.name, 'f.txt');
  assert.equal(f.type, 'file');
  assert.equal(f.size, 4);
  assert.equal(f.mode, 0o640);
  assert.ok(f.mtime instanceof Date);
  assert.match(f.unique, /^[0-9a-z]+g[0-9a-z]+$/);
  assert.equal((await fx.storage.stat('d')).type, 'dir');
  assert.deepEqual([(await fx.storage.stat('/')).name, (await fx.storage.stat('/')).type], ['/', 'dir']);
  await assert.rejects(fx.storage.stat('/missing'), storageCode('not-found'));
  await assert.rejects(fx.storage.stat('/d/f.txt/x'), storageCode('not-found'));
});

test('list reports entries with their facts and leaves partial uploads out', async () => {
  await fsp.mkdir(host('sub'));
  await fsp.writeFile(host('b.txt'), 'bb');
  await fsp.writeFile(host('a.txt'), 'a');
  await interruptedUpload(fx.storage, '/c.txt', 'ccc');
  await interruptedUpload(fx.storage, '/a.txt', 'new a');
  const entries = await fx.storage.list('/');
  assert.deepEqual(entries.map((e) => [e.name, e.type, e.partial]), [
    ['a.txt', 'file', undefined],
    ['b.txt', 'file', undefined],
    ['sub', 'dir', undefined],
  ]);
  assert.equal(entries[1].size, 2);
  assert.equal(new Set(entries.map((e) => e.unique)).size, 3);
  assert.deepEqual(await fx.storage.list('/sub'), []);
  await assert.rejects(fx.storage.list('/b.txt'), storageCode('not-a-directory'));
  await assert.rejects(fx.storage.list('/nope'), storageCode('not-found'));
});

test('openRead streams from an offset', async () => {
  await fsp.writeFile(host('f'), '0123456789');
  assert.equal(await readAll((await fx.storage.openRead('/f')).stream), '0123456789');
  assert.equal(await readAll((await fx.storage.openRead('/f', 7)).stream), '789');
  assert.equal(await readAll((await fx.storage.openRead('/f', 10)).stream), '');
  assert.equal(await readAll((await fx.storage.openRead('/f', 50)).stream), '');
  await assert.rejects(fx.storage.openRead('/f', -1), storageCode('invalid-offset'));
  await fsp.mkdir(host('d'));
  await assert.rejects(fx.storage.openRead('/d'), storageCode('is-a-directory'));
  await assert.rejects(fx.storage.openRead('/'), storageCode('is-a-directory'));
  await assert.rejects(fx.storage.openRead('/nope'), storageCode('not-found'));
});

test('readAt reads at any position of the open file until its stream is destroyed', async () => {
  await fsp.writeFile(host('f'), '0123456789');
  const download = await fx.storage.openRead('/f');
  assert.ok(download.readAt, 'local storage offers positional reads');
  const buffer = Buffer.alloc(8, '.');
  assert.equal(await download.readAt(buffer, 2, 4, 6), 4);
  assert.equal(buffer.toString(), '..6789..');
  assert.equal(await download.readAt(buffer, 0, 3, 1), 3);
  assert.equal(buffer.toString(), '123789..');
  assert.equal(await download.readAt(buffer, 0, 8, 10), 0, 'nothing past the end');
  download.stream.destroy(); // closes the file: the fixture checks no descriptor is left open
  await assert.rejects(download.readAt(buffer, 0, 1, 0), storageCode('io'));
  const empty = await fx.storage.openRead('/f', 10);
  assert.equal(await empty.readAt!(buffer, 0, 8, 0), 0);
});

test('mkdir creates one level and reports exists / not-found / not-a-directory', async () => {
  await fx.storage.mkdir('/d');
  assert.ok((await fsp.stat(host('d'))).isDirectory());
  await assert.rejects(fx.storage.mkdir('/d'), storageCode('exists'));
  await assert.rejects(fx.storage.mkdir('/'), storageCode('exists'));
  await assert.rejects(fx.storage.mkdir('/x/y'), storageCode('not-found'));
  await fsp.writeFile(host('f'), '');
  await assert.rejects(fx.storage.mkdir('/f'), storageCode('exists'));
  await assert.rejects(fx.storage.mkdir('/f/g'), storageCode('not-a-directory'));
});

test('rmdir removes only empty directories (abandoned partials do not count)', async () => {
  await fsp.mkdir(host('d'));
  await fsp.writeFile(host('d/f'), '');
  await assert.rejects(fx.storage.rmdir('/d'), storageCode('not-empty'));
  await fsp.unlink(host('d/f'));
  await interruptedUpload(fx.storage, '/d/left-over', 'bytes');
  await fx.storage.rmdir('/d');
  assert.equal(await exists('d'), false);
  await assert.rejects(fx.storage.rmdir('/d'), storageCode('not-found'));
  await fsp.writeFile(host('f'), '');
  await assert.rejects(fx.storage.rmdir('/f'), storageCode('not-a-directory'));
  await assert.rejects(fx.storage.rmdir('/'), storageCode('denied'));
});

test('delete removes a file together with its partial upload', async () => {
  await uploadText(fx.storage, '/f', 'done');
  await interruptedUpload(fx.storage, '/f', 'again');
  await fx.storage.delete('/f');
  assert.deepEqual(await fsp.readdir(fx.root), []);
  await assert.rejects(fx.storage.stat('/f'), storageCode('not-found'));

  await interruptedUpload(fx.storage, '/only-partial', 'abc');
  await fx.storage.delete('/only-partial');
  assert.deepEqual(await fsp.readdir(fx.root), []);

  await assert.rejects(fx.storage.delete('/f'), storageCode('not-found'));
  await fsp.mkdir(host('d'));
  await assert.rejects(fx.storage.delete('/d'), storageCode('is-a-directory'));
  await assert.rejects(fx.storage.delete('/'), storageCode('is-a-directory'));
});

test('rename moves files and directories, and an interrupted upload with its name', async () => {
  await uploadText(fx.storage, '/a', 'A');
  await fx.storage.mkdir('/d');
  await fx.storage.rename('/a', '/d/b');
  assert.equal(await fsp.readFile(host('d/b'), 'utf8'), 'A');
  assert.equal(await exists('a'), false);
  await fx.storage.rename('/d', '/e');
  assert.equal(await fsp.readFile(host('e/b'), 'utf8'), 'A');

  await interruptedUpload(fx.storage, '/p', 'part');
  await fx.storage.rename('/p', '/e/q');
  const st = await fx.storage.stat('/e/q');
  assert.deepEqual([st.partial, st.size], [true, 3], 'where a resume continues: one byte short');
  await uploadText(fx.storage, '/e/q', 'tial', { kind: 'append' });
  assert.equal(await fsp.readFile(host('e/q'), 'utf8'), 'partial');

  await assert.rejects(fx.storage.rename('/missing', '/x'), storageCode('not-found'));
  await assert.rejects(fx.storage.rename('/e/b', '/nope/b'), storageCode('not-found'));
  await assert.rejects(fx.storage.rename('/', '/x'), storageCode('denied'));
  await assert.rejects(fx.storage.rename('/e', '/'), storageCode('denied'));
  await assert.rejects(fx.storage.rename('/e', '/e/inside'), storageCode('denied'));
});

test('rename without replace never clobbers; copy publishes a whole copy, with or without replacing', async () => {
  await uploadText(fx.storage, '/a', 'A');
  await uploadText(fx.storage, '/b', 'B');
  await assert.rejects(fx.storage.rename('/a', '/b', { replace: false }), storageCode('exists'));
  assert.deepEqual([await fsp.readFile(host('a'), 'utf8'), await fsp.readFile(host('b'), 'utf8')], ['A', 'B'], 'nothing changed');
  await fx.storage.rename('/a', '/c', { replace: false });
  assert.deepEqual([await exists('a'), await fsp.readFile(host('c'), 'utf8')], [false, 'A']);
  await fx.storage.mkdir('/d');
  await assert.rejects(fx.storage.rename('/c', '/d', { replace: false }), storageCode('exists'));
  await assert.rejects(fx.storage.rename('/missing', '/e', { replace: false }), storageCode('not-found'));

  await assert.rejects(fx.storage.copy('/c', '/b', { replace: false }), storageCode('exists'));
  assert.equal(await fsp.readFile(host('b'), 'utf8'), 'B');
  await fx.storage.copy('/c', '/b');
  await fx.storage.copy('/c', '/d/c2', { replace: false });
  assert.deepEqual([await fsp.readFile(host('b'), 'utf8'), await fsp.readFile(host('d/c2'), 'utf8'), await fsp.readFile(host('c'), 'utf8')], ['A', 'A', 'A']);
  assert.notEqual((await fsp.stat(host('c'))).ino, (await fsp.stat(host('d/c2'))).ino, 'a copy, not a link');
  await assert.rejects(fx.storage.copy('/d', '/e'), storageCode('is-a-directory'));
  await assert.rejects(fx.storage.copy('/missing', '/e'), storageCode('not-found'));
  await assert.rejects(fx.storage.copy('/c', '/nope/c'), storageCode('not-found'));
  assert.deepEqual((await fsp.readdir(fx.root)).sort(), ['b', 'c', 'd'], 'no temporary file left');

  // Ten renames racing for one name: exactly one wins, the others are told it exists and keep their files.
  await Promise.all(Array.from({ length: 10 }, (_, i) => uploadText(fx.storage, `/r${i}`, String(i))));
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => fx.storage.rename(`/r${i}`, '/won', { replace: false })));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  assert.equal((await fsp.readdir(fx.root)).filter((n) => n.startsWith('r')).length, 9);
});

test('setModifiedTime sets the mtime', async () => {
  await fsp.writeFile(host('f'), 'x');
  const when = new Date('2001-02-03T04:05:06Z');
  await fx.storage.setModifiedTime('/f', when);
  assert.equal((await fx.storage.stat('/f')).mtime.getTime(), when.getTime());
  await assert.rejects(fx.storage.setModifiedTime('/nope', when), storageCode('not-found'));
});
