import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { StorageError, type FileStat, type Storage } from '../types';
import { createS3Client } from './client';
import { createS3Storage } from './s3Storage';
import { abortAbandonedUploads } from './abandoned';
import { MiB, readAll, readText, s3Fixture, writeAll, writeSome, type S3Fixture } from './testSupport';

let s3: S3Fixture;
before(async () => {
  s3 = await s3Fixture();
});
after(async () => {
  await s3?.close();
});

const code = (expected: string) => (err: unknown) => err instanceof StorageError && err.code === expected;
const names = (entries: FileStat[]) => entries.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name));

async function putFile(storage: Storage, path: string, content: string | Buffer) {
  await writeAll(await storage.openUpload(path, { kind: 'replace' }), Buffer.from(content));
}

test('s3: mkdir, stat, list, rmdir and delete behave like folders and files', async () => {
  const fs = s3.storage();
  assert.deepEqual(await fs.list('/'), []);
  assert.equal((await fs.stat('/')).type, 'dir');
  await fs.mkdir('/docs');
  await assert.rejects(fs.mkdir('/docs'), code('exists'));
  await assert.rejects(fs.mkdir('/none/sub'), code('not-found'));
  const docs = await fs.stat('/docs');
  assert.equal(docs.type, 'dir');
  assert.ok(docs.mtime.getTime() > 0, 'an empty folder made by mkdir has its marker time');
  assert.deepEqual(names(await fs.list('/')), ['docs/']);
  assert.deepEqual(await fs.list('/docs'), []);

  await putFile(fs, '/docs/a.txt', 'hello');
  await assert.rejects(fs.openUpload('/none/a.txt', { kind: 'replace' }), code('not-found'));
  await assert.rejects(fs.openUpload('/docs/a.txt/b', { kind: 'replace' }), code('not-a-directory'));
  await assert.rejects(fs.openUpload('/docs', { kind: 'replace' }), code('is-a-directory'));
  await assert.rejects(fs.mkdir('/docs/a.txt'), code('exists'));
  const a = await fs.stat('/docs/a.txt');
  assert.deepEqual([a.type, a.size, a.partial], ['file', 5, undefined]);
  assert.equal(await readText(fs, '/docs/a.txt'), 'hello');
  assert.deepEqual(names(await fs.list('/docs')), ['a.txt']);
  await assert.rejects(fs.list('/docs/a.txt'), code('not-a-directory'));
  await assert.rejects(fs.list('/nothing'), code('not-found'));
  await assert.rejects(fs.openRead('/docs'), code('is-a-directory'));
  await assert.rejects(fs.openRead('/docs/b.txt'), code('not-found'));

  await assert.rejects(fs.rmdir('/docs'), code('not-empty'));
  await assert.rejects(fs.rmdir('/docs/a.txt'), code('not-a-directory'));
  await assert.rejects(fs.delete('/docs'), code('is-a-directory'));
  await fs.delete('/docs/a.txt');
  await assert.rejects(fs.delete('/docs/a.txt'), code('not-found'));
  await assert.rejects(fs.stat('/docs/a.txt'), code('not-found'));
  assert.equal((await fs.stat('/docs')).type, 'dir', 'the marker keeps the emptied folder');
  await fs.rmdir('/docs');
  await assert.rejects(fs.rmdir('/docs'), code('not-found'));
  await assert.rejects(fs.stat('/docs'), code('not-found'));
  await assert.rejects(fs.rmdir('/'), code('denied'));

  // Folders made by other tools (keys only, no marker) are folders too.
  await s3.put(`${fs.prefix}implicit/deep/x.bin`, 'x');
  assert.deepEqual(names(await fs.list('/')), ['implicit/']);
  assert.equal((await fs.stat('/implicit/deep')).type, 'dir');

  await assert.rejects(fs.setModifiedTime('/implicit/deep/x.bin', new Date(0)), (err: unknown) => code('denied')(err) && /modification times/.test((err as Error).message));
  await assert.rejects(fs.setModifiedTime('/nope', new Date(0)), code('not-found'));
});

test('s3: rename moves files and small folders, refuses the rest', async () => {
  const fs = s3.storage({ maxFolderRenameKeys: 4 });
  await fs.mkdir('/a');
  await fs.mkdir('/a/empty');
  await putFile(fs, '/a/one.txt', '1');
  await putFile(fs, '/a/two.txt', '2');
  await fs.rename('/a/one.txt', '/uno.txt');
  assert.equal(await readText(fs, '/uno.txt'), '1');
  await assert.rejects(fs.stat('/a/one.txt'), code('not-found'));
  await assert.rejects(fs.rename('/uno.txt', '/none/uno.txt'), code('not-found'));
  await assert.rejects(fs.rename('/missing', '/x'), code('not-found'));
  await assert.rejects(fs.rename('/uno.txt', '/a'), code('is-a-directory'));
  await assert.rejects(fs.rename('/a', '/a/empty/a'), code('denied'));

  await fs.rename('/a', '/b'); // marker, empty/ marker, two.txt: 3 keys
  assert.deepEqual(names(await fs.list('/')), ['b/', 'uno.txt']);
  assert.deepEqual(names(await fs.list('/b')), ['empty/', 'two.txt']);
  assert.equal(await readText(fs, '/b/two.txt'), '2');
  await assert.rejects(fs.stat('/a'), code('not-found'));

  for (const n of [3, 4]) await putFile(fs, `/b/f${n}`, String(n));
  await assert.rejects(fs.rename('/b', '/c'), (err: unknown) => code('denied')(err) && /at most 4/.test((err as Error).message));
  assert.deepEqual(names(await fs.list('/b')), ['empty/', 'f3', 'f4', 'two.txt'], 'a refused folder rename changes nothing');

  // Multipart copy of a file larger than the (lowered) CopyObject limit.
  const big = s3.storage({ copy: { maxCopyObject: 6 * MiB, copyPart: 5 * MiB } });
  const data = randomBytes(12 * MiB + 3);
  await writeAll(await big.openUpload('/big.bin', { kind: 'replace' }), data);
  s3.resetCounts();
  await big.rename('/big.bin', '/moved.bin');
  assert.equal(s3.counts.UploadPartCopyCommand, 3);
  assert.ok((await readAll(big, '/moved.bin')).equals(data));
});

test('s3: rename without replace never clobbers; copy is a server-side copy, with or without replacing', async () => {
  const fs = s3.storage();
  await putFile(fs, '/a', 'A');
  await putFile(fs, '/b', 'B');
  await assert.rejects(fs.rename('/a', '/b', { replace: false }), code('exists'));
  assert.deepEqual([await readText(fs, '/a'), await readText(fs, '/b')], ['A', 'B'], 'nothing changed');
  await fs.rename('/a', '/c', { replace: false });
  await assert.rejects(fs.stat('/a'), code('not-found'));
  assert.equal(await readText(fs, '/c'), 'A');

  await assert.rejects(fs.copy('/c', '/b', { replace: false }), code('exists'));
  assert.equal(await readText(fs, '/b'), 'B');
  await fs.mkdir('/d');
  s3.resetCounts();
  await fs.copy('/c', '/b');
  assert.equal(s3.counts.CopyObjectCommand, 1, 'copied inside the store');
  assert.equal(s3.counts.GetObjectCommand ?? 0, 0, 'no byte through the edge');
  await fs.copy('/c', '/d/c2', { replace: false });
  assert.deepEqual([await readText(fs, '/b'), await readText(fs, '/d/c2'), await readText(fs, '/c')], ['A', 'A', 'A']);
  await assert.rejects(fs.copy('/d', '/e'), code('is-a-directory'));
  await assert.rejects(fs.copy('/missing', '/e'), code('not-found'));
  await assert.rejects(fs.copy('/c', '/nope/c'), code('not-found'));
  await assert.rejects(fs.copy('/c', '/d'), code('is-a-directory'));
});

test('s3: listings page through more than 1000 keys, in batches, in S3 order, bounded by maxListEntries', async () => {
  const fs = s3.storage();
  const keys = Array.from({ length: 1003 }, (_, i) => `${fs.prefix}many/f${String(i).padStart(4, '0')}`);
  for (let i = 0; i < keys.length; i += 64) await Promise.all(keys.slice(i, i + 64).map((k) => s3.put(k, 'x')));
  s3.resetCounts();
  const batches: number[] = [];
  for await (const batch of await fs.listEntries('/many')) batches.push(batch.length);
  assert.deepEqual(batches, [1000, 3]);
  assert.equal(s3.counts.ListObjectsV2Command, 3, 'counted once, then streamed: the first page is read once');
  const all = await fs.list('/many');
  assert.equal(all.length, 1003);
  assert.deepEqual(
    all.map((e) => e.name),
    keys.map((k) => k.slice(`${fs.prefix}many/`.length)),
  );
  const bounded = s3.storage({ prefix: fs.prefix, limits: { maxListEntries: 1002 } });
  await assert.rejects(bounded.listEntries('/many'), (err: unknown) => code('too-many-entries')(err) && /1002/.test((err as Error).message));

  // Small pages: folders and files merged in key order ('a-b' < 'a/' < 'a0'), markers and odd keys left out.
  const small = s3.storage({ listPageSize: 3 });
  await small.mkdir('/d');
  for (const name of ['a-b', 'a0', 'c', 'e', 'f', 'g']) await s3.put(`${small.prefix}d/${name}`, 'x');
  for (const key of ['d/a/x', 'd/b/', 'd/h//y', 'd/.c.ftp-partial']) await s3.put(`${small.prefix}${key}`, 'x');
  const pages: string[][] = [];
  for await (const batch of await small.listEntries('/d')) pages.push(names(batch));
  assert.ok(pages.length >= 3 && pages.every((p) => p.length <= 3), JSON.stringify(pages));
  assert.deepEqual(pages.flat(), ['a-b', 'a/', 'a0', 'b/', 'c', 'e', 'f', 'g', 'h/']);
  const tiny = s3.storage({ prefix: small.prefix, listPageSize: 3, limits: { maxListEntries: 8 } });
  await assert.rejects(tiny.list('/d'), code('too-many-entries'));
});

test('s3: ranged reads; readAt serves sequential positions from one GET', async () => {
  const fs = s3.storage();
  const data = randomBytes(3 * MiB + 17);
  await writeAll(await fs.openUpload('/r.bin', { kind: 'replace' }), data);
  assert.ok((await readAll(fs, '/r.bin')).equals(data));
  assert.ok((await readAll(fs, '/r.bin', 1_000_003)).equals(data.subarray(1_000_003)));
  const atEnd = await fs.openRead('/r.bin', data.length);
  assert.equal(atEnd.size, data.length);
  assert.equal((await readAll(fs, '/r.bin', data.length + 10)).length, 0);
  await putFile(fs, '/empty', '');
  assert.equal((await readAll(fs, '/empty')).length, 0);

  s3.resetCounts();
  const download = await fs.openRead('/r.bin');
  assert.equal(download.size, data.length);
  assert.equal(download.file, undefined);
  const out = Buffer.alloc(data.length);
  for (let at = 0; at < data.length; at += 32 * 1024) {
    const n = await download.readAt!(out, at, Math.min(32 * 1024, data.length - at), at);
    assert.equal(n, Math.min(32 * 1024, data.length - at));
  }
  assert.ok(out.equals(data));
  assert.equal(s3.counts.GetObjectCommand, 1, 'in-order READs cost one GET');
  const piece = Buffer.alloc(100);
  assert.equal(await download.readAt!(piece, 0, 100, 5000), 100); // backwards: a new GET there
  assert.ok(piece.equals(data.subarray(5000, 5100)));
  assert.equal(await download.readAt!(piece, 0, 100, 200_000), 100); // a short jump forward: read through
  assert.ok(piece.equals(data.subarray(200_000, 200_100)));
  assert.equal(await download.readAt!(piece, 0, 100, data.length - 10), 10);
  assert.equal(await download.readAt!(piece, 0, 100, data.length), 0);
  assert.equal(s3.counts.GetObjectCommand, 3);
  download.stream.destroy();
  await assert.rejects(download.readAt!(piece, 0, 100, 0), code('io'));
});

test('s3: a 3-part multipart upload is invisible until commit, then whole', async () => {
  const fs = s3.storage();
  const data = randomBytes(12 * MiB + 512 * 1024);
  s3.resetCounts();
  const upload = await fs.openUpload('/big.bin', { kind: 'replace' }, data.length);
  assert.equal(upload.startOffset, 0);
  await writeSome(upload, data);
  assert.equal(upload.bytesWritten(), data.length);
  assert.deepEqual(await fs.list('/'), []);
  await assert.rejects(fs.openRead('/big.bin'), code('not-found'));
  await assert.rejects(s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${fs.prefix}big.bin` })));
  const during = await fs.stat('/big.bin');
  assert.deepEqual([during.partial, during.size], [true, 10 * MiB], 'the parts sent so far are a partial');
  await upload.commit();
  assert.ok((await readAll(fs, '/big.bin')).equals(data));
  assert.equal(s3.counts.CreateMultipartUploadCommand, 1);
  assert.equal(s3.counts.UploadPartCommand, 3);
  assert.equal(s3.counts.CompleteMultipartUploadCommand, 1);
  assert.deepEqual(await s3.openUploads(fs.prefix), []);
  const st = await fs.stat('/big.bin');
  assert.deepEqual([st.type, st.size, st.partial], ['file', data.length, undefined]);
  assert.deepEqual(await fs.usage(), { files: 1, bytes: data.length });

  // A file smaller than a part is one PutObject.
  s3.resetCounts();
  await putFile(fs, '/small.txt', 'tiny');
  assert.deepEqual(
    Object.keys(s3.counts).filter((c) => /PutObject|CreateMultipart|UploadPart|CompleteMultipart/.test(c)),
    ['PutObjectCommand'],
  );
});

test('s3: abort keeps whole parts; another replica resumes at the part boundary; discard leaves nothing', async () => {
  const replicaA = s3.storage();
  const replicaB = s3.storage({ prefix: replicaA.prefix, partSize: 6 * MiB });
  const data = randomBytes(17 * MiB + 100);
  const first = await replicaA.openUpload('/r.bin', { kind: 'replace' });
  await writeSome(first, data.subarray(0, 12 * MiB + 7));
  await first.abort();
  const partial = await replicaB.stat('/r.bin');
  assert.deepEqual([partial.partial, partial.size], [true, 10 * MiB]);
  assert.deepEqual(names(await replicaB.list('/')), [], 'a partial is not listed');
  await assert.rejects(replicaB.openUpload('/r.bin', { kind: 'resume', offset: 10 * MiB + 1 }), code('invalid-offset'));
  // A REST between part boundaries continues from the boundary at or below it.
  const between = await replicaB.openUpload('/r.bin', { kind: 'resume', offset: 7 * MiB });
  assert.equal(between.startOffset, 5 * MiB);
  await between.abort();
  const appended = await replicaB.openUpload('/r.bin', { kind: 'append' });
  assert.equal(appended.startOffset, 10 * MiB);
  await appended.abort();
  const resumed = await replicaB.openUpload('/r.bin', { kind: 'resume', offset: 10 * MiB });
  assert.equal(resumed.startOffset, 10 * MiB);
  await writeAll(resumed, data.subarray(resumed.startOffset));
  assert.ok((await readAll(replicaA, '/r.bin')).equals(data));
  assert.deepEqual(await s3.openUploads(replicaA.prefix), []);
  assert.equal((await replicaA.stat('/r.bin')).partial, undefined);

  // Discard: no multipart upload is left, nothing is published.
  const dropped = await replicaA.openUpload('/d.bin', { kind: 'replace' });
  await writeSome(dropped, randomBytes(11 * MiB));
  await dropped.abort({ discard: true });
  assert.deepEqual(await s3.openUploads(`${replicaA.prefix}d.bin`), []);
  await assert.rejects(replicaA.stat('/d.bin'), code('not-found'));

  // Delete drops an interrupted upload; rmdir clears abandoned ones in a folder that looks empty.
  await replicaA.mkdir('/sub');
  for (const path of ['/gone.bin', '/sub/x.bin']) {
    const u = await replicaA.openUpload(path, { kind: 'replace' });
    await writeSome(u, randomBytes(5 * MiB));
    await u.abort();
  }
  assert.deepEqual(await s3.openUploads(replicaA.prefix), [`${replicaA.prefix}gone.bin`, `${replicaA.prefix}sub/x.bin`]);
  await assert.rejects(replicaA.rename('/gone.bin', '/x'), code('denied'));
  await replicaA.delete('/gone.bin');
  await replicaA.rmdir('/sub');
  assert.deepEqual(await s3.openUploads(replicaA.prefix), []);
  assert.deepEqual(await replicaA.usage(), { files: 1, bytes: data.length });
});

test('s3: positional writes in order, append to published files, truncate only in place', async () => {
  const fs = s3.storage();
  const upload = await fs.openUpload('/w.bin', { kind: 'replace' });
  await upload.writeAt(0, Buffer.from('abc'));
  await assert.rejects(upload.writeAt(10, Buffer.from('x')), code('invalid-offset'));
  await upload.writeAt(3, [Buffer.from('de'), Buffer.from('f')]);
  await upload.sync();
  await assert.rejects(upload.truncate(2), code('denied'));
  await upload.truncate(6);
  assert.equal(upload.bytesWritten(), 6);
  assert.equal(upload.receiveInto, undefined);
  await upload.commit();
  assert.equal(await readText(fs, '/w.bin'), 'abcdef');

  // A short published file: its bytes are read into the first part.
  const more = await fs.openUpload('/w.bin', { kind: 'append' });
  assert.equal(more.startOffset, 6);
  await writeAll(more, Buffer.from('gh'));
  assert.equal(await readText(fs, '/w.bin'), 'abcdefgh');
  const cut = await fs.openUpload('/w.bin', { kind: 'resume', offset: 3 });
  await writeAll(cut, Buffer.from('XY'));
  assert.equal(await readText(fs, '/w.bin'), 'abcXY');
  await assert.rejects(fs.openUpload('/w.bin', { kind: 'resume', offset: 6 }), code('invalid-offset'));

  // A long one: copied inside the store (UploadPartCopy), not through the server.
  const base = randomBytes(6 * MiB + 1);
  await writeAll(await fs.openUpload('/long.bin', { kind: 'replace' }), base);
  s3.resetCounts();
  const tail = randomBytes(1000);
  const appending = await fs.openUpload('/long.bin', { kind: 'append' });
  assert.equal(appending.startOffset, base.length);
  await writeAll(appending, tail);
  assert.equal(s3.counts.UploadPartCopyCommand, 1);
  assert.equal(s3.counts.GetObjectCommand, undefined);
  assert.ok((await readAll(fs, '/long.bin')).equals(Buffer.concat([base, tail])));
  // Discarding an append leaves the published file as it was.
  const discarded = await fs.openUpload('/long.bin', { kind: 'append' });
  await writeSome(discarded, randomBytes(6 * MiB));
  await discarded.abort({ discard: true });
  assert.equal((await fs.stat('/long.bin')).size, base.length + tail.length);
  assert.deepEqual(await s3.openUploads(fs.prefix), []);
});

test('s3: paths never leave the prefix; limits and reserved names as locally', async () => {
  const alice = s3.storage({ prefix: 'homes/alice' }); // the trailing slash is added
  await s3.put('homes/bob/secret.txt', 'bob');
  await s3.put('homes/alice2/other.txt', 'x');
  await alice.mkdir('../bob');
  await putFile(alice, '/../../bob/secret.txt', 'alice');
  const keys = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'homes/' }));
  assert.deepEqual(
    keys.Contents?.map((o) => o.Key).filter((k) => /^homes\/(alice|bob)/.test(k ?? '')),
    ['homes/alice/bob/', 'homes/alice/bob/secret.txt', 'homes/alice2/other.txt', 'homes/bob/secret.txt'],
  );
  assert.equal(await readText(alice, '../bob/secret.txt'), 'alice');
  assert.deepEqual(names(await alice.list('/..')), ['bob/']);
  assert.deepEqual(await alice.usage(), { files: 1, bytes: 5 });
  await assert.rejects(alice.stat('/a\r\nb'), code('bad-name'));
  await assert.rejects(alice.openUpload('/.x.ftp-partial', { kind: 'replace' }), code('bad-name'));
  await assert.rejects(alice.stat(`/${'d/'.repeat(300)}`), code('path-too-long'));
  await assert.rejects(alice.stat(`/${'x'.repeat(1100)}`), code('path-too-long'));
  await assert.rejects(alice.delete('/'), code('is-a-directory'));

  const err: unknown = await alice.openRead('/nope').catch((e: unknown) => e);
  assert.ok(err instanceof StorageError && !err.message.includes('alice') && !err.message.includes(s3.bucket), String(err));
});

test('s3: an unreachable store fails with io, bucket and prefix left out of the message', async () => {
  const client = createS3Client({ endpoint: 'http://127.0.0.1:1', region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' }, forcePathStyle: true, maxAttempts: 1 });
  const fs = createS3Storage({ client, bucket: 'secret-bucket', prefix: 'homes/carol/' });
  const err = await fs.stat('/x').catch((e: unknown) => e as StorageError);
  assert.ok(err instanceof StorageError);
  assert.equal(err.code, 'io');
  assert.match(err.message, /object storage unreachable/);
  assert.ok(!/secret-bucket|carol/.test(err.message));
  client.destroy();
});

test('s3: abandoned uploads older than the age are aborted, younger ones and other prefixes kept', async () => {
  const home = s3.storage();
  const other = s3.storage();
  for (const [storage, path] of [
    [home, '/old.bin'],
    [other, '/elsewhere.bin'],
  ] as const) {
    const u = await storage.openUpload(path, { kind: 'replace' });
    await writeSome(u, randomBytes(5 * MiB));
    await u.abort();
  }
  // Nothing is an hour old yet: nothing goes.
  assert.equal(await abortAbandonedUploads(s3.client, s3.bucket, home.prefix, 3_600_000), 0);
  assert.deepEqual(await s3.openUploads(home.prefix), [`${home.prefix}old.bin`]);
  // Seen from two hours on, the upload under this prefix is abandoned; the other prefix's is not this sweep's.
  assert.equal(await abortAbandonedUploads(s3.client, s3.bucket, home.prefix, 3_600_000, Date.now() + 2 * 3_600_000), 1);
  assert.deepEqual(await s3.openUploads(home.prefix), []);
  assert.deepEqual(await s3.openUploads(other.prefix), [`${other.prefix}elsewhere.bin`]);
  await assert.rejects(home.stat('/old.bin'), code('not-found'));
});
