// Atomic uploads with resume: the partial file, commit/abort, REST and APPE offsets, no fd leaks.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { toStorageError } from './errors';
import { isPartialName, partialNameFor } from './partial';
import { fixturePerTest, interruptedUpload, makeFixture, readAll, storageCode, uploadText } from './testFixture';

const fx = fixturePerTest({ checkFds: true });

const host = (name: string) => path.join(fx.root, name);
const exists = (name: string) => fsp.access(host(name)).then(() => true, () => false);
const content = (name: string) => fsp.readFile(host(name), 'utf8');

test('partial names', () => {
  assert.equal(partialNameFor('a.txt'), '.a.txt.ftp-partial');
  assert.ok(isPartialName('.a.txt.ftp-partial'));
  assert.ok(!isPartialName('a.txt'));
  assert.ok(!isPartialName('.ftp-partial'));
  assert.ok(!isPartialName('.hidden'));
});

test('replace writes a hidden partial and publishes it only on commit', async () => {
  const upload = await fx.storage.openUpload('/a.txt', { kind: 'replace' });
  assert.equal(upload.startOffset, 0);
  await pipeline(Readable.from([Buffer.from('hello '), Buffer.from('world')]), upload.stream);
  assert.equal(await exists('a.txt'), false, 'final name must not exist before commit');
  assert.equal(await content('.a.txt.ftp-partial'), 'hello world');
  assert.deepEqual(await fx.storage.list('/'), []);
  await upload.commit();
  assert.equal(await content('a.txt'), 'hello world');
  assert.equal(await exists('.a.txt.ftp-partial'), false);
  assert.equal((await fx.storage.stat('/a.txt')).partial, undefined);
  await upload.abort(); // after commit: a harmless no-op
  assert.equal(await content('a.txt'), 'hello world');
});

test('replacing an existing file keeps the old bytes visible until commit', async () => {
  await uploadText(fx.storage, '/a.txt', 'old contents');
  const upload = await fx.storage.openUpload('/a.txt', { kind: 'replace' });
  await pipeline(Readable.from([Buffer.from('new')]), upload.stream);
  assert.equal(await content('a.txt'), 'old contents');
  await upload.commit();
  assert.equal(await content('a.txt'), 'new');
});

test('commit ends a stream the caller did not end, and an empty upload publishes an empty file', async () => {
  const upload = await fx.storage.openUpload('/empty', { kind: 'replace' });
  await upload.commit();
  assert.equal(await content('empty'), '');
  await assert.rejects(upload.commit(), storageCode('io'));
});

test('abort keeps the partial; stat reports its size as partial; list hides it', async () => {
  await interruptedUpload(fx.storage, '/big.bin', '12345');
  assert.equal(await exists('big.bin'), false);
  const st = await fx.storage.stat('/big.bin');
  assert.equal(st.partial, true);
  assert.equal(st.size, 4, 'where a resume continues: one byte short, so that it always sends something and commits');
  assert.equal(st.name, 'big.bin');
  assert.deepEqual(await fx.storage.list('/'), []);
});

test('abort twice, and commit after abort, are safe', async () => {
  const upload = await fx.storage.openUpload('/x', { kind: 'replace' });
  await new Promise((resolve) => upload.stream.write('abc', resolve));
  await upload.abort();
  await upload.abort();
  await assert.rejects(upload.commit(), storageCode('io'));
  assert.equal(await exists('x'), false);
  assert.equal(await content('.x.ftp-partial'), 'abc');
});

test('resume at an offset continues the partial byte-exact', async () => {
  await interruptedUpload(fx.storage, '/f', 'abcdefgh');
  // The client saw only 6 bytes acknowledged: REST 6 drops the tail and continues from there.
  const upload = await fx.storage.openUpload('/f', { kind: 'resume', offset: 6 });
  assert.equal(upload.startOffset, 6);
  await pipeline(Readable.from([Buffer.from('GHIJ')]), upload.stream);
  assert.equal(upload.bytesWritten(), 4, 'the upload counts only its own bytes');
  await upload.commit();
  assert.equal(await content('f'), 'abcdefGHIJ');
  assert.equal((await fx.storage.stat('/f')).partial, undefined);
});

test('resume at the full partial size and at 0', async () => {
  await interruptedUpload(fx.storage, '/f', 'abc');
  await uploadText(fx.storage, '/f', 'def', { kind: 'resume', offset: 3 });
  assert.equal(await content('f'), 'abcdef');
  await interruptedUpload(fx.storage, '/g', 'abc');
  await uploadText(fx.storage, '/g', 'xy', { kind: 'resume', offset: 0 });
  assert.equal(await content('g'), 'xy');
});

test('resume of a completed file moves it back to the partial until commit', async () => {
  await uploadText(fx.storage, '/done.txt', '0123456789');
  const upload = await fx.storage.openUpload('/done.txt', { kind: 'resume', offset: 4 });
  assert.equal(await exists('done.txt'), false);
  assert.equal((await fx.storage.stat('/done.txt')).size, 3, 'a partial reports one byte short');
  await pipeline(Readable.from([Buffer.from('ABCDEF')]), upload.stream);
  await upload.commit();
  assert.equal(await content('done.txt'), '0123ABCDEF');
});

test('append continues a completed file or a partial', async () => {
  await uploadText(fx.storage, '/log', 'one\n');
  const upload = await fx.storage.openUpload('/log', { kind: 'append' });
  assert.equal(upload.startOffset, 4);
  await pipeline(Readable.from([Buffer.from('two\n')]), upload.stream);
  await upload.commit();
  assert.equal(await content('log'), 'one\ntwo\n');

  await interruptedUpload(fx.storage, '/log', 'three\n', { kind: 'append' });
  assert.equal((await fx.storage.stat('/log')).size, 13, 'the partial of 14 bytes, reported one byte short');
  // An append onto the partial continues where stat said: the client sends from there (the last byte again).
  await uploadText(fx.storage, '/log', '\nfour\n', { kind: 'append' });
  assert.equal(await content('log'), 'one\ntwo\nthree\nfour\n');

  await uploadText(fx.storage, '/new', 'fresh', { kind: 'append' });
  assert.equal(await content('new'), 'fresh');
});

test('an offset beyond the data is invalid and changes nothing', async () => {
  await uploadText(fx.storage, '/a', 'abc');
  await assert.rejects(fx.storage.openUpload('/a', { kind: 'resume', offset: 4 }), storageCode('invalid-offset'));
  assert.equal(await content('a'), 'abc');
  assert.equal(await exists('.a.ftp-partial'), false);

  await assert.rejects(fx.storage.openUpload('/none', { kind: 'resume', offset: 1 }), storageCode('invalid-offset'));
  await assert.rejects(fx.storage.stat('/none'), storageCode('not-found'));

  await interruptedUpload(fx.storage, '/p', 'xy');
  await assert.rejects(fx.storage.openUpload('/p', { kind: 'resume', offset: 3 }), storageCode('invalid-offset'));
  for (const offset of [-1, 1.5, Number.NaN]) {
    await assert.rejects(fx.storage.openUpload('/a', { kind: 'resume', offset }), storageCode('invalid-offset'));
  }
  assert.deepEqual((await fsp.readdir(fx.root)).sort(), ['.p.ftp-partial', 'a']);
});

test('upload target errors: missing parent, directory, root', async () => {
  await fsp.mkdir(host('dir'));
  await fsp.writeFile(host('file'), 'x');
  await assert.rejects(fx.storage.openUpload('/nope/a', { kind: 'replace' }), storageCode('not-found'));
  await assert.rejects(fx.storage.openUpload('/file/a', { kind: 'replace' }), storageCode('not-a-directory'));
  await assert.rejects(fx.storage.openUpload('/dir', { kind: 'replace' }), storageCode('is-a-directory'));
  await assert.rejects(fx.storage.openUpload('/dir', { kind: 'append' }), storageCode('is-a-directory'));
  await assert.rejects(fx.storage.openUpload('/', { kind: 'replace' }), storageCode('is-a-directory'));
});

test('a disk-full stream error surfaces through pipeline, maps to no-space, and abort keeps the partial', async () => {
  const upload = await fx.storage.openUpload('/full', { kind: 'replace' });
  await new Promise<void>((resolve) => upload.stream.write('first', () => resolve()));
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const source = new Readable({
    read() {
      this.push('more');
      upload.stream.destroy(enospc); // what fs.WriteStream does when write(2) fails
    },
  });
  const err = await pipeline(source, upload.stream).then(() => undefined, (e: unknown) => e);
  assert.equal(toStorageError(err).code, 'no-space');
  await assert.rejects(upload.commit(), storageCode('no-space'));
  await upload.abort();
  assert.equal(await content('.full.ftp-partial'), 'first');
  assert.equal(await exists('full'), false);
});

test('a failing source leaves a resumable partial and closes the file', async () => {
  const upload = await fx.storage.openUpload('/src', { kind: 'replace' });
  async function* broken() {
    yield Buffer.from('partial bytes');
    throw new Error('connection reset');
  }
  await assert.rejects(pipeline(Readable.from(broken()), upload.stream), /connection reset/);
  await upload.abort();
  const st = await fx.storage.stat('/src');
  assert.deepEqual([st.partial, st.size], [true, 12]);
  await uploadText(fx.storage, '/src', 's + rest', { kind: 'append' });
  assert.equal(await content('src'), 'partial bytes + rest');
});

test('large uploads stream through with backpressure, with fsync off too', async () => {
  const noSync = await makeFixture({ fsync: false });
  try {
    const chunk = Buffer.alloc(64 * 1024, 7);
    const upload = await noSync.storage.openUpload('/big', { kind: 'replace' });
    await pipeline(Readable.from(Array.from({ length: 40 }, () => chunk)), upload.stream);
    await upload.commit();
    assert.equal((await noSync.storage.stat('/big')).size, 40 * 64 * 1024);
    const read = await noSync.storage.openRead('/big', 40 * 64 * 1024 - 3);
    assert.equal((await readAll(read.stream)).length, 3);
  } finally {
    await noSync.cleanup();
  }
});

test('an upload aborted before its first byte leaves the disk as it found it', async () => {
  const fresh = await fx.storage.openUpload('/never.txt', { kind: 'replace' });
  await fresh.abort();
  assert.deepEqual(await fsp.readdir(fx.root), []);

  await uploadText(fx.storage, '/kept.txt', 'complete');
  for (const start of [{ kind: 'append' }, { kind: 'resume', offset: 8 }] as const) {
    const upload = await fx.storage.openUpload('/kept.txt', start);
    await upload.abort();
    assert.equal(await content('kept.txt'), 'complete', `${start.kind}: the published file is back`);
    assert.equal(await exists(partialNameFor('kept.txt')), false);
  }
});

test('commit publishes nothing when the upload is no longer wanted after the flush', async () => {
  const upload = await fx.storage.openUpload('/late.txt', { kind: 'replace' });
  await pipeline(Readable.from([Buffer.from('half')]), upload.stream);
  await assert.rejects(upload.commit(() => false), storageCode('io'));
  await upload.abort();
  assert.equal(await exists('late.txt'), false);
  const st = await fx.storage.stat('/late.txt');
  assert.deepEqual([st.partial, st.size], [true, 3]);
});
