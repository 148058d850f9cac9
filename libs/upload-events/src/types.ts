/**
 * What the edge tells the post-upload workers. One event per upload that completed (bytes durable, 226 sent or
 * about to be); the BullMQ job id is `uploadId`, so adding the same event twice cannot make two jobs.
 */
export interface UploadEvent {
  /** Unique per completed upload (a UUID); also the job id. */
  uploadId: string;
  user: string;
  /** The user's groups at upload time, for pipeline rules. */
  groups: string[];
  /** Path as the client saw it, from the user's root: `/inbox/report.csv`. */
  path: string;
  /** Where the file is in shared storage, relative to the data root (FTP_DATA_DIR): `alice/inbox/report.csv`. */
  storageKey: string;
  size: number;
  /** sha256 (hex) computed inline while receiving, when the edge did; absent otherwise. */
  sha256?: string;
  clientAddress: string;
  protocol: 'ftp' | 'ftps' | 'sftp';
  /** Epoch ms. */
  startedAt: number;
  completedAt: number;
  replicaId: string;
  /** W3C trace context (traceparent/tracestate) of the upload, so worker spans join the upload's trace. */
  traceContext?: Record<string, string>;
}

/** An upload that did not complete (broken connection, ABOR, full disk); only sent when configured. */
export interface UploadAbortedEvent extends Omit<UploadEvent, 'sha256' | 'storageKey'> {
  reason: string;
}

/** The queue both sides use, and the job names in it. */
export const UPLOAD_QUEUE = 'uploads';
export const JOB_UPLOAD_COMPLETED = 'upload.completed';
export const JOB_UPLOAD_ABORTED = 'upload.aborted';

/** BullMQ key prefix under the deployment's Redis prefix (FTP_REDIS_PREFIX), so deployments sharing a Redis stay apart. */
export const queuePrefix = (redisPrefix: string) => `${redisPrefix}jobs`;
