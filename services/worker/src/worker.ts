import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { context, SpanKind, trace, type Span } from '@opentelemetry/api';
import { connectRedis } from '@ftp/cluster-state';
import { extractTraceContext, failSpan, startAdminServer, startChildSpan, type Logger } from '@ftp/telemetry';
import { openConfiguredStorage } from '@ftp/storage';
import { JOB_UPLOAD_COMPLETED, queuePrefix, UPLOAD_QUEUE, type UploadEvent } from '@ftp/upload-events';
import type { WorkerConfig } from './config';
import { createWorkerMetrics, type WorkerMetrics } from './metrics';
import { LockLostError, watchJobLocks } from './lockWatch';
import { buildPipelines, choosePipeline, runPipeline } from './pipeline';
import type { StepResult } from './steps/types';

/** What a job keeps between attempts (BullMQ progress survives retries): the steps already done. */
interface Progress {
  pipeline?: string;
  steps?: Record<string, StepResult>;
}

export interface RunningWorker {
  metrics: WorkerMetrics;
  adminPort: number;
  /** Stops taking jobs, lets the running ones finish (or hands them back at the deadline), closes everything. */
  close(): Promise<void>;
}

export async function startWorker(config: WorkerConfig, log: Logger): Promise<RunningWorker> {
  const pipelines = buildPipelines(config);
  // The same storage the edges write, through the same seam: FTP_STORAGE, FTP_DATA_DIR, FTP_S3_*.
  const storage = await openConfiguredStorage(config, { log });
  const dataRoot = storage.storageAt(config.dataDir);
  const prefix = queuePrefix(config.redisPrefix);
  // A BullMQ worker blocks on Redis and must wait out outages: no per-request retry limit (bullmq's requirement).
  const connection = connectRedis(config.redisUrl, { maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(times * 200, 2000) });
  // Created before the metrics (the queue gauge reads through it); counted once they exist.
  let onRedisError = () => {};
  connection.on('error', (err) => {
    onRedisError();
    log.debug({ err: err.message }, 'Redis connection error');
  });
  const queue = new Queue(UPLOAD_QUEUE, { connection, prefix });
  // The connection's own handler counts and logs it; without a listener BullMQ prints every one to stderr.
  queue.on('error', () => {});
  const metrics = createWorkerMetrics(queue);
  onRedisError = () => metrics.redisErrors.inc();
  const shutdown = new AbortController();

  /**
   * One `upload.process` span per attempt, in the trace of the upload (the edge put its transfer's trace context in
   * the event), with a span per step under it. The steps get one signal: aborted when the worker shuts down, when it
   * lost the job's lock (lockWatch.ts), or when BullMQ cancels the job (its third argument: `worker.cancelJob()`).
   * Three parameters: BullMQ passes a signal only to a processor that declares it.
   */
  const processJob = async (job: Job<UploadEvent>, _token: string | undefined, cancelled: AbortSignal | undefined) => {
    // `locks` is set right after the worker is made (it listens to its lock renewals), before any job can start.
    const watched = locks.track(job.id ?? '');
    try {
      const signal = AbortSignal.any([shutdown.signal, watched.signal, ...(cancelled ? [cancelled] : [])]);
      return await processAttempt(job, signal, watched.signal);
    } finally {
      watched.release();
    }
  };

  const processAttempt = (job: Job<UploadEvent>, signal: AbortSignal, lockLost: AbortSignal) => {
    const event = job.data;
    const parent = extractTraceContext(event.traceContext);
    const span = startChildSpan(
      'upload.process',
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'bullmq',
          'messaging.operation.type': 'process',
          'messaging.destination.name': UPLOAD_QUEUE,
          'messaging.message.id': job.id ?? '',
          'ftp.upload.event': job.name,
          'ftp.upload.id': event.uploadId,
          'ftp.path': event.path,
          'ftp.upload.size': event.size,
          'ftp.job.attempt': job.attemptsMade + 1,
          'enduser.id': event.user,
        },
      },
      parent,
    );
    const started = process.hrtime.bigint();
    return context.with(trace.setSpan(parent, span), () => runJob(job, span, signal)).then(
      (result) => {
        metrics.jobSeconds.observe({ result: 'completed' }, Number(process.hrtime.bigint() - started) / 1e9);
        if (job.name === JOB_UPLOAD_COMPLETED) metrics.uploadLagSeconds.observe(Math.max(0, Date.now() - event.completedAt) / 1000);
        if (result.pipeline) span.setAttribute('ftp.pipeline', result.pipeline);
        span.end();
        return result;
      },
      (thrown: Error) => {
        // Whatever a step threw on the abort (a reset stream, an aborted fetch), the cause is the lost lock.
        const err = lockLost.aborted ? (lockLost.reason as LockLostError) : thrown;
        metrics.jobSeconds.observe({ result: 'failed' }, Number(process.hrtime.bigint() - started) / 1e9);
        failSpan(span, err.message, err);
        span.end();
        throw err;
      },
    );
  };

  const runJob = async (job: Job<UploadEvent>, span: Span, signal: AbortSignal) => {
    if (job.name !== JOB_UPLOAD_COMPLETED) {
      log.info({ job: job.id, name: job.name, user: job.data.user, path: job.data.path }, 'upload event without processing');
      return { pipeline: null };
    }
    const event = job.data;
    const jobLog = log.child({ job: job.id, user: event.user, path: event.path, attempt: job.attemptsMade + 1 });
    const pipeline = choosePipeline(pipelines, event);
    if (!pipeline) {
      jobLog.info('no pipeline matches this upload');
      return { pipeline: null };
    }
    const progress = (typeof job.progress === 'object' ? job.progress : {}) as Progress;
    const done = progress.pipeline === pipeline.name ? { ...progress.steps } : {};
    if (Object.keys(done).length > 0) span.setAttribute('ftp.steps.skipped', Object.keys(done).length);
    const steps = await runPipeline(pipeline, event, {
      storage: dataRoot,
      log: jobLog,
      signal,
      done,
      onStepDone: (name, result) => {
        done[name] = result;
        return job.updateProgress({ pipeline: pipeline.name, steps: done } satisfies Progress);
      },
      observe: (step, seconds, ok) => metrics.stepSeconds.observe({ step: step.replace(/#\d+$/, ''), ok: String(ok) }, seconds),
    });
    // The last step finished as the lock went: its result is recorded, the run that takes the job over completes it.
    signal.throwIfAborted();
    jobLog.info({ audit: true, event: 'processed', pipeline: pipeline.name, steps: Object.keys(steps) }, 'upload processed');
    return { pipeline: pipeline.name, steps };
  };

  const worker = new Worker<UploadEvent>(UPLOAD_QUEUE, processJob, {
    connection,
    prefix,
    concurrency: config.worker.concurrency,
    lockDuration: config.worker.lockMs,
    stalledInterval: config.worker.lockMs,
    // A job whose lock expired (its worker died, or lost Redis for longer than the lock) goes back to waiting; past
    // this many times it is failed instead, unrun ("job stalled more than allowable limit"). BullMQ's default of 1
    // failed a job taken over after a worker crash and then caught by one Redis outage longer than the lock. A run
    // that loses its lock stops (lockWatch.ts), so running a stalled job again duplicates nothing: the limit is only
    // there for a job that kills every worker that runs it.
    maxStalledCount: 3,
  });
  const locks = watchJobLocks(worker, {
    lockMs: config.worker.lockMs,
    onLost: (jobId, reason) => {
      metrics.locksLost.inc();
      log.warn({ job: jobId, reason }, 'lost the job lock: its pipeline stops before the next step, the job is left to the worker that takes it over');
    },
  });
  worker.on('completed', () => metrics.jobsTotal.inc({ result: 'completed' }));
  worker.on('failed', (job, err) => {
    const dead = !job || job.attemptsMade >= (job.opts.attempts ?? 1) || err instanceof UnrecoverableError;
    metrics.jobsTotal.inc({ result: dead ? 'dead' : 'failed' });
    log[dead ? 'error' : 'warn']({ job: job?.id, err: err.message, attempts: job?.attemptsMade }, dead ? 'job failed for good: in the failed set' : 'job failed: will retry');
  });
  worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));
  worker.on('stalled', (jobId) => log.warn({ job: jobId }, 'job stalled (its worker died or lost the lock): back to waiting, resumed from its last finished step'));

  let admin: Server | undefined;
  if (config.worker.adminPort > 0) {
    admin = await startAdminServer({
      host: config.worker.adminHost,
      port: config.worker.adminPort,
      registry: metrics.registry,
      ready: () => connection.status === 'ready' && worker.isRunning() && storage.healthy(),
    });
  }
  log.info({ queue: UPLOAD_QUEUE, prefix, concurrency: config.worker.concurrency, storage: storage.kind, pipelines: pipelines.map((p) => p.name) }, 'worker started');

  return {
    metrics,
    adminPort: admin ? (admin.address() as AddressInfo).port : 0,
    async close() {
      // worker.close() waits for the running jobs; a job that does not finish is retried elsewhere after its lock expires.
      await worker.close();
      shutdown.abort();
      await queue.close();
      storage.close();
      await new Promise<void>((resolve) => (admin ? admin.close(() => resolve()) : resolve()));
      connection.disconnect();
    },
  };
}
