import type { FtpConfig } from '@ftp/config';
import { localDiskSpace, type DiskSpace } from '@ftp/session-core';
import { abortAbandonedUploads, openConfiguredStorage, type ConfiguredStorage, type S3Client } from '@ftp/storage';
import type { Logger } from '@ftp/telemetry';

/** Where users' files live (FTP_STORAGE), as the edge uses it: sessions, the API's quota scan, free space. */
export interface StorageSetup extends ConfiguredStorage {
  /** The space a home's file system has, before any quota (statvfs, AVBL). */
  diskAt(root: string): (path: string) => Promise<DiskSpace>;
}

/** Object storage has no size of its own: without a quota a user sees 1 PiB free (AVBL, `df`). */
const UNBOUNDED: DiskSpace = { blockSize: 4096, blocks: 2 ** 38, blocksFree: 2 ** 38, blocksAvailable: 2 ** 38, files: 2 ** 40, filesFree: 2 ** 40, nameMax: 1024 };

/** The storage FTP_STORAGE chose (see openConfiguredStorage), with the edge's part: free space, the abandoned-upload sweep. */
export async function createStorageSetup(config: FtpConfig, log: Logger): Promise<StorageSetup> {
  const configured = await openConfiguredStorage(config, { log });
  if (!configured.s3) return { ...configured, diskAt: (root) => localDiskSpace(root) };
  log.info({ bucket: config.s3Bucket, endpoint: config.s3Endpoint || undefined, prefix: config.s3Prefix, partSize: config.s3PartSize }, 'users\' files in S3');
  const stopSweep = startAbandonedUploadSweep(config, configured.s3.client, log);
  return {
    ...configured,
    diskAt: () => async () => UNBOUNDED,
    close: () => {
      stopSweep();
      configured.close();
    },
  };
}

/** How often a replica looks for abandoned uploads (every replica does; aborting twice is harmless). */
const SWEEP_EVERY_MS = 60 * 60_000;

/** Unfinished uploads older than FTP_S3_ABANDONED_UPLOAD_HOURS are aborted, a minute after start and then hourly. */
function startAbandonedUploadSweep(config: FtpConfig, client: S3Client, log: Logger): () => void {
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
