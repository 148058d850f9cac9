// The post-upload worker on object storage: an edge and a worker process both on FTP_STORAGE=s3 (one bucket on the
// process's radosgw), the same settings for both. FTP uploads through the edge become jobs; the worker digests the
// objects, scans them with a real clamd, files them with server-side copies and announces them to a webhook. Every
// result is checked in the bucket itself.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Client } from 'basic-ftp';
import { queuePrefix, UPLOAD_QUEUE } from '@ftp/upload-events';
import { EICAR, startClamd } from '../support/clamd';
import { sharedRadosgw, type Radosgw } from '../support/radosgw';
import { waitFor } from '../support/rawData';
import { awsCredentialsEnv, bucketView, s3EdgeEnv, type BucketView } from '../support/s3Bucket';
import { startTestServer, type TestServer } from '../support/server';
import { startWebhookReceiver, startWorkerProcess, type WorkerProcess } from '../support/workers';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:worker-s3:${process.pid}:${Date.now()}:`;
const PART = 5 * 1024 * 1024;

let rgw: Radosgw;
let bucket: string | undefined;
let view: BucketView;
let server: TestServer;
let clamd: Awaited<ReturnType<typeof startClamd>>;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let queue: Queue;
let connection: Redis;
let worker: WorkerProcess | undefined;

before(async () => {
  rgw = await sharedRadosgw();
  bucket = await rgw.createBucket();
  view = bucketView(rgw, bucket);
  const storageEnv = { ...s3EdgeEnv(rgw, bucket, PART), ...awsCredentialsEnv(rgw) };
  Object.assign(process.env, awsCredentialsEnv(rgw));
  const started = await Promise.allSettled([
    startTestServer({ env: { ...s3EdgeEnv(rgw, bucket, PART), REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_UPLOAD_SHA256: 'true' } }).then((s) => (server = s)),
    startClamd().then((c) => (clamd = c)),
    startWebhookReceiver().then((r) => (receiver = r)),
  ]);
  const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
  // One configuration file for edge and worker alike would do; here the worker gets the edge's settings by environment.
  const pipelines = join(server.dataDir, '..', 'pipelines.yaml');
  writeFileSync(
    pipelines,
    `clamd: { host: ${clamd.host}, port: ${clamd.port} }
pipelines:
  - name: inbox
    match: { paths: ['/inbox/**'] }
    steps:
      - checksum: { algorithms: [sha256, md5] }
      - scan: { quarantine: .quarantine }
      - move: { to: 'archive/{name}' }
      - webhook: { url: '${receiver.url}', secret_env: WEBHOOK_SECRET, attempts: 5, backoff_ms: 50, timeout_ms: 2000 }
  - name: outbox
    match: { paths: ['/outbox/**'] }
    steps:
      - copy: { to: 'sent/{name}' }
`,
  );
  connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  queue = new Queue(UPLOAD_QUEUE, { connection, prefix: queuePrefix(prefix) });
  worker = startWorkerProcess({
    ...storageEnv,
    REDIS_URL,
    FTP_REDIS_PREFIX: prefix,
    FTP_DATA_DIR: server.dataDir,
    WORKER_PIPELINES: pipelines,
    WORKER_ADMIN_PORT: '0',
    WORKER_CONCURRENCY: '4',
    WEBHOOK_SECRET: 'test-secret',
  });
});

after(async () => {
  await worker?.kill('SIGKILL');
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  connection?.disconnect();
  await Promise.all([server?.close(), clamd?.stop(), receiver?.close()]);
  if (bucket) await rgw.deleteBucket(bucket);
  view?.close();
});

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const md5 = (data: string | Buffer) => createHash('md5').update(data).digest('hex');

async function upload(files: [string, string | Buffer][]): Promise<void> {
  const client = new Client(30_000);
  await client.access({ host: server.host, port: server.port, user: server.user, password: server.password });
  for (const [path, data] of files) {
    await client.ensureDir(path.slice(0, path.lastIndexOf('/')) || '/');
    await client.uploadFrom(Readable.from([data]), path.slice(path.lastIndexOf('/') + 1));
  }
  client.close();
}

const completed = async () => (await queue.getJobCounts('completed')).completed;

test('uploads on object storage are digested, scanned, filed and announced by the worker', async () => {
  const big = randomBytes(2 * PART + 12345); // three parts: the digest streams a multipart object
  const small = Array.from({ length: 10 }, (_, i) => [`/inbox/small-${i}.txt`, `small file ${i}\n`.repeat(i + 1)] as [string, string]);
  await upload([...small, ['/inbox/big.bin', big], ['/inbox/eicar.txt', EICAR]]);
  await waitFor('12 jobs done', async () => (await completed()) >= 12, 60_000);
  assert.equal((await queue.getJobCounts('failed')).failed, 0, 'no job failed');

  const objects = await view.objects('homes/');
  for (const [path, data] of [...small, ['/inbox/big.bin', big] as [string, Buffer]]) {
    const name = path.slice('/inbox/'.length);
    const key = `homes/alice/archive/${name}`;
    assert.equal(objects.get(key), Buffer.byteLength(data), `${key} filed whole`);
    assert.equal(await view.sha256(key), sha256(data));
    assert.equal(await view.sha256(`${key}.sha256`), sha256(`${sha256(data)}  ${name}\n`), `${key}.sha256 as sha256sum writes it`);
    assert.equal(await view.sha256(`${key}.md5`), sha256(`${md5(data)}  ${name}\n`));
  }
  const inbox = [...objects.keys()].filter((k) => k.startsWith('homes/alice/inbox/') && k !== 'homes/alice/inbox/');
  assert.deepEqual(inbox, [], 'nothing left in the inbox (sidecars moved along)');

  // Folder markers (keys ending in `/`) aside: the file, its sidecars and the note, in the upload's own folder.
  const quarantined = [...objects.keys()].filter((k) => k.startsWith('homes/.quarantine/') && !k.endsWith('/'));
  const folder = quarantined[0]?.slice(0, quarantined[0].lastIndexOf('/') + 1) ?? 'none';
  assert.match(folder, /^homes\/\.quarantine\/[0-9a-f-]{36}\/$/);
  assert.deepEqual(quarantined.sort(), ['eicar.txt', 'eicar.txt.md5', 'eicar.txt.quarantine.json', 'eicar.txt.sha256'].map((n) => folder + n));
  assert.equal(objects.has('homes/alice/archive/eicar.txt'), false, 'never filed');

  const delivered = receiver.deliveries.map((d) => d.body.data as { path: string; storageKey: string; sha256: string; originalStorageKey: string });
  assert.equal(delivered.length, 11, 'every clean upload announced once, the infected one never');
  const bigDelivery = delivered.find((d) => d.path === '/inbox/big.bin')!;
  assert.equal(bigDelivery.storageKey, 'alice/archive/big.bin');
  assert.equal(bigDelivery.originalStorageKey, 'alice/inbox/big.bin');
  assert.equal(bigDelivery.sha256, sha256(big));
});

test('a name taken in the archive gets the next free name, the same bytes again are not filed twice, a copy leaves the upload', async () => {
  const before = await completed();
  // Same name, other bytes (→ "report (1).csv"), then the first bytes again (→ identical: only removed from the inbox).
  await upload([['/inbox/report.csv', 'first\n']]);
  await waitFor('the first report filed', async () => (await completed()) >= before + 1, 30_000);
  await upload([['/inbox/report.csv', 'second\n']]);
  await waitFor('the second report filed', async () => (await completed()) >= before + 2, 30_000);
  await upload([['/inbox/report.csv', 'first\n'], ['/outbox/invoice.pdf', 'invoice\n']]);
  await waitFor('four more jobs', async () => (await completed()) >= before + 4, 30_000);

  const objects = await view.objects('homes/alice/');
  assert.equal(await view.sha256('homes/alice/archive/report.csv'), sha256('first\n'));
  assert.equal(await view.sha256('homes/alice/archive/report (1).csv'), sha256('second\n'));
  assert.equal(objects.has('homes/alice/archive/report (2).csv'), false, 'identical bytes are not filed again');
  assert.equal(objects.has('homes/alice/inbox/report.csv'), false);
  assert.equal(await view.sha256('homes/alice/sent/invoice.pdf'), sha256('invoice\n'), 'copied');
  assert.equal(await view.sha256('homes/alice/outbox/invoice.pdf'), sha256('invoice\n'), 'and still in the outbox');
  assert.deepEqual(await view.openUploads('homes/'), [], 'no unfinished multipart upload left behind');
});
