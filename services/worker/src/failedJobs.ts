import { Queue } from 'bullmq';
import { connectRedis } from '@ftp/cluster-state';
import { queuePrefix, UPLOAD_QUEUE, type UploadEvent } from '@ftp/upload-events';
import type { WorkerConfig } from './config';

export interface FailedJob {
  id: string;
  user: string;
  path: string;
  attempts: number;
  reason: string;
  failedAt?: number;
}

/** The failed set of the upload queue, for operators: list it, retry one job or all of them. */
export async function withFailedJobs<T>(config: Pick<WorkerConfig, 'redisUrl' | 'redisPrefix'>, use: (jobs: FailedJobs) => Promise<T>): Promise<T> {
  const connection = connectRedis(config.redisUrl, { maxRetriesPerRequest: 1 });
  const queue = new Queue(UPLOAD_QUEUE, { connection, prefix: queuePrefix(config.redisPrefix) });
  try {
    return await use(failedJobs(queue));
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

export interface FailedJobs {
  list(limit?: number): Promise<FailedJob[]>;
  /** Moves jobs back to waiting; their finished steps are still skipped. Returns how many moved. */
  retry(ids: string[] | 'all'): Promise<number>;
}

function failedJobs(queue: Queue<UploadEvent>): FailedJobs {
  return {
    async list(limit = 100) {
      const jobs = await queue.getFailed(0, limit - 1);
      return jobs.map((job) => ({
        id: String(job.id),
        user: job.data.user,
        path: job.data.path,
        attempts: job.attemptsMade,
        reason: job.failedReason,
        failedAt: job.finishedOn,
      }));
    },
    async retry(ids) {
      const jobs = ids === 'all' ? await queue.getFailed() : await Promise.all(ids.map((id) => queue.getJob(id)));
      let moved = 0;
      for (const job of jobs) {
        if (!job || !(await job.isFailed())) continue;
        await job.retry('failed');
        moved++;
      }
      return moved;
    },
  };
}
