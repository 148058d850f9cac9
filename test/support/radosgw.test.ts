import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { radosgwClientConfig, sharedRadosgw, startRadosgw } from './radosgw';

/** Resident memory of a process in bytes, 0 once it is gone. */
function rss(pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

test('radosgw: S3 objects, multipart, conditional put; stop kills every daemon', async (t) => {
  const rgw = await startRadosgw();
  const s3 = new S3Client(radosgwClientConfig(rgw));
  try {
    t.diagnostic(`started in ${rgw.startupMs} ms, pids ${rgw.pids.join(' ')}, RSS ${(rgw.pids.reduce((sum, pid) => sum + rss(pid), 0) / 2 ** 20).toFixed(0)} MiB`);
    const Bucket = await rgw.createBucket();

    const body = randomBytes(1000);
    await s3.send(new PutObjectCommand({ Bucket, Key: 'dir/a.bin', Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'dir/a.bin' }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'dir/' }));
    assert.deepEqual(
      listed.Contents?.map((o) => [o.Key, o.Size]),
      [['dir/a.bin', 1000]],
    );

    // If-None-Match: * on an existing key: 412, the object unchanged.
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket, Key: 'dir/a.bin', Body: 'other', IfNoneMatch: '*' })),
      (err: S3ServiceException) => err.$metadata.httpStatusCode === 412,
    );
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket, Key: 'dir/a.bin' }))).ContentLength, 1000);

    await s3.send(new DeleteObjectCommand({ Bucket, Key: 'dir/a.bin' }));
    assert.equal((await s3.send(new ListObjectsV2Command({ Bucket }))).KeyCount, 0);

    // Multipart: 5 MiB (the smallest part but the last) + 1 byte.
    const parts = [randomBytes(5 * 2 ** 20), randomBytes(1)];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'big.bin' }));
    const etags = [];
    for (const [i, part] of parts.entries()) {
      etags.push((await s3.send(new UploadPartCommand({ Bucket, Key: 'big.bin', UploadId, PartNumber: i + 1, Body: part }))).ETag);
    }
    await s3.send(
      new CompleteMultipartUploadCommand({ Bucket, Key: 'big.bin', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
    );
    const big = await s3.send(new GetObjectCommand({ Bucket, Key: 'big.bin' }));
    assert.deepEqual(Buffer.from(await big.Body!.transformToByteArray()), Buffer.concat(parts));

    // deleteBucket empties it first, unfinished multipart uploads included.
    await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'unfinished.bin' }));
    await rgw.deleteBucket(Bucket);
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket })), (err: S3ServiceException) => err.$metadata.httpStatusCode === 404);
  } finally {
    s3.destroy();
    await rgw.stop();
  }
  for (const pid of rgw.pids) assert.equal(alive(pid), false, `pid ${pid} still runs`);
  assert.equal(existsSync(rgw.dir), false, `${rgw.dir} is still there`);
});

test('sharedRadosgw: one instance per process, and it does not keep the process alive', async () => {
  const [a, b] = await Promise.all([sharedRadosgw(), sharedRadosgw()]);
  assert.equal(a.endpoint, b.endpoint);
  const bucket = await a.createBucket();
  await a.deleteBucket(bucket);
});
