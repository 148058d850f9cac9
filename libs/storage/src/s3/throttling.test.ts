// Throttling (503 SlowDown) against the real radosgw: radosgw 16 has no rate limiter, so a proxy in front of it
// (test/support/s3FaultProxy.ts) answers chosen requests with S3's SlowDown; everything else reaches the store. The
// client is createS3Client's, as the edge and the worker build it: its retry settings are what is tested.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test, type TestContext } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { radosgwClientConfig, sharedRadosgw, type Radosgw } from '../../../../test/support/radosgw';
import { startS3FaultProxy, type S3FaultProxy, type SeenRequest } from '../../../../test/support/s3FaultProxy';
import { StorageError } from '../types';
import { createS3Client } from './client';
import { createS3Storage } from './s3Storage';
import { MiB, readAll, writeAll, writeSome } from './testSupport';

const PART = 5 * MiB;
/** createS3Client's default attempts per request, the first included. */
const ATTEMPTS = 5;
/**
 * The most one always-throttled request may take: the SDK's backoff for throttling (full jitter, 1 s base, doubling)
 * sleeps at most 1 + 2 + 4 + 8 = 15 s over 4 retries; the rest is slack for a busy machine.
 */
const ONE_REQUEST_BOUND_MS = 25_000;

let rgw: Radosgw;
let bucket: string | undefined;
let direct: S3Client;
let proxy: S3FaultProxy;
let homes = 0;

before(async () => {
  rgw = await sharedRadosgw();
  bucket = await rgw.createBucket();
  direct = new S3Client(radosgwClientConfig(rgw));
  proxy = await startS3FaultProxy(rgw.endpoint);
});

after(async () => {
  await proxy?.close();
  if (bucket) await rgw.deleteBucket(bucket);
  direct?.destroy();
});

/** A storage on a fresh home, through the proxy, with a client of its own (its retry quota starts full). */
function throttledStorage(t: TestContext) {
  const client = createS3Client({
    endpoint: proxy.endpoint,
    region: rgw.region,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    forcePathStyle: true,
  });
  t.after(() => client.destroy());
  const prefix = `homes/t${++homes}-${randomBytes(3).toString('hex')}/`;
  return { storage: createS3Storage({ client, bucket: bucket!, prefix, partSize: PART }), prefix };
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const busy = (err: unknown) => err instanceof StorageError && err.code === 'io' && err.message === 'object storage busy, try again later';

async function objectsUnder(prefix: string): Promise<Map<string, number>> {
  const out = await direct.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return new Map((out.Contents ?? []).map((o) => [o.Key!, o.Size ?? 0]));
}

async function uploadsUnder(prefix: string): Promise<string[]> {
  const out = await direct.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => u.Key!);
}

async function directSha(key: string): Promise<string> {
  const out = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return sha(Buffer.from(await out.Body!.transformToByteArray()));
}

/** The part an UploadPart request sends; undefined for other requests. */
const partNumber = (r: SeenRequest) => {
  const n = /[?&]partNumber=(\d+)/.exec(r.url)?.[1];
  return r.method === 'PUT' && n ? Number(n) : undefined;
};

/** The attempts of each call (by invocation id) among `requests`. */
function byInvocation(requests: SeenRequest[]): Map<string, SeenRequest[]> {
  const calls = new Map<string, SeenRequest[]>();
  for (const r of requests) calls.set(r.invocation, [...(calls.get(r.invocation) ?? []), r]);
  return calls;
}

test('SlowDown to the first attempt of every request: multipart and single-PUT uploads and their downloads succeed, byte-exact', { timeout: 120_000 }, async (t) => {
  const { storage, prefix } = throttledStorage(t);
  await storage.mkdir('/in');
  const mark = proxy.seen.length;
  proxy.throttle({ count: Infinity, match: (r) => r.attempt === 1 });
  t.after(() => proxy.clear());

  const big = randomBytes(2 * PART + 123_457); // three parts: CreateMultipartUpload, 3 × UploadPart, Complete
  const small = randomBytes(70_000); // one PutObject at commit
  const started = Date.now();
  await writeAll(await storage.openUpload('/in/big.bin', { kind: 'replace' }), big);
  await writeAll(await storage.openUpload('/in/small.bin', { kind: 'replace' }), small);
  assert.equal(sha(await readAll(storage, '/in/big.bin')), sha(big), 'the 3-part file reads back byte-exact');
  assert.ok((await readAll(storage, '/in/big.bin', PART + 1)).equals(big.subarray(PART + 1)), 'and from an offset');
  assert.ok((await readAll(storage, '/in/small.bin')).equals(small));
  t.diagnostic(`uploads and downloads with every first attempt throttled: ${Date.now() - started} ms`);

  // In the store itself: exactly the two files (and the folder marker), whole; no multipart upload left.
  assert.deepEqual([...(await objectsUnder(prefix))].sort(), [
    [`${prefix}in/`, 0],
    [`${prefix}in/big.bin`, big.length],
    [`${prefix}in/small.bin`, small.length],
  ]);
  assert.equal(await directSha(`${prefix}in/big.bin`), sha(big));
  assert.deepEqual(await uploadsUnder(prefix), []);

  // Every call was throttled once and went through on its second attempt: retried, not failed over to something else.
  const calls = byInvocation(proxy.seen.slice(mark));
  for (const [id, attempts] of calls) {
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.outcome === 'slowdown' ? 'slowdown' : typeof a.outcome === 'number' && a.outcome < 300 ? 'ok' : a.outcome]),
      [
        [1, 'slowdown'],
        [2, 'ok'],
      ],
      `call ${id}: ${attempts.map((a) => `${a.method} ${a.url}`).join(', ')}`,
    );
  }
  const kinds = new Set([...calls.values()].map(([first]) => `${first.method} ${/[?&](uploadId|uploads|list-type)\b/.exec(first.url)?.[1] ?? ''}`.trim()));
  for (const kind of ['POST uploads', 'PUT uploadId', 'POST uploadId', 'PUT', 'GET', 'GET list-type']) {
    assert.ok(kinds.has(kind), `a throttled ${kind} was retried (seen: ${[...kinds].join(', ')})`);
  }
});

test('a store that always says SlowDown: downloads and uploads fail with "object storage busy" in bounded time, nothing published', { timeout: 180_000 }, async (t) => {
  const { storage, prefix } = throttledStorage(t);
  const file = randomBytes(1000);
  await writeAll(await storage.openUpload('/there.bin', { kind: 'replace' }), file);

  proxy.throttle({ count: Infinity });
  t.after(() => proxy.clear());
  let mark = proxy.seen.length;
  let started = Date.now();
  await assert.rejects(storage.openRead('/there.bin'), busy);
  const readMs = Date.now() - started;
  const reads = byInvocation(proxy.seen.slice(mark));
  assert.equal(reads.size, 1, 'one GetObject call');
  assert.deepEqual(
    [...reads.values()][0].map((r) => r.attempt),
    [1, 2, 3, 4, 5],
    `${ATTEMPTS} attempts, then the error`,
  );
  assert.ok(readMs < ONE_REQUEST_BOUND_MS, `the download failed after ${readMs} ms`);

  mark = proxy.seen.length;
  started = Date.now();
  await assert.rejects(storage.openUpload('/new.bin', { kind: 'replace' }), busy);
  const openMs = Date.now() - started;
  assert.ok(openMs < ONE_REQUEST_BOUND_MS, `opening the upload failed after ${openMs} ms`);
  for (const [id, attempts] of byInvocation(proxy.seen.slice(mark))) assert.ok(attempts.length <= ATTEMPTS, `call ${id}: ${attempts.length} attempts`);
  t.diagnostic(`always SlowDown: download failed after ${readMs} ms, upload open after ${openMs} ms`);

  proxy.clear();
  assert.deepEqual([...(await objectsUnder(prefix)).keys()], [`${prefix}there.bin`], 'nothing new in the bucket');
  assert.deepEqual(await uploadsUnder(prefix), []);
});

test('SlowDown from the second part on: the upload fails in bounded time, nothing is published, the part kept resumes byte-exact', { timeout: 180_000 }, async (t) => {
  const { storage, prefix } = throttledStorage(t);
  const key = `${prefix}cut.bin`;
  const payload = randomBytes(3 * PART + 999);
  const upload = await storage.openUpload('/cut.bin', { kind: 'replace' });
  const mark = proxy.seen.length;
  // The first part goes out and is stored; from then on, every write to the store is throttled (reads still pass).
  await writeSome(upload, payload.subarray(0, PART));
  const firstPart = async () => proxy.seen.slice(mark).some((r) => partNumber(r) === 1 && r.outcome === 200);
  for (const deadline = Date.now() + 30_000; !(await firstPart()); ) {
    assert.ok(Date.now() < deadline, 'the first part reached the store');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  proxy.throttle({ count: Infinity, match: (r) => r.method !== 'GET' && r.method !== 'HEAD' });
  t.after(() => proxy.clear());

  const started = Date.now();
  // As a session feeds it: the client's bytes piped in, commit once they are all in.
  const rest = payload.subarray(PART);
  const chunks = Array.from({ length: Math.ceil(rest.length / (64 * 1024)) }, (_, i) => rest.subarray(i * 64 * 1024, (i + 1) * 64 * 1024));
  await assert.rejects(
    pipeline(Readable.from(chunks), upload.stream).then(() => upload.commit()),
    busy,
  );
  const failMs = Date.now() - started;
  // Parts 2 and 3 are in flight together and retried side by side; the 4th waits for them and is never sent.
  assert.ok(failMs < ONE_REQUEST_BOUND_MS, `the upload failed after ${failMs} ms`);
  const parts = [...byInvocation(proxy.seen.slice(mark)).values()].filter(([first]) => (partNumber(first) ?? 1) > 1);
  assert.ok(parts.length > 0 && parts.every((attempts) => attempts.length <= ATTEMPTS), `throttled parts: ${parts.map((a) => a.length).join(', ')} attempts`);
  assert.ok(parts.some((attempts) => attempts.length === ATTEMPTS && attempts.every((a) => a.outcome === 'slowdown')), 'a part gave up after its attempts');
  await upload.abort(); // what a session does with a broken transfer: the parts stored stay for a resume
  t.diagnostic(`SlowDown from the second part: failed after ${failMs} ms`);

  proxy.clear();
  assert.equal((await objectsUnder(prefix)).size, 0, 'nothing published under the name');
  await assert.rejects(direct.send(new HeadObjectCommand({ Bucket: bucket, Key: key })), (err: Error) => err.name === 'NotFound');
  const stat = await storage.stat('/cut.bin');
  assert.deepEqual([stat.partial, stat.size], [true, PART], 'the one stored part is what a client resumes from (SIZE)');

  // The store recovered: a resume from there publishes the whole file, and nothing is left over.
  const resumed = await storage.openUpload('/cut.bin', { kind: 'resume', offset: PART });
  assert.equal(resumed.startOffset, PART);
  await writeAll(resumed, payload.subarray(PART));
  assert.deepEqual([...(await objectsUnder(prefix))], [[key, payload.length]]);
  assert.equal(await directSha(key), sha(payload));
  assert.deepEqual(await uploadsUnder(prefix), []);
});
