import { ListMultipartUploadsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { text } from 'node:stream/consumers';
import type { Readable } from 'node:stream';
import { sharedRadosgw } from '../../../../test/support/radosgw';
import type { Storage, Upload } from '../types';
import { createS3Client } from './client';
import { createS3Storage, type S3StorageOptions } from './s3Storage';

export const MiB = 1024 * 1024;

/** S3 commands sent through a client, by name (e.g. `UploadPartCommand`). */
export type RequestCounts = Record<string, number>;

export interface S3Fixture {
  bucket: string;
  client: S3Client;
  /** Requests sent through `client` since the last reset. */
  counts: RequestCounts;
  resetCounts(): void;
  /** A storage on a home of its own (a fresh prefix unless given). */
  storage(options?: Partial<S3StorageOptions>): Storage & { prefix: string };
  /** Puts objects straight into the bucket (full keys). */
  put(key: string, body?: string | Buffer): Promise<void>;
  /** Unfinished multipart uploads whose key starts with `prefix`. */
  openUploads(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

/** A bucket of its own on the process's shared radosgw, and a client that counts what it sends. */
export async function s3Fixture(): Promise<S3Fixture> {
  const rgw = await sharedRadosgw();
  const bucket = await rgw.createBucket();
  const client = createS3Client({
    endpoint: rgw.endpoint,
    region: rgw.region,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    forcePathStyle: true,
  });
  const counts: RequestCounts = {};
  client.middlewareStack.add(
    (next, context) => (args) => {
      const name = context.commandName ?? '?';
      counts[name] = (counts[name] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  let homes = 0;
  return {
    bucket,
    client,
    counts,
    resetCounts: () => {
      for (const k of Object.keys(counts)) delete counts[k];
    },
    storage(options = {}) {
      const prefix = options.prefix ?? `homes/u${++homes}-${randomBytes(3).toString('hex')}/`;
      return Object.assign(createS3Storage({ client, bucket, prefix, partSize: 5 * MiB, ...options }), { prefix });
    },
    async put(key, body = '') {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async openUploads(prefix) {
      const out = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (out.Uploads ?? []).map((u) => u.Key ?? '');
    },
    async close() {
      await rgw.deleteBucket(bucket);
      client.destroy();
    },
  };
}

/** Uploads `data` as a whole through the upload's stream, in `chunk`-byte writes, and commits it. */
export async function writeAll(upload: Upload, data: Buffer, chunk = 64 * 1024): Promise<void> {
  await writeSome(upload, data, chunk);
  await upload.commit();
}

/** Writes `data` through the stream and waits until the upload took it all (no commit). */
export async function writeSome(upload: Upload, data: Buffer, chunk = 64 * 1024): Promise<void> {
  const stream = upload.stream;
  for (let at = 0; at < data.length; at += chunk) {
    if (!stream.write(data.subarray(at, at + chunk))) await new Promise((resolve) => stream.once('drain', resolve));
  }
  // Every write's callback has run once the stream's buffer is empty and nothing is pending.
  await new Promise<void>((resolve, reject) => stream.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
}

export async function readAll(storage: Storage, path: string, offset = 0): Promise<Buffer> {
  const download = await storage.openRead(path, offset);
  const chunks: Buffer[] = [];
  for await (const chunk of download.stream as Readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function readText(storage: Storage, path: string): Promise<string> {
  return text((await storage.openRead(path)).stream);
}
