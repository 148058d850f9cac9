import path from 'node:path';
import type { FtpConfig } from '@ftp/config';
import { localDiskSpace, type DiskSpace } from '@ftp/session-core';
import { abortAbandonedUploads, checkBucket, createLocalStorage, createS3Client, createS3Storage, type Storage } from '@ftp/storage';
import type { Logger } from '@ftp/telemetry';

/** Where users' files live (FTP_STORAGE): one factory for sessions, the API's quota scan and anything else. */
export interface StorageSetup {
  kind: FtpConfig['storage'];
  /** The storage of a home, given as the host path the user store resolved it to (`user.root`). */
  storageAt(root: string): Storage;
  /** The space a home's file system has, before any quota (statvfs, AVBL). */
  diskAt(root: string): (path: string) => Promise<DiskSpace>;
  close(): void;
}

/** Object storage has no size of its own: without a quota a user sees 1 PiB free (AVBL, `df`). */
const UNBOUNDED: DiskSpace = { blockSize: 4096, blocks: 2 ** 38, blocksFree: 2 ** 38, blocksAvailable: 2 ** 38, files: 2 ** 40, filesFree: 2 ** 40, nameMax: 1024 };

/**
 * The storage FTP_STORAGE chose. `s3`: one S3 client for the process (credentials from the AWS SDK's standard chain:
 * environment, web identity / IRSA, instance role), each home the key prefix FTP_S3_PREFIX + its path under
 * FTP_DATA_DIR; the bucket must exist, or the start stops here with one message.
 */
export async function createStorageSetup(config: FtpConfig, log: Logger): Promise<StorageSetup> {
  const limits = { maxListEntries: config.maxListEntries, maxPathLength: config.maxPathLength, maxPathDepth: config.maxPathDepth };
  if (config.storage === 'local') {
    return {
      kind: 'local',
      storageAt: (root) => createLocalStorage({ root, fsync: config.fsyncUploads, metadataIo: config.storageMetadataIo, limits }),
      diskAt: (root) => localDiskSpace(root),
      close: () => {},
    };
  }
  const client = createS3Client({ endpoint: config.s3Endpoint || undefined, region: config.s3Region, forcePathStyle: config.s3ForcePathStyle });
  try {
    await checkBucket(client, config.s3Bucket, config.s3Endpoint || `AWS S3 ${config.s3Region}`);
  } catch (err) {
    client.destroy();
    throw new Error(`FTP_S3_BUCKET: ${(err as Error).message}`);
  }
  const dataRoot = path.resolve(config.dataDir);
  /** A home's key prefix: its path under the data root, as the user store resolved it (never outside: the store checks). */
  const prefixOf = (root: string) => {
    const home = path.relative(dataRoot, path.resolve(root)).split(path.sep).join('/');
    if (home.startsWith('..') || path.isAbsolute(home)) throw new Error(`home ${root} is outside FTP_DATA_DIR`);
    return `${config.s3Prefix}${home ? `${home}/` : ''}`;
  };
  log.info({ bucket: config.s3Bucket, endpoint: config.s3Endpoint || undefined, prefix: config.s3Prefix, partSize: config.s3PartSize }, 'users\' files in S3');
  if (config.uploadEvents !== 'off' && config.redisUrl) {
    // The worker still reads finished uploads from the shared volume; on object storage its jobs would fail.
    log.warn('FTP_STORAGE=s3: the post-upload worker does not read object storage yet; set FTP_UPLOAD_EVENTS=off or run no worker');
  }
  const stopSweep = startAbandonedUploadSweep(config, client, log);
  return {
    kind: 's3',
    storageAt: (root) => createS3Storage({ client, bucket: config.s3Bucket, prefix: prefixOf(root), partSize: config.s3PartSize, limits }),
    diskAt: () => async () => UNBOUNDED,
    close: () => {
      stopSweep();
      client.destroy();
    },
  };
}

/** How often a replica looks for abandoned uploads (every replica does; aborting twice is harmless). */
const SWEEP_EVERY_MS = 60 * 60_000;

/** Unfinished uploads older than FTP_S3_ABANDONED_UPLOAD_HOURS are aborted, a minute after start and then hourly. */
function startAbandonedUploadSweep(config: FtpConfig, client: ReturnType<typeof createS3Client>, log: Logger): () => void {
  if (config.s3AbandonedUploadHours === 0) return () => {};
  const olderThanMs = config.s3AbandonedUploadHours * 3_600_000;
  const sweep = () =>
    abortAbandonedUploads(client, config.s3Bucket, config.s3Prefix, olderThanMs).then(
      (aborted) => aborted > 0 && log.info({ aborted, olderThanHours: config.s3AbandonedUploadHours }, 'abandoned multipart uploads aborted'),
      (err: unknown) => log.warn({ err }, 'abandoned multipart uploads: sweep failed (retried in an hour)'),
    );
  const first = setTimeout(sweep, 60_000).unref();
  const every = setInterval(sweep, SWEEP_EVERY_MS).unref();
  return () => {
    clearTimeout(first);
    clearInterval(every);
  };
}
