import {
  AbortMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { FileStat } from '../types';
import { ifPresent, s3Error } from './errors';
import type { KeySpace } from './keys';

/** What every S3 operation needs: shared by the storage, its downloads and its uploads. */
export interface S3Context {
  client: S3Client;
  bucket: string;
  keys: KeySpace;
}

/** A published object's facts (HeadObject). */
export interface ObjectFacts {
  size: number;
  mtime: Date;
  etag?: string;
}

/** One part of an unfinished multipart upload. */
export interface PartFacts {
  PartNumber: number;
  ETag: string;
  size: number;
  mtime?: Date;
}

/** An unfinished multipart upload of one key. */
export interface OpenUpload {
  uploadId: string;
  initiated: Date;
}

/** S3's smallest part, except the last one of an upload. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;

export const FILE_MODE = 0o644;
export const DIR_MODE = 0o755;
/** Folders have no time of their own in S3 (unless mkdir left a marker): listings show the epoch. */
const NO_TIME = new Date(0);

/** Runs an SDK call, every failure as a StorageError. */
export async function send<T>(op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (err) {
    throw s3Error(err);
  }
}

export async function headObject(ctx: S3Context, key: string): Promise<ObjectFacts | undefined> {
  const head = await ifPresent(ctx.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: key })));
  if (!head) return undefined;
  return { size: head.ContentLength ?? 0, mtime: head.LastModified ?? NO_TIME, etag: head.ETag };
}

/**
 * Whether folder prefix `folder` holds anything (its marker or any key below): one ListObjectsV2 of at most one key.
 * Resolves the marker's time when the first key is the marker.
 */
export async function probeFolder(ctx: S3Context, folder: string): Promise<{ exists: boolean; mtime: Date }> {
  const page = await send(ctx.client.send(new ListObjectsV2Command({ Bucket: ctx.bucket, Prefix: folder, MaxKeys: 1 })));
  const first = page.Contents?.[0];
  return { exists: first !== undefined, mtime: first?.Key === folder && first.LastModified ? first.LastModified : NO_TIME };
}

/** Whether folder prefix `folder` exists: the root always does, any other when it holds its marker or any key. */
export async function folderExists(ctx: S3Context, folder: string): Promise<boolean> {
  return folder === ctx.keys.prefix || (await probeFolder(ctx, folder)).exists;
}

/**
 * The unfinished multipart uploads of exactly `key`, newest first. A prefix listing also finds longer keys
 * (`key2`, `key/x`: the delimiter folds the latter); `key` sorts before all of them, so its uploads come first.
 */
export async function uploadsOf(ctx: S3Context, key: string): Promise<OpenUpload[]> {
  const found: OpenUpload[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await send(
      ctx.client.send(
        new ListMultipartUploadsCommand({ Bucket: ctx.bucket, Prefix: key, Delimiter: '/', KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      ),
    );
    const uploads = page.Uploads ?? [];
    for (const u of uploads) {
      if (u.Key === key && u.UploadId) found.push({ uploadId: u.UploadId, initiated: u.Initiated ?? NO_TIME });
    }
    // Stop at the first page that reaches past `key`'s own uploads.
    if (!page.IsTruncated || uploads.length === 0 || uploads[uploads.length - 1].Key !== key) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
  return found.sort((a, b) => b.initiated.getTime() - a.initiated.getTime());
}

/** Every unfinished upload under folder prefix `folder` (rmdir clears them), as [key, uploadId]. */
export async function uploadsUnder(ctx: S3Context, folder: string): Promise<[string, string][]> {
  const found: [string, string][] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  do {
    const page = await send(
      ctx.client.send(new ListMultipartUploadsCommand({ Bucket: ctx.bucket, Prefix: folder, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker })),
    );
    for (const u of page.Uploads ?? []) if (u.Key && u.UploadId) found.push([u.Key, u.UploadId]);
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  } while (keyMarker !== undefined);
  return found;
}

/**
 * The parts of an upload that follow each other from part 1: a resume continues after the last of them. A part
 * missing in between (one that failed while the next was in flight) ends the run, and so does a part under S3's
 * minimum (the last part of a commit that failed after sending it): no part could follow it.
 */
export async function contiguousParts(ctx: S3Context, key: string, uploadId: string): Promise<PartFacts[]> {
  const parts: PartFacts[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await send(
      ctx.client.send(new ListPartsCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker })),
    );
    for (const p of page.Parts ?? []) {
      if (p.PartNumber && p.ETag) parts.push({ PartNumber: p.PartNumber, ETag: p.ETag, size: p.Size ?? 0, mtime: p.LastModified });
    }
    if (!page.IsTruncated || page.NextPartNumberMarker === undefined) break;
    marker = page.NextPartNumberMarker;
  }
  parts.sort((a, b) => a.PartNumber - b.PartNumber);
  let run = 0;
  while (run < parts.length && parts[run].PartNumber === run + 1 && parts[run].size >= MIN_PART_SIZE) run += 1;
  return parts.slice(0, run);
}

export async function abortUpload(ctx: S3Context, key: string, uploadId: string): Promise<void> {
  await ifPresent(ctx.client.send(new AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId })));
}

export function fileStat(name: string, key: string, size: number, mtime: Date | undefined): FileStat {
  return { name, type: 'file', size, mtime: mtime ?? NO_TIME, mode: FILE_MODE, unique: uniqueOf(key) };
}

export function dirStat(name: string, folder: string, mtime: Date = NO_TIME): FileStat {
  return { name, type: 'dir', size: 0, mtime, mode: DIR_MODE, unique: uniqueOf(folder) };
}

/** MLSD's `unique` fact: stable per key, and a hash so that it does not show the prefix. */
function uniqueOf(key: string): string {
  return createHash('sha1').update(key).digest('base64url').slice(0, 16);
}

/** `a/b c` → `a/b%20c`: CopyObject's source is a URL path. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}
