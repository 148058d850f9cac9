import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { storageError } from '../errors';
import { StorageError, type Upload } from '../types';
import { s3Error } from './errors';
import { abortUpload, copySource, MIN_PART_SIZE, send, type PartFacts, type S3Context } from './objects';

/** S3's largest part, and the largest range one UploadPartCopy copies. */
const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** Parts being sent at once per upload: with the one being filled, memory per upload stays within 2 × partSize. */
const MAX_IN_FLIGHT = 2;
/** A part buffer starts this small and doubles up to the part size, so a small file does not cost a whole part. */
const FIRST_BUFFER = 256 * 1024;
/** Bytes the upload stream takes before it pushes back; they are copied into the part at once. */
const STREAM_BUFFER = 256 * 1024;

/** How an upload begins, worked out by openUpload from what the bucket holds. */
export interface UploadPlan {
  key: string;
  partSize: number;
  startOffset: number;
  /** Continue this unfinished multipart upload: `parts` (1..n, each at least MIN_PART_SIZE) are kept. */
  resume?: { uploadId: string; parts: PartFacts[] };
  /** Begin with bytes [0, bytes) of the published object, copied inside the store (UploadPartCopy); ≥ MIN_PART_SIZE. */
  copyFrom?: { bytes: number; etag?: string };
  /** Begin with these bytes (the head of a published object, too short to be a part of its own). */
  seed?: Buffer;
  /** Older unfinished uploads of the key: a published file supersedes them, so commit() drops them. */
  stale: string[];
}

/** A part buffer being filled. */
interface PartBuffer {
  bytes: Buffer;
  length: number;
}

/**
 * The upload's multipart state, one object that the Upload's methods share. Parts go out as they fill (UploadPart,
 * MAX_IN_FLIGHT at a time, the writer waiting meanwhile); the multipart upload itself is created with the first part,
 * so a file smaller than a part is one PutObject at commit.
 */
interface PartSender {
  uploadId?: string;
  creating?: Promise<string>;
  parts: { PartNumber: number; ETag: string }[];
  nextPart: number;
  filling: PartBuffer;
  spare?: Buffer;
  inFlight: Set<Promise<void>>;
  failure?: StorageError;
}

/** An Upload that feeds an S3 multipart upload: nothing is visible under the key before commit(). */
export function multipartUpload(ctx: S3Context, plan: UploadPlan): Upload {
  const { key, partSize } = plan;
  const copyParts = plan.copyFrom ? Math.ceil(plan.copyFrom.bytes / MAX_PART_SIZE) : 0;
  const sender: PartSender = {
    uploadId: plan.resume?.uploadId,
    parts: (plan.resume?.parts ?? []).map(({ PartNumber, ETag }) => ({ PartNumber, ETag })),
    nextPart: (plan.resume?.parts.length ?? 0) + copyParts + 1,
    filling: plan.seed ? { bytes: Buffer.from(plan.seed), length: plan.seed.length } : { bytes: Buffer.alloc(0), length: 0 },
    inFlight: new Set(),
  };
  let state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  /** Bytes taken into parts (the upload's bytesWritten). */
  let written = 0;
  /** Bytes accepted so far, queued or taken: where the next in-order write must start, after startOffset. */
  let accepted = 0;
  /** Writes run one after another, whether they come from the stream or from writeAt. */
  let queue: Promise<void> = Promise.resolve();
  let stream: Writable | undefined;

  const ensureUpload = (): Promise<string> =>
    (sender.creating ??= sender.uploadId !== undefined ? Promise.resolve(sender.uploadId) : createUpload(ctx, plan, sender));

  const sendPart = (bytes: Buffer) => {
    const partNumber = sender.nextPart++;
    if (partNumber > MAX_PARTS) {
      sender.failure ??= new StorageError('no-space', `file too large for object storage (${MAX_PARTS} parts of ${partSize >> 20} MiB)`);
      return;
    }
    const sent = ensureUpload()
      .then((uploadId) =>
        send(ctx.client.send(new UploadPartCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: bytes, ContentLength: bytes.length }))),
      )
      .then(
        (out) => {
          sender.parts.push({ PartNumber: partNumber, ETag: out.ETag ?? '' });
          if (bytes.length === partSize) sender.spare ??= bytes;
        },
        (err: unknown) => void (sender.failure ??= s3Error(err)),
      );
    sender.inFlight.add(sent);
    void sent.then(() => sender.inFlight.delete(sent));
  };

  const settled = async () => {
    while (sender.inFlight.size > 0) await Promise.all(sender.inFlight);
  };

  /** Copy `chunks` into parts, sending each one that fills; waits while MAX_IN_FLIGHT parts are on their way. */
  const take = async (chunks: readonly Uint8Array[]) => {
    for (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) {
        if (sender.failure) throw sender.failure;
        const n = fill(sender, chunk, at, partSize);
        at += n;
        written += n;
        if (sender.filling.length === partSize) {
          sendPart(sender.filling.bytes.subarray(0, partSize));
          sender.filling = { bytes: Buffer.alloc(0), length: 0 };
          while (sender.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(sender.inFlight);
        }
      }
    }
    if (sender.failure) throw sender.failure;
  };

  const enqueue = (chunks: readonly Uint8Array[]): Promise<void> => {
    const done = queue.then(() => take(chunks));
    queue = done.catch(() => undefined);
    return done;
  };

  const streamOf = () =>
    (stream ??= new Writable({
      highWaterMark: STREAM_BUFFER,
      write(chunk: Buffer, _encoding, done) {
        accepted += chunk.length;
        enqueue([chunk]).then(() => done(), done);
      },
      writev(items, done) {
        const chunks = items.map((i) => i.chunk as Buffer);
        for (const c of chunks) accepted += c.length;
        enqueue(chunks).then(() => done(), done);
      },
    }));

  const assertOpen = () => {
    if (state !== 'open') throw storageError('io', new Error(`upload already ${state}`));
  };

  /** The last part (or the whole file in one PutObject), then CompleteMultipartUpload: the file appears. */
  const publish = async (stillWanted?: () => boolean) => {
    const last = sender.filling.bytes.subarray(0, sender.filling.length);
    const multipart = sender.uploadId !== undefined || sender.creating !== undefined || copyParts > 0;
    if (!multipart) {
      if (stillWanted && !stillWanted()) throw storageError('io', new Error('upload no longer wanted'));
      await send(ctx.client.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: key, Body: last, ContentLength: last.length })));
      return;
    }
    if (last.length > 0 || sender.parts.length + sender.inFlight.size + copyParts === 0) sendPart(last);
    sender.filling = { bytes: Buffer.alloc(0), length: 0 };
    await settled();
    if (sender.failure) throw sender.failure;
    const uploadId = await ensureUpload();
    if (stillWanted && !stillWanted()) throw storageError('io', new Error('upload no longer wanted'));
    const parts = [...sender.parts].sort((a, b) => a.PartNumber - b.PartNumber);
    await send(
      ctx.client.send(new CompleteMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } })),
    );
  };

  return {
    get stream() {
      return streamOf();
    },
    startOffset: plan.startOffset,
    bytesWritten: () => written,
    writeAt(offset, data) {
      if (state !== 'open') return Promise.reject(storageError('io', new Error(`upload already ${state}`)));
      const chunks = data instanceof Uint8Array ? [data] : data;
      // Parts are sent in order: only the next byte can be written (SFTP clients write in order on one channel).
      if (offset !== plan.startOffset + accepted) return Promise.reject(storageError('invalid-offset'));
      for (const c of chunks) accepted += c.length;
      return enqueue(chunks);
    },
    async sync() {
      assertOpen();
      await queue;
      if (sender.failure) throw sender.failure;
    },
    async truncate(size) {
      assertOpen();
      await queue;
      if (size !== plan.startOffset + accepted) throw new StorageError('denied', 'object storage uploads cannot be truncated');
    },
    async commit(stillWanted) {
      assertOpen();
      state = 'committing';
      try {
        if (stream) {
          if (!stream.writableEnded) stream.end();
          await finished(stream);
        }
        await queue;
        if (sender.failure) throw sender.failure;
        await publish(stillWanted);
        state = 'committed';
      } catch (err) {
        // The parts sent stay for a resume, as an abort keeps them.
        state = 'aborted';
        await settled();
        throw s3Error(err);
      }
      // A published file supersedes older interrupted uploads of its name (else stat would report them).
      await Promise.all(plan.stale.map((id) => abortUpload(ctx, key, id).catch(() => undefined)));
    },
    async abort(options) {
      if (state === 'committed' || state === 'aborted') return;
      state = 'aborted';
      if (stream && !stream.destroyed) stream.destroy();
      await queue;
      if (options?.discard) {
        await settled();
        const uploadId = sender.creating ? await sender.creating.catch(() => undefined) : sender.uploadId;
        if (uploadId) await abortUpload(ctx, key, uploadId).catch(() => undefined);
        return;
      }
      // What is still in memory is kept too when it can be a part of its own; a shorter rest is lost (the client
      // resumes from the end of the last part: stat reports it).
      if (!sender.failure && sender.filling.length >= MIN_PART_SIZE) {
        sendPart(sender.filling.bytes.subarray(0, sender.filling.length));
        sender.filling = { bytes: Buffer.alloc(0), length: 0 };
      }
      await settled();
    },
  };
}

/** Copy what fits of `chunk` from `at` into the part being filled, growing its buffer; returns the bytes taken. */
function fill(sender: PartSender, chunk: Uint8Array, at: number, partSize: number): number {
  const part = sender.filling;
  const n = Math.min(partSize - part.length, chunk.length - at);
  if (part.length + n > part.bytes.length) {
    let capacity = Math.max(FIRST_BUFFER, part.bytes.length);
    while (capacity < part.length + n) capacity *= 2;
    capacity = Math.min(capacity, partSize);
    const spare = sender.spare;
    sender.spare = undefined;
    const bigger = spare && spare.length >= capacity ? spare : Buffer.allocUnsafe(capacity);
    part.bytes.copy(bigger, 0, 0, part.length);
    part.bytes = bigger;
  }
  part.bytes.set(chunk.subarray(at, at + n), part.length);
  part.length += n;
  return n;
}

/** CreateMultipartUpload, and when the upload continues a published object, that object's head copied as its first parts. */
async function createUpload(ctx: S3Context, plan: UploadPlan, sender: PartSender): Promise<string> {
  const created = await send(ctx.client.send(new CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: plan.key })));
  const uploadId = created.UploadId;
  if (!uploadId) throw storageError('io', new Error('CreateMultipartUpload returned no upload id'));
  sender.uploadId = uploadId;
  if (plan.copyFrom) {
    const { bytes, etag } = plan.copyFrom;
    // Even ranges: the last one must not fall under the 5 MiB minimum either, as parts follow it.
    const count = Math.ceil(bytes / MAX_PART_SIZE);
    const size = Math.ceil(bytes / count);
    const copies = Array.from({ length: count }, async (_, i) => {
      const first = i * size;
      const last = Math.min(bytes, first + size) - 1;
      const out = await send(
        ctx.client.send(
          new UploadPartCopyCommand({
            Bucket: ctx.bucket,
            Key: plan.key,
            UploadId: uploadId,
            PartNumber: i + 1,
            CopySource: copySource(ctx.bucket, plan.key),
            CopySourceRange: `bytes=${first}-${last}`,
            CopySourceIfMatch: etag,
          }),
        ),
      );
      sender.parts.push({ PartNumber: i + 1, ETag: out.CopyPartResult?.ETag ?? '' });
    });
    await Promise.all(copies);
  }
  return uploadId;
}
