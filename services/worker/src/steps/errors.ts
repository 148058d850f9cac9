import { UnrecoverableError } from 'bullmq';

/**
 * A step failure that running the job again cannot fix: a webhook answering 400, a digest that does not match, a path
 * outside the data root. It extends BullMQ's UnrecoverableError, so a job failing with it goes straight to failed
 * without using its remaining attempts. Any other error thrown by a step is retryable (the job's backoff applies).
 *
 * BullMQ tells the two apart by `instanceof` (or by the name `UnrecoverableError`, for errors rebuilt from a sandboxed
 * processor: a pipeline run in a sandbox must map these to that name itself).
 */
export class PermanentStepError extends UnrecoverableError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message);
    // UnrecoverableError sets the name from the constructor; say it explicitly so minifiers cannot change it.
    this.name = 'PermanentStepError';
    if (options && 'cause' in options) this.cause = options.cause;
  }
}

/** True for errors a job must not be retried after (ours, or BullMQ's own). */
export function isPermanent(err: unknown): boolean {
  return err instanceof UnrecoverableError || (err as { name?: unknown } | null)?.name === 'UnrecoverableError';
}
