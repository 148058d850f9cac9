import type { Worker } from 'bullmq';

/**
 * Thrown into a job's pipeline (as its abort reason) when this worker lost the job's lock: the job is another worker's
 * to run now, so this run stops before its next effect and leaves the job to it.
 */
export class LockLostError extends Error {
  override name = 'LockLostError';
}

export interface WatchedRun {
  /** Aborted with a LockLostError once the lock of this run is lost (or certainly expired). */
  signal: AbortSignal;
  /** The run is over (whatever its outcome): stop watching it. */
  release(): void;
}

export interface LockWatchOptions {
  /** The worker's lockDuration (WORKER_LOCK_MS). */
  lockMs: number;
  /** Called once per lost run, with why (for the log line and the metric). */
  onLost(jobId: string, reason: string): void;
}

/**
 * Tells each running job when this worker lost its lock. BullMQ 6.7 does not: its processor's third argument (an
 * AbortSignal) is aborted only by `worker.cancelJob()` / `cancelAllJobs()`, neither on a lost lock nor on close(); the
 * LockManager renews every lock each lockMs/4–lockMs/2 and, when Redis answers that a lock is not this worker's any
 * more, emits `lockRenewalFailed` (job ids) and an `error` "could not renew lock for job …", then carries on: the
 * processor runs to its end while another worker may already run the job again. While Redis is away the renewal waits
 * (no per-request retry limit), so nothing is emitted at all until Redis is back, however long the lock has expired.
 *
 * So a run is lost when
 * - Redis refused its renewal (`lockRenewalFailed`: the lock is gone or another worker's). The event names jobs, not
 *   tokens: a refusal that comes within lockMs/4 of a run's start (before its first renewal can be due) is an older
 *   run's of the same job, already stopped (below), or
 * - no renewal of it succeeded for 90 % of lockMs (at most one second short of it): its lock has expired or is about
 *   to, and once it has, the stalled-job check hands the job to another worker. This is what stops a run during a
 *   Redis outage longer than the lock, before the job can be taken over, not only once Redis is back;
 * - this worker was handed the same job again (only possible once the older run's lock was gone).
 */
export function watchJobLocks(worker: Pick<Worker, 'on'>, options: LockWatchOptions): { track(jobId: string): WatchedRun } {
  const { lockMs } = options;
  const graceMs = lockMs - Math.min(1000, Math.round(lockMs / 10));
  interface Run {
    jobId: string;
    startedAt: number;
    controller: AbortController;
    timer: NodeJS.Timeout;
  }
  /** The latest run of each job on this worker. */
  const runs = new Map<string, Run>();

  const lose = (run: Run, reason: string) => {
    clearTimeout(run.timer);
    if (runs.get(run.jobId) === run) runs.delete(run.jobId);
    if (run.controller.signal.aborted) return;
    run.controller.abort(new LockLostError(`job ${run.jobId}: lost its lock (${reason}); left to the worker that takes it over`));
    options.onLost(run.jobId, reason);
  };

  worker.on('locksRenewed', ({ jobIds }: { jobIds: string[] }) => {
    for (const id of jobIds) runs.get(id)?.timer.refresh();
  });
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    for (const id of jobIds) {
      const run = runs.get(id);
      if (run && Date.now() - run.startedAt >= lockMs / 4) lose(run, 'Redis refused its renewal: it expired or another worker holds it');
    }
  });

  return {
    track(jobId) {
      const older = runs.get(jobId);
      if (older) lose(older, 'the job was handed to this worker again');
      const controller = new AbortController();
      const run: Run = {
        jobId,
        startedAt: Date.now(),
        controller,
        timer: setTimeout(() => lose(run, `not renewed for ${graceMs} ms of WORKER_LOCK_MS=${lockMs}: Redis out of reach`), graceMs),
      };
      run.timer.unref();
      runs.set(jobId, run);
      return {
        signal: controller.signal,
        release() {
          clearTimeout(run.timer);
          if (runs.get(jobId) === run) runs.delete(jobId);
        },
      };
    },
  };
}
