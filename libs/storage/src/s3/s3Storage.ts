import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { storageError } from '../errors';
import { listAll } from '../lookup';
import { DEFAULT_STORAGE_LIMITS, StorageError, type FileStat, type Storage, type StorageLimits, type UploadStart } from '../types';
import { emptyDownload, getFrom, rangedDownload } from './download';
import { s3Error } from './errors';
import { createKeySpace, type Location } from './keys';
import { listFolder, usageOf } from './listing';
import {
  abortUpload,
  contiguousParts,
  dirStat,
  fileStat,
  folderExists,
  headObject,
  MIN_PART_SIZE,
  probeFolder,
  send,
  uploadsOf,
  uploadsUnder,
  type OpenUpload,
  type PartFacts,
  type S3Context,
} from './objects';
import { withClaim } from './claim';
import { copyObject, renameFolder, renameObject, type CopyLimits } from './rename';
import { multipartUpload, type UploadPlan } from './upload';

export interface S3StorageOptions {
  /** Made with createS3Client (checksums only when required, retries with backoff, timeouts), or set up alike. */
  client: S3Client;
  bucket: string;
  /** The user's home in the bucket, e.g. `homes/alice/` ('' for the whole bucket): `/` for the session. */
  prefix: string;
  /** Bytes per multipart part (default 16 MiB, at least S3's 5 MiB): memory per upload is at most twice this. */
  partSize?: number;
  /** Listing size and path depth/length bounds; each one left out is DEFAULT_STORAGE_LIMITS'. */
  limits?: Partial<StorageLimits>;
  /** Keys per ListObjectsV2 page, and so per listing batch (default and S3's maximum 1000; smaller in tests). */
  listPageSize?: number;
  /** A folder with more keys than this (default 1000) is not renamed: 'denied'. */
  maxFolderRenameKeys?: number;
  /** Multipart copies (files over 5 GiB renamed): thresholds, smaller in tests. */
  copy?: CopyLimits;
}

const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
const MAX_PARTS = 10_000;

/**
 * Storage over an S3-compatible bucket, confined to `prefix`. A file is the object `<prefix><path>`; a folder is a
 * common prefix, and an empty one made by mkdir is a zero-byte `<path>/` marker. An interrupted upload is an
 * unfinished multipart upload of the file's key, continued by any replica (README.md beside this file).
 */
export function createS3Storage(options: S3StorageOptions): Storage {
  const limits: StorageLimits = { ...DEFAULT_STORAGE_LIMITS, ...options.limits };
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  if (partSize < MIN_PART_SIZE) throw new Error(`partSize must be at least ${MIN_PART_SIZE} bytes (S3's minimum part)`);
  const pageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
  const maxFolderKeys = Math.min(1000, options.maxFolderRenameKeys ?? 1000);
  const ctx: S3Context = { client: options.client, bucket: options.bucket, keys: createKeySpace(options.prefix, limits) };
  const locate = (vpath: string) => ctx.keys.locate(vpath);

  /** Why `at`'s parent folder is not there: it is a file, or nothing. */
  const missingParent = async (at: Location): Promise<StorageError> =>
    storageError((await headObject(ctx, at.parent.slice(0, -1))) ? 'not-a-directory' : 'not-found');

  const storage: Storage = {
    usage: () => usageOf(ctx),

    async stat(vpath) {
      const at = locate(vpath);
      if (at.isRoot) return dirStat('/', at.folder);
      const [head, partial] = await Promise.all([headObject(ctx, at.key), partialOf(ctx, at.key)]);
      // An interrupted upload wins, as locally: SIZE must report where a resume continues from.
      if (partial) return partialStat(at, partial, partSize);
      if (head) return fileStat(at.name, at.key, head.size, head.mtime);
      const folder = await probeFolder(ctx, at.folder);
      if (folder.exists) return dirStat(at.name, at.folder, folder.mtime);
      throw storageError('not-found');
    },

    list: (vpath) => listAll(storage, vpath),

    async listEntries(vpath) {
      return listFolder(ctx, locate(vpath), pageSize, limits.maxListEntries);
    },

    async openRead(vpath, offset = 0) {
      if (!Number.isSafeInteger(offset) || offset < 0) throw storageError('invalid-offset');
      const at = locate(vpath);
      if (at.isRoot) throw storageError('is-a-directory');
      let got: Awaited<ReturnType<typeof getFrom>>;
      try {
        got = await getFrom(ctx, at.key, offset);
      } catch (err) {
        if (s3Error(err).code !== 'not-found') throw err;
        throw storageError((await probeFolder(ctx, at.folder)).exists ? 'is-a-directory' : 'not-found');
      }
      if (got !== 'past-end') return rangedDownload(ctx, at.key, got.size, got.body, offset);
      const head = await headObject(ctx, at.key);
      if (!head) throw storageError('not-found');
      return emptyDownload(head.size);
    },

    async openUpload(vpath, start, expectedSize) {
      const at = locate(vpath);
      if (at.isRoot) throw storageError('is-a-directory');
      if (start.kind === 'resume' && (!Number.isSafeInteger(start.offset) || start.offset < 0)) throw storageError('invalid-offset');
      const [parentThere, folder, uploads] = await Promise.all([
        folderExists(ctx, at.parent),
        probeFolder(ctx, at.folder),
        uploadsOf(ctx, at.key),
      ]);
      if (!parentThere) throw await missingParent(at);
      if (folder.exists) throw storageError('is-a-directory');
      const size = partSizeFor(partSize, expectedSize);
      return multipartUpload(ctx, await planUpload(ctx, at.key, start, size, uploads));
    },

    async mkdir(vpath) {
      const at = locate(vpath);
      if (at.isRoot) throw storageError('exists');
      const [parentThere, head, folder] = await Promise.all([folderExists(ctx, at.parent), headObject(ctx, at.key), probeFolder(ctx, at.folder)]);
      if (head || folder.exists) throw storageError('exists');
      if (!parentThere) throw await missingParent(at);
      await send(ctx.client.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: at.folder, Body: Buffer.alloc(0), ContentLength: 0 })));
    },

    async rmdir(vpath) {
      const at = locate(vpath);
      if (at.isRoot) throw storageError('denied');
      const page = await send(ctx.client.send(new ListObjectsV2Command({ Bucket: ctx.bucket, Prefix: at.folder, MaxKeys: 2 })));
      const keys = (page.Contents ?? []).map((o) => o.Key);
      if (keys.length === 0) throw storageError((await headObject(ctx, at.key)) ? 'not-a-directory' : 'not-found');
      if (keys.some((k) => k !== at.folder)) throw storageError('not-empty');
      // A folder that looks empty to the client may still hold abandoned interrupted uploads: clear them.
      await Promise.all((await uploadsUnder(ctx, at.folder)).map(([key, id]) => abortUpload(ctx, key, id)));
      await send(ctx.client.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: at.folder })));
    },

    async delete(vpath, deleting) {
      const at = locate(vpath);
      if (at.isRoot) throw storageError('is-a-directory');
      const [head, uploads] = await Promise.all([headObject(ctx, at.key), deleting?.keepUpload ? [] : uploadsOf(ctx, at.key)]);
      if (!head && uploads.length === 0) {
        throw storageError((await probeFolder(ctx, at.folder)).exists ? 'is-a-directory' : 'not-found');
      }
      // Deleting a name also drops its interrupted uploads, or a later resume would revive them.
      await Promise.all([
        head ? send(ctx.client.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: at.key }))) : undefined,
        ...uploads.map((u) => abortUpload(ctx, at.key, u.uploadId)),
      ]);
    },

    async rename(fromPath, toPath, place) {
      const [from, to] = [locate(fromPath), locate(toPath)];
      const replace = place?.replace !== false;
      if (from.isRoot || to.isRoot) throw storageError('denied');
      if (from.key === to.key) {
        await storage.stat(fromPath);
        if (!replace) throw storageError('exists');
        return;
      }
      if (to.folder.startsWith(from.folder)) throw storageError('denied'); // a folder into itself
      const [head, destParent, destFolder] = await Promise.all([headObject(ctx, from.key), folderExists(ctx, to.parent), probeFolder(ctx, to.folder)]);
      if (!destParent) throw await missingParent(to);
      if (head) {
        if (destFolder.exists) throw storageError('is-a-directory');
        if (replace) return renameObject(ctx, from.key, to.key, head, options.copy);
        return withClaim(ctx, to.key, async () => {
          if (await headObject(ctx, to.key)) throw storageError('exists');
          await renameObject(ctx, from.key, to.key, head, options.copy, false);
        });
      }
      if ((await probeFolder(ctx, from.folder)).exists) {
        if (destFolder.exists || (await headObject(ctx, to.key))) throw storageError('exists');
        return renameFolder(ctx, from.folder, to.folder, maxFolderKeys, options.copy);
      }
      if ((await uploadsOf(ctx, from.key)).length > 0) {
        throw new StorageError('denied', 'an interrupted upload cannot be renamed on object storage: finish or delete it');
      }
      throw storageError('not-found');
    },

    async copy(fromPath, toPath, place) {
      const [from, to] = [locate(fromPath), locate(toPath)];
      const replace = place?.replace !== false;
      if (from.isRoot) throw storageError('is-a-directory');
      if (to.isRoot) throw storageError('denied');
      const [head, destParent, destFolder] = await Promise.all([headObject(ctx, from.key), folderExists(ctx, to.parent), probeFolder(ctx, to.folder)]);
      if (!head) throw storageError((await probeFolder(ctx, from.folder)).exists ? 'is-a-directory' : 'not-found');
      if (!destParent) throw await missingParent(to);
      if (destFolder.exists) throw storageError('is-a-directory');
      if (from.key === to.key) throw storageError(replace ? 'denied' : 'exists');
      if (replace) return copyObject(ctx, from.key, to.key, head, options.copy);
      await withClaim(ctx, to.key, async () => {
        if (await headObject(ctx, to.key)) throw storageError('exists');
        await copyObject(ctx, from.key, to.key, head, options.copy, false);
      });
    },

    async setModifiedTime(vpath) {
      // S3 sets LastModified itself; a copy onto itself with the time as metadata would rewrite the whole object and
      // still not show in listings. Refused, once the name is known to exist.
      await storage.stat(vpath);
      throw new StorageError('denied', 'object storage cannot change modification times');
    },
  };
  return withStorageErrors(storage);
}

/** The newest unfinished upload of `key` that holds parts a resume can continue, with those parts. */
async function partialOf(ctx: S3Context, key: string): Promise<{ upload: OpenUpload; parts: PartFacts[] } | undefined> {
  const [newest] = await uploadsOf(ctx, key);
  if (!newest) return undefined;
  const parts = await contiguousParts(ctx, key, newest.uploadId);
  return parts.length > 0 ? { upload: newest, parts } : undefined;
}

function partialStat(at: Location, { upload, parts }: { upload: OpenUpload; parts: PartFacts[] }, partSize: number): FileStat {
  return { ...fileStat(at.name, at.key, resumePointOfParts(parts, partSize), parts[parts.length - 1].mtime ?? upload.initiated), partial: true };
}

/**
 * Where a resume of these parts continues: after all of them, as a broken upload keeps whole parts only; but a last
 * part shorter than the others is the file's final one (its replica died before CompleteMultipartUpload), which a
 * resume must send again so that it ends with a commit (see Storage.stat).
 */
function resumePointOfParts(parts: PartFacts[], partSize: number): number {
  const total = parts.reduce((sum, p) => sum + p.size, 0);
  const last = parts[parts.length - 1].size;
  const whole = parts.length > 1 ? parts[0].size : partSize;
  return last < whole ? total - last : total;
}

/** The part size for a file of `expectedSize`: larger when 10,000 parts of the configured size would not hold it. */
function partSizeFor(partSize: number, expectedSize: number | undefined): number {
  if (expectedSize === undefined || !Number.isSafeInteger(expectedSize)) return partSize;
  const MiB = 1024 * 1024;
  return Math.max(partSize, Math.ceil(expectedSize / (MAX_PARTS - 100) / MiB) * MiB);
}

/**
 * Where an upload begins. Fresh ('replace', or nothing to continue); else the newest unfinished upload of the key,
 * continued after its last complete part at or below the offset ('append': where stat said); else the published
 * object, whose first `offset` bytes (all of them for 'append') become the new upload's start: copied inside the store
 * when they can be a part of their own (≥ 5 MiB), read into the first part when shorter.
 */
async function planUpload(ctx: S3Context, key: string, start: UploadStart, partSize: number, uploads: OpenUpload[]): Promise<UploadPlan> {
  const fresh: UploadPlan = { key, partSize, startOffset: 0, stale: uploads.map((u) => u.uploadId) };
  if (start.kind === 'replace') return fresh;
  for (const [i, upload] of uploads.entries()) {
    const parts = await contiguousParts(ctx, key, upload.uploadId);
    if (parts.length === 0) continue; // nothing to continue: one that was aborted before its first part stuck
    const total = parts.reduce((sum, p) => sum + p.size, 0);
    if (start.kind === 'resume' && start.offset > total) throw storageError('invalid-offset');
    const offset = start.kind === 'append' ? resumePointOfParts(parts, partSize) : start.offset;
    let keep = parts.length;
    let end = total;
    while (keep > 0 && end > offset) end -= parts[--keep].size;
    const stale = uploads.filter((_, j) => j !== i).map((u) => u.uploadId);
    return { key, partSize, startOffset: end, resume: { uploadId: upload.uploadId, parts: parts.slice(0, keep) }, stale };
  }
  const head = await headObject(ctx, key);
  const size = head?.size ?? 0;
  const offset = start.kind === 'append' ? size : start.offset;
  if (offset > size) throw storageError('invalid-offset');
  if (offset === 0 || !head) return fresh;
  if (offset >= MIN_PART_SIZE) return { ...fresh, startOffset: offset, copyFrom: { bytes: offset, etag: head.etag } };
  const out = await send(ctx.client.send(new GetObjectCommand({ Bucket: ctx.bucket, Key: key, Range: `bytes=0-${offset - 1}`, IfMatch: head.etag })));
  const seed = Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
  if (seed.length !== offset) throw storageError('io', new Error('object changed while an upload was opened'));
  return { ...fresh, startOffset: offset, seed };
}

/** Wrap every method so that whatever the SDK throws reaches the caller as a StorageError with a client-safe message. */
function withStorageErrors(storage: Storage): Storage {
  const wrapped = {} as Record<string, unknown>;
  for (const [key, fn] of Object.entries(storage) as [string, (...args: unknown[]) => Promise<unknown>][]) {
    wrapped[key] = async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw s3Error(err);
      }
    };
  }
  return wrapped as unknown as Storage;
}
