import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { partialNameFor } from '../partial';
import { StorageError } from '../types';
import { ifPresent, s3Error } from './errors';
import { send, type S3Context } from './objects';

/** A claim older than this belongs to a process that died while placing: it is taken over. */
const STALE_CLAIM_MS = 10 * 60_000;
/** How long a writer waits for another one's claim on the same name before it gives up ('io', retried later). */
const CLAIM_WAIT_MS = 60_000;

/**
 * Runs `place` (which must not replace an object at `key`) while holding the name: S3 has no link(2), and radosgw
 * ignores `If-None-Match` on CopyObject, but every S3 store honours it on PutObject. So the name is claimed by a
 * conditional PutObject of an empty object under a reserved, hidden name beside it (`.<name>.claim.ftp-partial`,
 * never listed, never addressable by a client); writers of the same name wait for each other, and whoever places
 * second sees the object and gets 'exists'. A claim left by a process that died is taken over once stale.
 */
export async function withClaim<T>(ctx: S3Context, key: string, place: () => Promise<T>): Promise<T> {
  const slash = key.lastIndexOf('/');
  const claim = `${key.slice(0, slash + 1)}${partialNameFor(`${key.slice(slash + 1)}.claim`)}`;
  const deadline = Date.now() + CLAIM_WAIT_MS;
  for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
    try {
      await ctx.client.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: claim, Body: '', IfNoneMatch: '*' }));
      break;
    } catch (err) {
      if (s3Error(err).code !== 'exists') throw s3Error(err);
    }
    const held = await ifPresent(ctx.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: claim })));
    if (held && Date.now() - (held.LastModified?.getTime() ?? 0) > STALE_CLAIM_MS) {
      await release(ctx, claim);
      continue;
    }
    if (Date.now() > deadline) throw new StorageError('io', 'another writer holds this name; try again later');
    await sleep(pause);
  }
  try {
    return await place();
  } finally {
    await release(ctx, claim);
  }
}

async function release(ctx: S3Context, claim: string): Promise<void> {
  await send(ctx.client.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: claim }))).catch(() => undefined);
}
