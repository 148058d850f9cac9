import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';

export interface S3ClientSettings {
  /** The store's URL, e.g. `http://127.0.0.1:7480` (radosgw) or `https://s3.eu-west-1.amazonaws.com`. */
  endpoint?: string;
  region: string;
  /** Left out: the SDK's standard chain (environment, web identity / IRSA, shared files, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** `bucket` in the path instead of the host name: most self-hosted stores (radosgw, MinIO) want it. */
  forcePathStyle?: boolean;
  /** Tries per request, the first included (default 5): throttling (503 SlowDown) and 5xx are retried with backoff (see createS3Client). */
  maxAttempts?: number;
  /** Milliseconds to set up a connection before the request fails with 'io' (default 5 s). */
  connectionTimeoutMs?: number;
  /** Milliseconds a connection may stay idle mid-request before it fails with 'io' (default 120 s: a slow client holds a download's socket idle). */
  socketTimeoutMs?: number;
  /** Connections kept to the store per process (default 256: two parts in flight per upload, one GET per download). */
  maxSockets?: number;
}

/**
 * An S3Client set up as createS3Storage expects. Checksums only where an operation requires them: radosgw 16 refuses
 * the SDK's default streamed-trailer checksums (411 on a PutObject of a stream), and parts are sent from memory.
 *
 * Retries: the SDK's standard strategy, 5 attempts. Throttling (503 SlowDown, 429) waits a random time up to 1, 2, 4,
 * then 8 s (full jitter; 15 s at most for one call, measured 4–9 s in throttling.test.ts), other 5xx, resets and
 * timeouts 50 ms doubling; then the call fails, as 'io' "object storage busy, try again later" for throttling. A retry
 * quota per client (500 tokens; a throttled retry costs 5, another 14, a success gives some back) stops retrying
 * altogether while a store keeps refusing, so a throttled store is not hammered by 5× the requests. Not 'adaptive':
 * its client-side rate limiter would slow every request of the process (all users' homes) after throttling of one
 * prefix, and S3 throttles per prefix. Bodies are Buffers (parts from memory), so every request can be retried: the
 * SDK does not retry a streamed body.
 */
export function createS3Client(settings: S3ClientSettings): S3Client {
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    credentials: settings.credentials,
    forcePathStyle: settings.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: settings.maxAttempts ?? 5,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: settings.connectionTimeoutMs ?? 5_000,
      socketTimeout: settings.socketTimeoutMs ?? 120_000,
      httpAgent: { keepAlive: true, maxSockets: settings.maxSockets ?? 256 },
      httpsAgent: { keepAlive: true, maxSockets: settings.maxSockets ?? 256 },
    },
  });
}

/**
 * Whether the bucket is there and ours to use: the edge calls it once at start and stops with its message if not (a
 * missing bucket is a deployment mistake, not something to find at the first upload).
 */
export async function checkBucket(client: S3Client, bucket: string, where: string): Promise<void> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const why = status === 404 ? 'does not exist' : status === 403 ? 'is not ours to use (403: check the credentials)' : `did not answer (${(err as Error).message})`;
    throw new Error(`bucket ${bucket} at ${where} ${why}`);
  }
}
