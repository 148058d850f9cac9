// A worker that loses a job's lock stops its pipeline before the next step's effect and leaves the job to the run that
// takes it over, which carries on from the recorded progress. Real Redis (REDIS_URL, default 127.0.0.1:6379), a real
// worker (startWorker) on a fresh prefix, a local data root, a webhook receiver that holds its answer while the test
// takes the lock away.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger } from '@ftp/telemetry';
import { JOB_UPLOAD_COMPLETED, queuePrefix, UPLOAD_QUEUE, type UploadEvent } from '@ftp/upload-events';
import { startRedisProxy } from '../../../test/support/redisProxy';
import { loadWorkerConfig } from './config';
import { startWorker, type RunningWorker } from './worker';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const LOCK_MS = 1000;

const cleanups: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const clean of cleanups.reverse()) await Promise.resolve(clean()).catch(() => undefined);
});

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

interface Request {
  delivery: string;
  /** The worker dropped the request before it was answered. */
  abandoned: boolean;
}

/** A receiver that calls `onFirst` on the first request and answers it only after `holdMs`; every later one at once. */
async function startReceiver(holdMs: number, onFirst: () => Promise<void>) {
  const requests: Request[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const request: Request = { delivery: String(req.headers['x-ftp-delivery']), abandoned: false };
      requests.push(request);
      if (requests.length > 1) return void res.writeHead(200).end();
      res.on('close', () => (request.abandoned = !res.writableEnded));
      void onFirst().then(() => setTimeout(() => res.writeHead(200).end(), holdMs));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, requests };
}

/**
 * A worker (lock LOCK_MS, one job at a time) on a fresh prefix with the pipeline checksum → webhook → move, one upload
 * waiting in its queue, and a Redis client of the test's own on the same keys.
 */
async function setup(hook: string, redisUrl = REDIS_URL) {
  const dir = mkdtempSync(join(tmpdir(), 'worker-lock-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const data = join(dir, 'data');
  mkdirSync(join(data, 'alice', 'inbox'), { recursive: true });
  const bytes = 'invoice 42\n'.repeat(1000);
  writeFileSync(join(data, 'alice', 'inbox', 'report.csv'), bytes);
  const pipelines = join(dir, 'pipelines.yaml');
  writeFileSync(
    pipelines,
    `pipelines:\n  - name: inbox\n    steps:\n      - checksum: {}\n      - webhook: { url: '${hook}', secret: s3cret, attempts: 1, timeout_ms: 30000 }\n      - move: { to: 'archive/{name}' }\n`,
  );
  const redisPrefix = `test:${randomUUID()}:`;
  const config = loadWorkerConfig(
    { REDIS_URL: redisUrl, FTP_REDIS_PREFIX: redisPrefix, FTP_DATA_DIR: data, WORKER_PIPELINES: pipelines, WORKER_LOCK_MS: String(LOCK_MS), WORKER_ADMIN_PORT: '0', WORKER_CONCURRENCY: '1' },
    [],
  );
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const redis = new Redis(REDIS_URL);
  const queue = new Queue(UPLOAD_QUEUE, { connection: redis, prefix: queuePrefix(redisPrefix) });
  cleanups.push(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
  });
  const worker: RunningWorker = await startWorker(config, createLogger({ level: 'debug', destination: sink }));
  cleanups.push(() => worker.close());
  const uploadId = randomUUID();
  const event: UploadEvent = {
    uploadId,
    user: 'alice',
    groups: [],
    path: '/inbox/report.csv',
    storageKey: 'alice/inbox/report.csv',
    size: bytes.length,
    clientAddress: '127.0.0.1',
    protocol: 'ftp',
    startedAt: Date.now(),
    completedAt: Date.now(),
    replicaId: 'edge-test',
  };
  await queue.add(JOB_UPLOAD_COMPLETED, event, { jobId: uploadId, attempts: 5, backoff: { type: 'fixed', delay: 100 } });
  const lockKey = `${queuePrefix(redisPrefix)}:${UPLOAD_QUEUE}:${uploadId}:lock`;
  const inbox = join(data, 'alice', 'inbox', 'report.csv');
  const archive = join(data, 'alice', 'archive', 'report.csv');
  const logged = (msg: RegExp) => logs.filter((l) => msg.test(String(l.msg)));
  /** How many times the step ran to its end (from the worker's metrics). */
  const stepRuns = async (step: string) => {
    const text = await worker.metrics.registry.getSingleMetricAsString('ftp_worker_step_duration_seconds');
    return Number(new RegExp(`_count\\{step="${step}",ok="true"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };
  return { worker, queue, redis, uploadId, lockKey, inbox, archive, logs, logged, stepRuns };
}

test('a lost lock (another worker holds it) stops the pipeline before its next step; the run that takes the job over resumes from the recorded progress', { timeout: 30_000 }, async () => {
  type Setup = Awaited<ReturnType<typeof setup>>;
  let resolve: (t: Setup) => void = () => {};
  const ready = { promise: new Promise<Setup>((r) => (resolve = r)), resolve: (t: Setup) => resolve(t) };
  // While the webhook is in flight, another worker "takes the job over": its token replaces this worker's in the lock.
  const receiver = await startReceiver(2500, async () => {
    const { redis, lockKey } = await ready.promise;
    await redis.set(lockKey, 'another-worker:1', 'PX', 60_000);
  });
  const t = await setup(receiver.url);
  ready.resolve(t);

  await waitFor('the first webhook request', () => receiver.requests.length >= 1, 10_000);
  // Past the held answer (2.5 s): without the lock check, the webhook is answered and the move runs on.
  await sleep(3500);
  assert.ok(existsSync(t.inbox) && !existsSync(t.archive), 'the file was not moved by the run that lost the lock');
  const lost = t.logged(/lost the job lock/);
  assert.equal(lost.length, 1, 'one line says the lock was lost');
  assert.equal(lost[0].job, t.uploadId);
  assert.equal(receiver.requests[0].abandoned, true, 'the webhook in flight was dropped, not waited for');
  const job = await t.queue.getJob(t.uploadId);
  assert.deepEqual(Object.keys((job!.progress as { steps: object }).steps), ['checksum'], 'the finished step is recorded');
  assert.equal(await t.queue.getJobState(t.uploadId), 'active', 'still the other worker\'s job');

  // The other worker dies: its lock expires, the stalled check hands the job back, the run carries on from progress.
  await t.redis.del(t.lockKey);
  await waitFor('the job completed', async () => (await t.queue.getJobState(t.uploadId)) === 'completed', 15_000);
  assert.ok(!existsSync(t.inbox) && existsSync(t.archive), 'moved once, by the run that took the job over');
  assert.equal(await t.stepRuns('checksum'), 1, 'the checksum recorded by the first run is not done again');
  assert.equal(await t.stepRuns('move'), 1);
  assert.equal(receiver.requests.length, 2, 'the webhook went out again (the first was dropped unanswered)');
  assert.deepEqual(new Set(receiver.requests.map((r) => r.delivery)), new Set([t.uploadId]), 'with the same x-ftp-delivery');
  assert.equal(t.logged(/job stalled/).length, 1);
});

test('Redis out of reach for longer than the lock: the run stops while Redis is away, before the job can be taken over', { timeout: 30_000 }, async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  cleanups.push(() => proxy.cut());
  let cutAt = 0;
  // The webhook is in flight when Redis vanishes for the worker (only its connections go through the proxy).
  const receiver = await startReceiver(4000, async () => {
    cutAt = Date.now();
    await proxy.cut();
  });
  const t = await setup(receiver.url, proxy.url);

  await waitFor('the first webhook request', () => receiver.requests.length >= 1, 10_000);
  await waitFor('the run stopped', () => t.logged(/lost the job lock/).length > 0, 3000);
  const stoppedAfter = Number(new Date(String(t.logged(/lost the job lock/)[0].time))) - cutAt;
  assert.ok(stoppedAfter < LOCK_MS, `stopped ${stoppedAfter} ms after Redis went, before the lock expired`);
  await sleep(200);
  assert.equal(receiver.requests[0].abandoned, true, 'the webhook in flight was dropped while Redis was away');
  assert.ok(existsSync(t.inbox) && !existsSync(t.archive));

  await sleep(Math.max(0, cutAt + 2 * LOCK_MS - Date.now()));
  await proxy.reopen();
  await waitFor('the job completed', async () => (await t.queue.getJobState(t.uploadId)) === 'completed', 20_000);
  assert.ok(!existsSync(t.inbox) && existsSync(t.archive));
  assert.equal(await t.stepRuns('checksum'), 1);
  assert.equal(await t.stepRuns('move'), 1);
  assert.deepEqual(new Set(receiver.requests.map((r) => r.delivery)), new Set([t.uploadId]));
});
