import { createHash } from 'node:crypto';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, S3Client } from '@aws-sdk/client-s3';
import { radosgwClientConfig, type Radosgw } from './radosgw';

/**
 * What an edge on FTP_STORAGE=s3 left in a test bucket, read straight from the S3 server: the end-to-end tests check
 * the store itself, not only what the edge reports about it.
 */
export interface BucketView {
  bucket: string;
  /** Every object under `prefix` (no delimiter) as key → size. */
  objects(prefix: string): Promise<Map<string, number>>;
  /** Unfinished multipart uploads whose key starts with `prefix`. */
  openUploads(prefix: string): Promise<{ key: string; uploadId: string }[]>;
  /** Complete parts of the newest unfinished upload of exactly `key`; 0 when it has none. */
  partsOf(key: string): Promise<number>;
  /** sha256 (hex) of the object's bytes. */
  sha256(key: string): Promise<string>;
  close(): void;
}

/** The edge's settings for a bucket on this radosgw, every home under `homes/`. */
export function s3EdgeEnv(rgw: Radosgw, bucket: string, partSize: number): Record<string, string> {
  return {
    FTP_STORAGE: 's3',
    FTP_S3_ENDPOINT: rgw.endpoint,
    FTP_S3_REGION: rgw.region,
    FTP_S3_BUCKET: bucket,
    FTP_S3_PREFIX: 'homes',
    FTP_S3_FORCE_PATH_STYLE: 'true',
    FTP_S3_PART_SIZE: String(partSize),
  };
}

/** Credentials for the AWS SDK's standard chain (its environment step), as an edge finds them. */
export function awsCredentialsEnv(rgw: Radosgw): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey };
}

export function bucketView(rgw: Radosgw, bucket: string): BucketView {
  const client = new S3Client(radosgwClientConfig(rgw));
  const openUploads = async (prefix: string) => {
    const out: { key: string; uploadId: string; initiated: number }[] = [];
    for (let keyMarker: string | undefined, uploadIdMarker: string | undefined; ; ) {
      const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const u of page.Uploads ?? []) out.push({ key: u.Key!, uploadId: u.UploadId!, initiated: u.Initiated?.getTime() ?? 0 });
      if (!page.IsTruncated) return out;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  };
  return {
    bucket,
    async objects(prefix) {
      const found = new Map<string, number>();
      for (let token: string | undefined; ; ) {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) found.set(o.Key!, o.Size ?? 0);
        if (!page.IsTruncated) return found;
        token = page.NextContinuationToken;
      }
    },
    openUploads: async (prefix) => (await openUploads(prefix)).map(({ key, uploadId }) => ({ key, uploadId })),
    async partsOf(key) {
      const newest = (await openUploads(key)).filter((u) => u.key === key).sort((a, b) => b.initiated - a.initiated)[0];
      if (!newest) return 0;
      const parts = await client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: newest.uploadId }));
      return parts.Parts?.length ?? 0;
    },
    async sha256(key) {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const hash = createHash('sha256');
      for await (const chunk of out.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
      return hash.digest('hex');
    },
    close: () => client.destroy(),
  };
}
