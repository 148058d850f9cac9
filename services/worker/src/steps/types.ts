import type { Storage } from '@ftp/storage';
import type { Logger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';

/**
 * One step of a post-upload pipeline (checksum, scan, move, webhook…). A job runs its steps in order; what a step
 * returns is kept on the job, so a retried job skips the steps that already finished. A step that crashed half-way
 * runs again, so each step must be idempotent in effect: running it twice leaves the world as running it once.
 */
export interface Step {
  /** Unique within a pipeline: the key its result is kept under. */
  readonly name: string;
  run(context: StepContext): Promise<StepResult>;
}

export interface StepContext {
  event: UploadEvent;
  /**
   * The whole data root (FTP_DATA_DIR, or the bucket under FTP_S3_PREFIX) through the storage seam: every path a step
   * names stays inside it whatever `..` or symlink it meets, and files appear whole under their names.
   */
  storage: Storage;
  /** Where the file is now, as a path of `storage` (`/alice/inbox/report.csv`); a move earlier in the pipeline changes it. */
  path: string;
  /** Results of the steps that ran before, by step name. */
  previous: Record<string, StepResult>;
  log: Logger;
  /**
   * Aborted when the worker shuts down or has lost the job's lock (another worker runs the job now): a step should stop
   * before its next effect and throw. What it already published stays whole (files appear whole under their names),
   * and the run that carries on does the step again, so it must be idempotent (see Step).
   */
  signal: AbortSignal;
}

export interface StepResult {
  /** Where the file is after this step (a move or a quarantine), as a path of the storage; absent = unchanged. */
  path?: string;
  /** True ends the pipeline here, successfully (an infected file is quarantined and never delivered further). */
  stop?: boolean;
  /** Anything worth keeping on the job result: digests, target keys, HTTP status… (JSON-serialisable). */
  details?: Record<string, unknown>;
}
