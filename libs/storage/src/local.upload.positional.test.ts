// Positional writes (Upload.writeAt): out of order, sparse, concurrent, waited for by commit and abort; no fd leaks.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { SMALL_IO_BYTES } from './fileOps';
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
  assert.equal(upload.startOffset, 10, 'where stat said a resume continues: one byte short');
  await upload.writeAt(10, Buffer.from('d!!'));
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
  assert.equal((await fx.storage.stat('/a.bin')).size, 256 * 1024 - 1, 'every byte kept; stat reports one short');
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

// The zero-copy seam (Upload.receiveInto, Download.file): a writer the fd is lent to, e.g. splice(2) from a socket.
test('receiveInto lends the fd: its bytes count, commit waits for it, and its failure keeps the file unpublished', async () => {
  const head = Buffer.from('head:');
  const body = randomBytes(300_000);
  const upload = await fx.storage.openUpload('/z.bin', { kind: 'replace' });
  await upload.writeAt(0, head);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const receiving = upload.receiveInto!(async (fd, wrote) => {
    await gate;
    const handle = await fsp.open(`/proc/self/fd/${fd}`, 'r+'); // another descriptor of the same file, as a native writer has
    try {
      const { bytesWritten } = await handle.write(body, 0, body.length, head.length);
      wrote(bytesWritten);
      return bytesWritten;
    } finally {
      await handle.close();
    }
  });
  const committing = upload.commit(); // before the receiver is done: commit must wait for it
  release();
  assert.equal(await receiving, body.length);
  await committing;
  assert.equal(upload.bytesWritten(), head.length + body.length);
  assert.deepEqual(await fsp.readFile(host('z.bin')), Buffer.concat([head, body]));

  const failing = await fx.storage.openUpload('/zf.bin', { kind: 'replace' });
  await assert.rejects(
    failing.receiveInto!(async (_fd, wrote) => {
      wrote(10);
      throw Object.assign(new Error('no space left'), { code: 'ENOSPC', bytes: 10 });
    }),
    /no space/,
  );
  assert.equal(failing.bytesWritten(), 10, 'what it reported before failing counts');
  await assert.rejects(failing.commit(), storageCode('no-space'));
  assert.equal(await exists('zf.bin'), false, 'never published');
  await assert.rejects(failing.receiveInto!(async () => 0), storageCode('io'));
});

test('a download of a local file offers its fd and range for a zero-copy sender; the stream owns the fd', async () => {
  // Above SMALL_IO_BYTES: smaller files are read whole at opening (next test).
  const text = 'x'.repeat(SMALL_IO_BYTES) + 'hello zero copy';
  await uploadText(fx.storage, '/d.txt', text);
  const download = await fx.storage.openRead('/d.txt', SMALL_IO_BYTES + 6);
  assert.ok(download.file);
  assert.equal(download.data, undefined);
  assert.equal(download.file.position, SMALL_IO_BYTES + 6);
  assert.equal(download.file.length, 9);
  const buffer = Buffer.alloc(9);
  const handle = await fsp.open(`/proc/self/fd/${download.file.fd}`, 'r');
  await handle.read(buffer, 0, 9, SMALL_IO_BYTES + 6);
  await handle.close();
  assert.equal(buffer.toString(), 'zero copy');
  download.stream.destroy(); // closes the fd (the fixture checks nothing leaked)
  await new Promise((resolve) => download.stream.once('close', resolve));
});

test('a small file is read whole at opening and closed at once: data from the offset, readAt and stream from memory', async () => {
  await uploadText(fx.storage, '/s.txt', 'hello small file');
  const download = await fx.storage.openRead('/s.txt', 6);
  assert.equal(download.file, undefined, 'no fd: the file is already closed (the fixture checks nothing leaked)');
  assert.equal(download.size, 16);
  assert.equal(download.data?.toString(), 'small file');
  const buffer = Buffer.alloc(5);
  assert.equal(await download.readAt!(buffer, 0, 5, 0), 5);
  assert.equal(buffer.toString(), 'hello');
  const chunks: Buffer[] = [];
  for await (const chunk of download.stream) chunks.push(chunk as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), 'small file');
  const empty = await fx.storage.openRead('/s.txt', 16);
  assert.equal(empty.data?.length, 0);
});
