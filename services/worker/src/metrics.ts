import type { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const JOB_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

/** Worker metrics: jobs by result, step durations, and the queue's depth read from Redis at scrape time. */
export function createWorkerMetrics(queue: Queue) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    jobsTotal: new Counter({
      name: 'ftp_worker_jobs_total',
      help: 'Jobs finished by this worker: completed, failed (will retry), or dead (no attempts left, in the failed set)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    jobSeconds: new Histogram({
      name: 'ftp_worker_job_duration_seconds',
      help: 'Duration of one attempt of a job, by result (completed, failed)',
      labelNames: ['result'] as const,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600],
      registers: [registry],
    }),
    uploadLagSeconds: new Histogram({
      name: 'ftp_worker_upload_lag_seconds',
      help: 'From the upload completing on the edge to its processing finishing here (queue wait plus processing)',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600],
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'ftp_worker_redis_errors_total',
      help: 'Errors of the worker\'s Redis connection (each failed connection attempt while Redis is away counts)',
      registers: [registry],
    }),
    locksLost: new Counter({
      name: 'ftp_worker_locks_lost_total',
      help: 'Job runs stopped because this worker lost the job lock (Redis away longer than WORKER_LOCK_MS, or refused a renewal): the job is left to the worker that takes it over',
      registers: [registry],
    }),
    stepSeconds: new Histogram({
      name: 'ftp_worker_step_duration_seconds',
      help: 'Duration of pipeline steps by step and outcome',
      labelNames: ['step', 'ok'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers: [registry],
    }),
    queueJobs: new Gauge({
      name: 'ftp_worker_queue_jobs',
      help: 'Jobs in the upload queue by state (cluster-wide, read from Redis)',
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        const counts = await queue.getJobCounts(...JOB_STATES).catch(() => undefined);
        if (!counts) return; // Redis away: the scrape still answers, without queue figures
        for (const state of JOB_STATES) this.set({ state }, counts[state] ?? 0);
      },
    }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
