// Credentials that stop working take an edge and a worker on FTP_STORAGE=s3 out of service: both /readyz answer 503
// until the store takes the credentials again. Both run in this process on a radosgw user of their own (credentials
// from the environment, as in production), whose key is removed and restored with radosgw-admin. Default probe period
// (15 s): this test waits for it.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { createLogger } from '@ftp/telemetry';
import { loadWorkerConfig } from '../../services/worker/src/config';
import { startWorker, type RunningWorker } from '../../services/worker/src/worker';
import { freeBlock } from '../support/processes';
import { radosgwClientConfig, sharedRadosgw, type S3User } from '../support/radosgw';
import { passiveDownload, rawLogin } from '../support/rawData';
import { deleteKeysUnder } from '../support/redisKeys';
import { s3EdgeEnv } from '../support/s3Bucket';
import { startTestServer, type TestServer } from '../support/server';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:s3-health:${randomUUID()}:`;
/** The edge's and the worker's probe period (health.ts), and slack for a busy machine. */
const PROBE_MS = 15_000;
const SLACK_MS = 5_000;

let user: S3User | undefined;
let server: TestServer | undefined;
let worker: RunningWorker | undefined;
const workerLogs: Record<string, unknown>[] = [];

before(async () => {
  const rgw = await sharedRadosgw();
  user = await rgw.createUser();
  const bucket = `health-e2e-${Date.now().toString(36)}`;
  const own = new S3Client({ ...radosgwClientConfig(rgw), credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey } });
  await own.send(new CreateBucketCommand({ Bucket: bucket }));
  own.destroy();
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: user.accessKeyId, AWS_SECRET_ACCESS_KEY: user.secretAccessKey });
  const storageEnv = s3EdgeEnv(rgw, bucket, 5 * 1024 * 1024);
  server = await startTestServer({ env: { ...storageEnv, FTP_ADMIN_PORT: String(await freeBlock(1, ['127.0.0.1'])) } });
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) workerLogs.push(JSON.parse(line));
      done();
    },
  });
  worker = await startWorker(
    loadWorkerConfig({ ...storageEnv, REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_DATA_DIR: server.dataDir, WORKER_ADMIN_PORT: String(await freeBlock(1, ['127.0.0.1'])) }),
    createLogger({ level: 'info', destination: sink }),
  );
});

after(async () => {
  await worker?.close();
  await server?.close();
  const admin = new Redis(REDIS_URL);
  await deleteKeysUnder(admin, prefix);
  await admin.quit();
  await user?.remove(); // its bucket too
});

const readyz = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: await res.text() };
};
const edgeReady = () => readyz(server!.edge.adminPort);
const workerReady = () => readyz(worker!.adminPort);

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Date.now() - started;
}

const storageLines = (logs: Record<string, unknown>[]) => logs.filter((l) => typeof l.msg === 'string' && /^object storage (refuses|takes|answers|does not|unreachable)/.test(l.msg));

test('a removed key makes the edge and the worker unready (logged once each), its return makes them ready again', { timeout: 120_000 }, async (t) => {
  assert.equal((await edgeReady()).status, 200);
  assert.match((await edgeReady()).body, /^object storage: S3 bucket health-e2e-\w+: ok$/m);
  assert.equal((await workerReady()).status, 200);

  await user!.removeKey();
  const removed = Date.now();
  // A session's request that the store refuses has the edge probe at once; the worker finds it at its next probe.
  const client = await rawLogin(server!);
  try {
    const list = await passiveDownload(client, 'LIST').catch((err: Error) => ({ error: err.message }));
    t.diagnostic(`LIST while the key is gone: ${JSON.stringify('final' in list ? list.final : list)}`);
    const edgeDown = await until('edge not ready', async () => (await edgeReady()).status === 503, 5_000);
    t.diagnostic(`edge not ready ${Date.now() - removed} ms after the key was removed (${edgeDown} ms after the refused LIST)`);
    assert.match((await edgeReady()).body, /^object storage: S3 bucket \S+: refused \(InvalidAccessKeyId\) since/m);
  } finally {
    client.close();
  }
  await until('worker not ready', async () => (await workerReady()).status === 503, PROBE_MS + SLACK_MS);
  t.diagnostic(`worker not ready ${Date.now() - removed} ms after the key was removed`);

  // Another probe period: still not ready, and still one line each.
  await new Promise((resolve) => setTimeout(resolve, PROBE_MS));
  assert.equal((await edgeReady()).status, 503);
  assert.equal((await workerReady()).status, 503);
  for (const [name, logs] of [['edge', server!.logs], ['worker', workerLogs]] as const) {
    const lines = storageLines(logs);
    assert.deepEqual(
      lines.map((l) => [l.level, l.cause]),
      [[50, 'InvalidAccessKeyId']],
      `${name}: one error line naming the cause: ${JSON.stringify(lines)}`,
    );
    const text = JSON.stringify(logs);
    assert.ok(!text.includes(user!.accessKeyId) && !text.includes(user!.secretAccessKey), `${name}: the key is not in the log`);
  }

  await user!.restoreKey();
  const restored = Date.now();
  await until('edge ready again', async () => (await edgeReady()).status === 200, PROBE_MS + SLACK_MS);
  await until('worker ready again', async () => (await workerReady()).status === 200, PROBE_MS + SLACK_MS);
  t.diagnostic(`both ready ${Date.now() - restored} ms after the key came back`);
  for (const [name, logs] of [['edge', server!.logs], ['worker', workerLogs]] as const) {
    assert.deepEqual(
      storageLines(logs).map((l) => [l.level, l.msg]),
      [
        [50, storageLines(logs)[0].msg],
        [30, "object storage takes this process's credentials again: ready"],
      ],
      name,
    );
  }
  assert.match((await edgeReady()).body, /^object storage: S3 bucket \S+: ok$/m);
});
