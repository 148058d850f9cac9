import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { storageError } from '../errors';
import { StorageError } from '../types';
import { abortUpload, copySource, send, type ObjectFacts, type S3Context } from './objects';

/** CopyObject's limit; larger objects are copied part by part (UploadPartCopy). */
const MAX_COPY_OBJECT = 5 * 1024 * 1024 * 1024;
/** Ranges of a multipart copy. */
const COPY_PART = 1024 * 1024 * 1024;
/** Keys of a folder copied at once. */
const COPY_CONCURRENCY = 8;

export interface CopyLimits {
  /** Above this, an object is copied part by part (S3: 5 GiB; smaller in tests). */
  maxCopyObject?: number;
  /** Part size of such a copy (at least 5 MiB). */
  copyPart?: number;
}

/**
 * Copy object `from` (of `facts.size` bytes) to `to` inside the bucket: one CopyObject, or a multipart copy past 5 GiB.
 * `replace: false` sends `If-None-Match: *`, so a store that supports conditional writes refuses (412 → 'exists') an
 * object that appeared at `to` meanwhile; callers check before too, for stores that ignore the header.
 */
export async function copyObject(
  ctx: S3Context,
  from: string,
  to: string,
  facts: ObjectFacts,
  limits: CopyLimits = {},
  replace = true,
): Promise<void> {
  const source = copySource(ctx.bucket, from);
  const IfNoneMatch = replace ? undefined : '*';
  if (facts.size <= (limits.maxCopyObject ?? MAX_COPY_OBJECT)) {
    await send(ctx.client.send(new CopyObjectCommand({ Bucket: ctx.bucket, Key: to, CopySource: source, CopySourceIfMatch: facts.etag, IfNoneMatch })));
    return;
  }
  const part = limits.copyPart ?? COPY_PART;
  const created = await send(ctx.client.send(new CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: to })));
  const uploadId = created.UploadId ?? '';
  try {
    const count = Math.ceil(facts.size / part);
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let i = 0; i < count; i += COPY_CONCURRENCY) {
      const batch = Array.from({ length: Math.min(COPY_CONCURRENCY, count - i) }, async (_, j) => {
        const n = i + j;
        const out = await send(
          ctx.client.send(
            new UploadPartCopyCommand({
              Bucket: ctx.bucket,
              Key: to,
              UploadId: uploadId,
              PartNumber: n + 1,
              CopySource: source,
              CopySourceRange: `bytes=${n * part}-${Math.min(facts.size, (n + 1) * part) - 1}`,
              CopySourceIfMatch: facts.etag,
            }),
          ),
        );
        parts.push({ PartNumber: n + 1, ETag: out.CopyPartResult?.ETag ?? '' });
      });
      await Promise.all(batch);
    }
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    await send(
      ctx.client.send(
        new CompleteMultipartUploadCommand({ Bucket: ctx.bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts }, IfNoneMatch }),
      ),
    );
  } catch (err) {
    await abortUpload(ctx, to, uploadId).catch(() => undefined);
    throw err;
  }
}

/** A file: copy, then delete the original. Not atomic: a failure between the two leaves both names. */
export async function renameObject(ctx: S3Context, from: string, to: string, facts: ObjectFacts, limits?: CopyLimits, replace = true): Promise<void> {
  await copyObject(ctx, from, to, facts, limits, replace);
  await send(ctx.client.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: from })));
}

/**
 * A folder: every key under `from` (its marker included) copied under `to`, then all deleted in one DeleteObjects.
 * Only folders of at most `maxKeys` keys (one listing page, one DeleteObjects): a larger one is 'denied', since S3
 * has no rename and copying an unbounded tree inside one FTP command would hold the client for minutes. When a copy
 * fails, the copies made so far are removed again and the original stays.
 */
export async function renameFolder(ctx: S3Context, from: string, to: string, maxKeys: number, limits?: CopyLimits): Promise<void> {
  const page = await send(ctx.client.send(new ListObjectsV2Command({ Bucket: ctx.bucket, Prefix: from, MaxKeys: Math.min(1000, maxKeys + 1) })));
  const objects = (page.Contents ?? []).map((o) => ({ key: o.Key ?? '', facts: { size: o.Size ?? 0, mtime: o.LastModified ?? new Date(0), etag: o.ETag } }));
  if (page.IsTruncated || objects.length > maxKeys) {
    throw new StorageError('denied', `object storage renames folders of at most ${maxKeys} files and folders`);
  }
  if (objects.length === 0) throw storageError('not-found');
  const copied: string[] = [];
  try {
    for (let i = 0; i < objects.length; i += COPY_CONCURRENCY) {
      await Promise.all(
        objects.slice(i, i + COPY_CONCURRENCY).map(async ({ key, facts }) => {
          const target = to + key.slice(from.length);
          await copyObject(ctx, key, target, facts, limits);
          copied.push(target);
        }),
      );
    }
  } catch (err) {
    await deleteKeys(ctx, copied).catch(() => undefined);
    throw err;
  }
  await deleteKeys(
    ctx,
    objects.map((o) => o.key),
  );
}

/** DeleteObjects, 1000 keys a request; a key it could not delete fails the call. */
export async function deleteKeys(ctx: S3Context, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const out = await send(
      ctx.client.send(
        new DeleteObjectsCommand({ Bucket: ctx.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }),
      ),
    );
    if (out.Errors && out.Errors.length > 0) throw new StorageError('io', 'object storage could not delete every object', out.Errors);
  }
}
