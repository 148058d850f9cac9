// Post-upload worker throughput: jobs/s of the checksum → move → webhook pipeline with 1 and 2 worker processes.
// Jobs are added straight to the queue (the edge's part is one Redis round trip per upload, measured separately),
// over real files, with a real local webhook receiver. Usage: npx tsx test/bench/worker.ts  (BENCH_JOBS=2000,
// BENCH_STORAGE=local|s3|both: s3 puts the files in a bucket of the process's radosgw and the workers on FTP_STORAGE=s3)
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { JOB_UPLOAD_COMPLETED, queuePrefix, UPLOAD_QUEUE, type UploadEvent } from '@ftp/upload-events';
import { radosgwClientConfig, sharedRadosgw } from '../support/radosgw';
import { awsCredentialsEnv, s3EdgeEnv } from '../support/s3Bucket';
import { startWebhookReceiver, startWorkerProcess } from '../support/workers';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const CONCURRENCY = process.env.BENCH_WORKER_CONCURRENCY ?? '8';
const DEADLINE_MS = 300_000;

const STORAGE = process.env.BENCH_STORAGE ?? 'local';

/** Where the bench's files live: the local data dir, or a bucket on radosgw (the worker's environment for each). */
async function placeFiles(dataDir: string, names: string[], payload: Buffer, storage: 'local' | 's3') {
  if (storage === 'local') {
    for (const name of names) writeFileSync(join(dataDir, 'alice', 'inbox', name), payload);
    return { env: {}, close: async () => {} };
  }
  const rgw = await sharedRadosgw();
  const bucket = await rgw.createBucket();
  const client = new S3Client(radosgwClientConfig(rgw));
  for (let i = 0; i < names.length; i += 16) {
    await Promise.all(names.slice(i, i + 16).map((name) => client.send(new PutObjectCommand({ Bucket: bucket, Key: `homes/alice/inbox/${name}`, Body: payload }))));
  }
  client.destroy();
  return { env: { ...s3EdgeEnv(rgw, bucket, 5 * 1024 * 1024), ...awsCredentialsEnv(rgw) }, close: () => rgw.deleteBucket(bucket) };
}

async function run(workers: number, storage: 'local' | 's3'): Promise<{ jobsPerSecond: number; ms: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-worker-'));
  const dataDir = join(dir, 'data');
  mkdirSync(join(dataDir, 'alice', 'inbox'), { recursive: true });
  const prefix = `bench:worker:${randomUUID().slice(0, 8)}:`;
  const receiver = await startWebhookReceiver();
  const pipelines = join(dir, 'pipelines.yaml');
  writeFileSync(
    pipelines,
    `pipelines:
  - name: bench
    steps:
      - checksum: {}
      - move: { to: 'archive/{yyyy}/{mm}/{dd}/{name}' }
      - webhook: { url: '${receiver.url}', secret_env: WEBHOOK_SECRET }
`,
  );
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue(UPLOAD_QUEUE, { connection, prefix: queuePrefix(prefix) });
  const payload = randomBytes(4096);
  const names = Array.from({ length: JOBS }, (_, i) => `f-${i}.bin`);
  const files = await placeFiles(dataDir, names, payload, storage);
  const jobs = names.map((name) => {
    const event: UploadEvent = {
      uploadId: randomUUID(),
      user: 'alice',
      groups: [],
      path: `/inbox/${name}`,
      storageKey: `alice/inbox/${name}`,
      size: payload.length,
      clientAddress: '127.0.0.1',
      protocol: 'ftp',
      startedAt: Date.now(),
      completedAt: Date.now(),
      replicaId: 'bench',
    };
    return { name: JOB_UPLOAD_COMPLETED, data: event, opts: { jobId: event.uploadId, attempts: 5 } };
  });
  const procs = Array.from({ length: workers }, () =>
    startWorkerProcess({
      ...files.env,
      REDIS_URL,
      FTP_REDIS_PREFIX: prefix,
      FTP_DATA_DIR: dataDir,
      WORKER_PIPELINES: pipelines,
      WORKER_ADMIN_PORT: '0',
      WORKER_CONCURRENCY: CONCURRENCY,
      WORKER_LOG_LEVEL: 'info',
      WEBHOOK_SECRET: 'bench',
    }),
  );
  const deadline = Date.now() + 60_000;
  while (!procs.every((p) => p.logs.some((l) => l.msg === 'worker started')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // The clock runs from the first job added (workers already up) to the last webhook delivery.
  const started = Date.now();
  for (let i = 0; i < jobs.length; i += 500) await queue.addBulk(jobs.slice(i, i + 500));
  while (receiver.successes().size < JOBS && Date.now() - started < DEADLINE_MS) await new Promise((r) => setTimeout(r, 20));
  const ms = Date.now() - started;
  const delivered = receiver.successes().size;
  if (delivered !== JOBS) {
    console.log('job counts', await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed'));
    for (const job of await queue.getFailed()) console.log('failed', job.id, job.failedReason);
    for (const p of procs) for (const line of p.logs.filter((l) => (l.level as number) >= 40)) console.log(JSON.stringify(line).slice(0, 400));
  }
  await Promise.all(procs.map((p) => p.kill('SIGTERM')));
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  await receiver.close();
  await files.close();
  rmSync(dir, { recursive: true, force: true });
  if (delivered !== JOBS) throw new Error(`only ${delivered} of ${JOBS} jobs delivered within ${DEADLINE_MS} ms`);
  return { jobsPerSecond: (JOBS * 1000) / ms, ms };
}

console.log(`worker benchmark: ${JOBS} jobs of 4 KiB, pipeline checksum → move → webhook, concurrency ${CONCURRENCY} per process, ${cpus().length} cores`);
for (const storage of STORAGE === 'both' ? (['local', 's3'] as const) : [STORAGE as 'local' | 's3']) {
  const one = await run(1, storage);
  console.log(`${storage}: 1 worker process : ${one.jobsPerSecond.toFixed(0)} jobs/s (${one.ms} ms)`);
  const two = await run(2, storage);
  console.log(`${storage}: 2 worker processes: ${two.jobsPerSecond.toFixed(0)} jobs/s (${two.ms} ms), ratio ${(two.jobsPerSecond / one.jobsPerSecond).toFixed(2)}`);
}
