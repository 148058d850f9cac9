import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { createLocalStorage } from './local';
import { checkBucket, createS3Client } from './s3/client';
import { watchS3Health, type HealthLog } from './s3/health';
import { createS3Storage } from './s3/s3Storage';
import type { Storage } from './types';

/** The settings that choose and shape the storage: the FTP_* names of @ftp/config, which every service loads. */
export interface StorageSettings {
  storage: 'local' | 's3';
  dataDir: string;
  fsyncUploads: boolean;
  storageMetadataIo: 'sync' | 'async';
  s3Endpoint: string;
  s3Region: string;
  s3Bucket: string;
  s3Prefix: string;
  s3ForcePathStyle: boolean;
  s3PartSize: number;
  maxListEntries: number;
  maxPathLength: number;
  maxPathDepth: number;
}

/** One storage setup per process, shared by the edge's sessions, its API and the worker's steps. */
export interface ConfiguredStorage {
  kind: StorageSettings['storage'];
  /** The storage of a folder under FTP_DATA_DIR, given as its host path (a user's `root`, or FTP_DATA_DIR itself). */
  storageAt(root: string): Storage;
  /** FTP_STORAGE=s3: the process's one client and its bucket. */
  s3?: { client: S3Client; bucket: string };
  /**
   * Whether the store takes this process (always true for local): false once S3 refuses its credentials, or after it
   * has not answered for minutes (s3/health.ts says why not sooner). The edge's and the worker's /readyz add it.
   */
  healthy(): boolean;
  /** One line for /readyz: how the bucket answered its last probe (undefined for local). */
  healthDetail(): string | undefined;
  close(): void;
}

export interface OpenStorageOptions {
  /** Where the store's health changes are logged (once each). */
  log: HealthLog;
}

/**
 * The storage FTP_STORAGE chose. `s3`: one S3 client for the process (credentials from the AWS SDK's standard chain:
 * environment, web identity / IRSA, instance role), each folder the key prefix FTP_S3_PREFIX + its path under
 * FTP_DATA_DIR; the bucket must exist, or this throws one message naming FTP_S3_BUCKET. Then a HeadBucket every 15 s
 * watches that the store still takes the credentials (healthy()).
 */
export async function openConfiguredStorage(settings: StorageSettings, options: OpenStorageOptions): Promise<ConfiguredStorage> {
  const limits = { maxListEntries: settings.maxListEntries, maxPathLength: settings.maxPathLength, maxPathDepth: settings.maxPathDepth };
  if (settings.storage === 'local') {
    return {
      kind: 'local',
      storageAt: (root) => createLocalStorage({ root, fsync: settings.fsyncUploads, metadataIo: settings.storageMetadataIo, limits }),
      healthy: () => true,
      healthDetail: () => undefined,
      close: () => {},
    };
  }
  const client = createS3Client({ endpoint: settings.s3Endpoint || undefined, region: settings.s3Region, forcePathStyle: settings.s3ForcePathStyle });
  try {
    await checkBucket(client, settings.s3Bucket, settings.s3Endpoint || `AWS S3 ${settings.s3Region}`);
  } catch (err) {
    client.destroy();
    throw new Error(`FTP_S3_BUCKET: ${(err as Error).message}`);
  }
  const health = watchS3Health({ client, bucket: settings.s3Bucket, log: options.log });
  const dataRoot = path.resolve(settings.dataDir);
  /** A folder's key prefix: its path under the data root (never outside: the user store checks homes). */
  const prefixOf = (root: string) => {
    const rel = path.relative(dataRoot, path.resolve(root)).split(path.sep).join('/');
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${root} is outside FTP_DATA_DIR`);
    return `${settings.s3Prefix}${rel ? `${rel}/` : ''}`;
  };
  return {
    kind: 's3',
    storageAt: (root) => createS3Storage({ client, bucket: settings.s3Bucket, prefix: prefixOf(root), partSize: settings.s3PartSize, limits }),
    s3: { client, bucket: settings.s3Bucket },
    healthy: health.healthy,
    healthDetail: health.detail,
    close: () => {
      health.close();
      client.destroy();
    },
  };
}
