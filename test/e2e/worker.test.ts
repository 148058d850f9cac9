import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Client } from 'basic-ftp';
import { queuePrefix, UPLOAD_QUEUE } from '@ftp/upload-events';
import { startClamd } from '../support/clamd';
import { waitFor } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';
import { startWebhookReceiver, startWorkerProcess, type WorkerProcess } from '../support/workers';

// The whole post-upload path with real programs: FTP uploads through the edge, BullMQ jobs in the real Redis, worker
// processes running checksum → scan (a real clamd) → move → webhook (a local receiver), crashes included.
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:worker:${process.pid}:${Date.now()}:`;
const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

let server: TestServer;
let clamd: Awaited<ReturnType<typeof startClamd>>;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let queue: Queue;
let connection: Redis;
let workerEnv: Record<string, string>;
const workers: WorkerProcess[] = [];
/** How the receiver answers the nth attempt of a delivery; tests change it. */
let respond: (attempt: number) => number | 'hold' = () => 200;

before(async () => {
  // Each one kept as soon as it is up, and all awaited: when one fails (clamd not installed), after() still stops the
  // others; with Promise.all they would be left running and this file's process would never exit.
  const started = await Promise.allSettled([
    startTestServer({ env: { REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_UPLOAD_SHA256: 'true' } }).then((s) => (server = s)),
    startClamd().then((c) => (clamd = c)),
    startWebhookReceiver((_delivery, attempt) => respond(attempt)).then((r) => (receiver = r)),
  ]);
  const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
  const pipelines = join(server.dataDir, '..', 'pipelines.yaml');
  writeFileSync(
    pipelines,
    `clamd: { host: ${clamd.host}, port: ${clamd.port} }
pipelines:
  - name: inbox
    match: { paths: ['/inbox/**'] }
    steps:
      - checksum: {}
      - scan: { quarantine: .quarantine }
      - move: { to: 'archive/{yyyy}/{mm}/{dd}/{name}' }
      - webhook: { url: '${receiver.url}', secret_env: WEBHOOK_SECRET, attempts: 5, backoff_ms: 50, timeout_ms: 2000 }
`,
  );
  workerEnv = {
    REDIS_URL,
    FTP_REDIS_PREFIX: prefix,
    FTP_DATA_DIR: server.dataDir,
    WORKER_PIPELINES: pipelines,
    WORKER_ADMIN_PORT: '0',
    WORKER_LOCK_MS: '2000',
    WORKER_CONCURRENCY: '8',
    WEBHOOK_SECRET: 'test-secret',
  };
  connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  queue = new Queue(UPLOAD_QUEUE, { connection, prefix: queuePrefix(prefix) });
});

after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  connection?.disconnect();
  await Promise.all([server?.close(), clamd?.stop(), receiver?.close()]);
});

async function ftp(): Promise<Client> {
  const client = new Client(15_000);
  await client.access({ host: server.host, port: server.port, user: server.user, password: server.password });
  return client;
}

/** Uploads `count` small files into /inbox over `sessions` parallel sessions; returns their names and contents. */
async function uploadMany(count: number, sessions: number, tag: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (let i = 0; i < count; i++) files.set(`${tag}-${i}.txt`, `${tag} file ${i}\n`.repeat(1 + (i % 40)));
  const names = [...files.keys()];
  await Promise.all(
    Array.from({ length: sessions }, async (_, s) => {
      const client = await ftp();
      await client.ensureDir('/inbox');
      for (let i = s; i < names.length; i += sessions) await client.uploadFrom(Readable.from([files.get(names[i])!]), names[i]);
      client.close();
    }),
  );
  return files;
}

const startWorker = () => {
  const worker = startWorkerProcess(workerEnv);
  workers.push(worker);
  return worker;
};

// The move step files by the upload's UTC day; a run that crosses midnight spreads one batch over two days,
// so the tests look at every day folder, not at today's.
const archived = (): Map<string, string> => {
  const root = join(server.dataDir, 'alice', 'archive');
  const found = new Map<string, string>();
  if (!existsSync(root)) return found;
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const dir = entry.parentPath ?? entry.path;
    assert.match(relative(root, dir), /^\d{4}\/\d{2}\/\d{2}$/, 'archived under yyyy/mm/dd');
    assert.equal(found.has(entry.name), false, `${entry.name} archived twice`);
    found.set(entry.name, join(dir, entry.name));
  }
  return found;
};
const archivedNames = () => [...archived().keys()].sort();
const archivedPath = (name: string) => archived().get(name) ?? join(server.dataDir, 'alice', 'archive', 'missing', name);

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');
const uploadIdOf = (name: string) => receiver.deliveries.find((d) => (d.body.data as { path: string }).path.endsWith(`/${name}`))?.id;

test('while no worker runs, the edge keeps serving and jobs wait; nothing is lost', async (t) => {
  const started = Date.now();
  await uploadMany(200, 4, 'waiting');
  t.diagnostic(`200 uploads with no worker: ${Date.now() - started} ms`);
  const counts = await queue.getJobCounts('waiting', 'active', 'completed');
  assert.equal(counts.waiting, 200, 'every upload waits as a job');
  assert.equal(receiver.deliveries.length, 0);
});

test('1,000 uploads → exactly 1,000 processed jobs, each effect once (2 worker processes)', async (t) => {
  await uploadMany(1000, 4, 'bulk');
  const started = Date.now();
  startWorker();
  startWorker();
  await waitFor('1,200 webhook deliveries', () => receiver.successes().size >= 1200, 180_000);
  t.diagnostic(`1,200 jobs (checksum, scan, move, webhook) done by 2 workers in ${Date.now() - started} ms`);
  await waitFor('the queue to settle', async () => (await queue.getJobCounts('completed')).completed === 1200, 20_000);

  const successes = receiver.successes();
  assert.equal(successes.size, 1200);
  assert.ok([...successes.values()].every((n) => n === 1), 'every upload announced exactly once');
  const counts = await queue.getJobCounts('waiting', 'active', 'failed', 'completed', 'delayed');
  assert.deepEqual(counts, { waiting: 0, active: 0, failed: 0, completed: 1200, delayed: 0 });

  const names = archivedNames();
  assert.equal(names.filter((n) => n.endsWith('.txt')).length, 1200, 'every file moved to the archive once');
  assert.equal(names.filter((n) => n.endsWith('.txt.sha256')).length, 1200, 'one checksum sidecar each');
  assert.deepEqual(readdirSync(join(server.dataDir, 'alice', 'inbox')), [], 'the inbox is empty');
  const sample = 'bulk-7.txt';
  const content = readFileSync(archivedPath(sample), 'utf8');
  assert.equal(readFileSync(archivedPath(`${sample}.sha256`), 'utf8'), `${sha256(content)}  ${sample}\n`);
  const delivery = receiver.deliveries.find((d) => d.id === uploadIdOf(sample))!;
  assert.equal((delivery.body.data as { sha256: string }).sha256, sha256(content));
});

test('a worker killed mid-job: another picks the job up, effects still once', async () => {
  for (const w of workers.splice(0)) assert.deepEqual(await w.kill('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: clean exit');
  const victim = startWorker();
  // The first delivery attempt hangs, so the worker is inside the webhook step (after checksum, scan, move) when it dies.
  respond = (attempt) => (attempt === 1 ? 'hold' : 200);
  const armed = receiver.deliveries.length;
  const client = await ftp();
  await client.uploadFrom(Readable.from(['held\n']), '/inbox/held.txt');
  client.close();
  await waitFor('the held delivery', () => receiver.deliveries.length > armed, 30_000);
  const id = receiver.deliveries[armed].id;
  await victim.kill('SIGKILL');

  startWorker();
  await waitFor('the job taken over and delivered', () => receiver.successes().get(id) === 1, 30_000);
  respond = () => 200;
  await waitFor('the job completed', async () => (await queue.getJob(id))?.finishedOn !== undefined, 10_000);
  assert.deepEqual(
    receiver.deliveries.filter((d) => d.id === id).map((d) => d.status),
    [0, 200],
    'the attempt cut by the crash, then exactly one successful delivery',
  );
  assert.equal(archivedNames().filter((n) => n === 'held.txt').length, 1, 'moved once');
  assert.equal(readFileSync(archivedPath('held.txt'), 'utf8'), 'held\n');
  assert.ok(archived().has('held.txt.sha256'));
  assert.equal(existsSync(join(server.dataDir, 'alice', 'inbox', 'held.txt')), false);
});

test('an EICAR upload is quarantined and never announced', async () => {
  const client = await ftp();
  await client.uploadFrom(Readable.from([EICAR]), '/inbox/eicar.txt');
  client.close();
  const quarantine = join(server.dataDir, '.quarantine');
  await waitFor('the quarantine', () => existsSync(quarantine) && readdirSync(quarantine).length > 0, 30_000);
  const [uploadId] = readdirSync(quarantine);
  await waitFor('the job to complete', async () => (await queue.getJob(uploadId))?.finishedOn !== undefined, 10_000);
  assert.equal(readFileSync(join(quarantine, uploadId, 'eicar.txt'), 'utf8'), EICAR);
  assert.equal(existsSync(join(server.dataDir, 'alice', 'inbox', 'eicar.txt')), false);
  assert.equal(archived().has('eicar.txt'), false);
  assert.equal(receiver.deliveries.filter((d) => d.id === uploadId).length, 0, 'no webhook for an infected file');
});

test('a receiver answering 500 three times then 200 gets exactly one successful delivery', async () => {
  respond = (attempt) => (attempt <= 3 ? 500 : 200);
  const armed = receiver.deliveries.length;
  const client = await ftp();
  await client.uploadFrom(Readable.from(['flaky receiver\n']), '/inbox/flaky.txt');
  client.close();
  await waitFor('a successful delivery', () => receiver.deliveries.slice(armed).some((d) => d.status === 200), 30_000);
  respond = () => 200;
  const id = receiver.deliveries[armed].id;
  assert.deepEqual(
    receiver.deliveries.filter((d) => d.id === id).map((d) => d.status),
    [500, 500, 500, 200],
  );
  assert.equal(receiver.successes().get(id), 1);
});

test('a job that fails for good lands in the failed set; the operator lists it and retries it', async () => {
  respond = () => 400; // a client error is not retried: the job fails at once
  const client = await ftp();
  await client.uploadFrom(Readable.from(['rejected at first\n']), '/inbox/rejected.txt');
  client.close();
  await waitFor('the failed job', async () => (await queue.getJobCounts('failed')).failed === 1, 30_000);
  const listed = await workerCli('failed', 'list');
  const [failed] = listed.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: string; path: string; reason: string });
  assert.equal(failed.path, '/inbox/rejected.txt');
  assert.match(failed.reason, /400/);

  respond = () => 200;
  const retried = await workerCli('failed', 'retry', failed.id);
  assert.match(retried.stdout, /1 job\(s\) moved back to waiting/);
  await waitFor('the retried delivery', () => receiver.successes().get(failed.id) === 1, 30_000);
  assert.equal((await queue.getJobCounts('failed')).failed, 0);
  assert.deepEqual(
    archivedNames().filter((n) => n.startsWith('rejected')),
    ['rejected.txt', 'rejected.txt.sha256'],
    'the move done before the failure is not repeated by the retry',
  );
});

async function workerCli(...args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/worker/src/main.ts', ...args], {
    env: { ...process.env, ...workerEnv, OTEL_TRACES_EXPORTER: 'none' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout };
}
