// Positional writes (Upload.writeAt): out of order, sparse, concurrent, waited for by commit and abort; no fd leaks.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fixturePerTest, interruptedUpload, storageCode, uploadText } from './testFixture';

const fx = fixturePerTest({ checkFds: true });

const host = (name: string) => path.join(fx.root, name);
const exists = (name: string) => fsp.access(host(name)).then(() => true, () => false);

test('writes at offsets in any order build the file, which appears only at commit', async () => {
  const data = randomBytes(1024 * 1024 + 17);
  const upload = await fx.storage.openUpload('/r.bin', { kind: 'replace' });
  const size = 64 * 1024;
  const offsets: number[] = [];
  for (let o = 0; o < data.length; o += size) offsets.push(o);
  offsets.reverse(); // last block first: the file is sparse until the front arrives
  await Promise.all(offsets.map((o) => upload.writeAt(o, data.subarray(o, o + size))));
  assert.equal(await exists('r.bin'), false, 'not visible before commit');
  assert.equal(upload.bytesWritten(), data.length);
  await upload.commit();
  assert.deepEqual(await fsp.readFile(host('r.bin')), data);
  assert.equal(await exists('.r.bin.ftp-partial'), false);
});

test('several chunks in one call, a hole stays zero, and commit waits for writes still running', async () => {
  const upload = await fx.storage.openUpload('/h.bin', { kind: 'replace' });
  const writes = [upload.writeAt(10, [Buffer.from('ab'), Buffer.from(''), Buffer.from('cd')]), upload.writeAt(0, Buffer.from('x'))];
  await upload.commit(); // not awaiting the writes first: commit must
  await Promise.all(writes);
  const expected = Buffer.alloc(14);
  expected.write('x', 0);
  expected.write('abcd', 10);
  assert.deepEqual(await fsp.readFile(host('h.bin')), expected);
  await assert.rejects(upload.writeAt(0, Buffer.from('late')), storageCode('io'));
});

test('an append start keeps the partial bytes and writes may land before or after them', async () => {
  await interruptedUpload(fx.storage, '/p.txt', 'hello world');
  const upload = await fx.storage.openUpload('/p.txt', { kind: 'append' });
  assert.equal(upload.startOffset, 11);
  await upload.writeAt(11, Buffer.from('!!'));
  await upload.writeAt(0, Buffer.from('J'));
  await upload.sync();
  await upload.commit();
  assert.equal(await fsp.readFile(host('p.txt'), 'utf8'), 'Jello world!!');
});

test('abort waits for running writes and keeps them as a partial; an unchanged published file is restored', async () => {
  const upload = await fx.storage.openUpload('/a.bin', { kind: 'replace' });
  const pending = upload.writeAt(0, randomBytes(256 * 1024));
  await upload.abort();
  await pending;
  assert.equal((await fx.storage.stat('/a.bin')).size, 256 * 1024);
  assert.equal((await fx.storage.stat('/a.bin')).partial, true);

  await uploadText(fx.storage, '/done.txt', 'published');
  const untouched = await fx.storage.openUpload('/done.txt', { kind: 'append' });
  assert.equal(await exists('done.txt'), false, 'continued: back under the partial name');
  await untouched.abort();
  assert.equal(await fsp.readFile(host('done.txt'), 'utf8'), 'published');
});

test('bad offsets are refused and nothing is written', async () => {
  const upload = await fx.storage.openUpload('/o.bin', { kind: 'replace' });
  for (const offset of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN]) {
    await assert.rejects(upload.writeAt(offset, Buffer.from('x')), storageCode('invalid-offset'));
  }
  await upload.commit();
  assert.equal((await fsp.stat(host('o.bin'))).size, 0);
});
