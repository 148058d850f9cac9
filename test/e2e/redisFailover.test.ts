// Redis without a single point of failure: two edges behind HAProxy and a worker on a Redis Sentinel group (a
// primary, a replica, three sentinels: test/support/sentinel.ts). Partners keep logging in and uploading while the
// primary is SIGKILLed. Afterwards: every upload that got its 226 is on disk byte-exact and was processed exactly
// once (one webhook delivery each), the edges stayed in HAProxy's rotation, and logins resumed within the failover.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Client } from 'basic-ftp';
import { startCluster, type Cluster } from '../support/cluster';
import { waitFor } from '../support/rawData';
import { startSentinelGroup, type SentinelGroup } from '../support/sentinel';
import { startWebhookReceiver, startWorkerProcess, type WorkerProcess } from '../support/workers';

const CLIENTS = 4;
const RUN_MS = 14_000;
const KILL_AT_MS = 4000;

let group: SentinelGroup;
let cluster: Cluster;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let worker: WorkerProcess | undefined;

before(async () => {
  group = await startSentinelGroup({ downAfterMs: 1000 });
  receiver = await startWebhookReceiver();
  cluster = await startCluster({ replicas: 2, redisUrl: group.url, env: { FTP_UPLOAD_SHA256: 'true' } });
  const pipelines = join(cluster.dataDir, '..', 'pipelines.yaml');
  writeFileSync(pipelines, `pipelines:\n  - name: all\n    steps:\n      - checksum: {}\n      - webhook: { url: '${receiver.url}', secret_env: WEBHOOK_SECRET, attempts: 5, backoff_ms: 100 }\n`);
  worker = startWorkerProcess({
    REDIS_URL: group.url,
    FTP_REDIS_PREFIX: cluster.redisPrefix,
    FTP_DATA_DIR: cluster.dataDir,
    WORKER_PIPELINES: pipelines,
    WORKER_ADMIN_PORT: '0',
    WORKER_LOCK_MS: '2000',
    WEBHOOK_SECRET: 'test-secret',
  });
});

after(async () => {
  await worker?.kill('SIGKILL');
  await cluster?.close();
  await receiver?.close();
  await group?.close();
});

interface Attempt {
  started: number;
  ended: number;
  name: string;
  sha256: string;
  /** 'ok' = logged in and got the 226; else where it failed. */
  outcome: 'ok' | 'login' | 'upload';
  error?: string;
}

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

/** One partner session: log in, upload one file, leave. */
async function partnerSession(name: string): Promise<Attempt> {
  const data = `${name}\n`.repeat(200);
  const attempt: Attempt = { started: Date.now(), ended: 0, name, sha256: sha256(data), outcome: 'login' };
  const client = new Client(20_000);
  try {
    await client.access({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password });
    attempt.outcome = 'upload';
    await client.uploadFrom(Readable.from([data]), name);
    attempt.outcome = 'ok';
  } catch (err) {
    attempt.error = (err as Error).message;
  } finally {
    client.close();
    attempt.ended = Date.now();
  }
  return attempt;
}

test('the Redis primary killed under logins and uploads: nothing acknowledged is lost or processed twice', async (t) => {
  const started = Date.now();
  const attempts: Attempt[] = [];
  let killedAt = 0;
  let promotedAt = 0;
  const killer = (async () => {
    await new Promise((resolve) => setTimeout(resolve, KILL_AT_MS));
    const old = await group.killPrimary();
    killedAt = Date.now();
    await group.waitForNewPrimary(old);
    promotedAt = Date.now();
  })();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      for (let i = 0; Date.now() - started < RUN_MS && i < 1000; i++) attempts.push(await partnerSession(`c${c}-${i}.txt`));
    }),
  );
  await killer;

  const acknowledged = attempts.filter((a) => a.outcome === 'ok');
  const failed = attempts.filter((a) => a.outcome !== 'ok');
  const around = attempts.filter((a) => a.ended >= killedAt);
  const slowest = Math.max(...around.map((a) => a.ended - a.started));
  const firstOkAfter = Math.min(...acknowledged.filter((a) => a.started >= killedAt).map((a) => a.ended));
  t.diagnostic(
    `${attempts.length} sessions, ${acknowledged.length} acknowledged, ${failed.length} failed; primary promoted ${promotedAt - killedAt} ms after the kill; ` +
      `first upload begun after the kill acknowledged ${firstOkAfter - killedAt} ms after it; slowest session ending after the kill ${slowest} ms`,
  );
  for (const f of failed) t.diagnostic(`failed ${f.name} at ${f.outcome} (+${f.ended - killedAt} ms from the kill): ${f.error}`);
  assert.ok(acknowledged.length > 20, 'uploads went on');
  assert.ok(acknowledged.some((a) => a.started > promotedAt), 'uploads after the failover');
  assert.ok(failed.length <= CLIENTS, `only sessions in flight at the moment of the kill may fail (${failed.length})`);

  // Every acknowledged upload is on disk byte-exact and processed exactly once.
  for (const a of acknowledged) assert.equal(sha256(readFileSync(join(cluster.dataDir, 'alice', a.name), 'utf8')), a.sha256, a.name);
  const delivered = (name: string) => receiver.deliveries.filter((d) => d.status === 200 && (d.body.data as { path: string }).path === `/${name}`).length;
  await waitFor('a delivery for every acknowledged upload', () => acknowledged.every((a) => delivered(a.name) >= 1), 30_000).catch((err: Error) => {
    const missing = acknowledged.filter((a) => delivered(a.name) === 0);
    t.diagnostic(`missing ${missing.length}: ${missing.slice(0, 5).map((a) => `${a.name} +${a.ended - killedAt}`).join(', ')}`);
    for (const l of worker!.logs.slice(-15)) t.diagnostic(`worker: ${JSON.stringify(l).slice(0, 300)}`);
    for (const r of cluster.replicas) for (const l of r.logs.filter((x) => /event|outbox|Redis/i.test(String(x.msg))).slice(-8)) t.diagnostic(`${r.id}: ${JSON.stringify(l).slice(0, 300)}`);
    throw err;
  });
  await new Promise((resolve) => setTimeout(resolve, 2000)); // a duplicate would come now
  const twice = acknowledged.filter((a) => delivered(a.name) > 1).map((a) => a.name);
  assert.deepEqual(twice, [], 'no upload processed twice');
  const successes = receiver.successes();
  assert.ok([...successes.values()].every((n) => n === 1), 'no delivery id succeeded twice');

  // The failover did not take the edges out of HAProxy's rotation (their readiness tolerates it).
  const servers = (await cluster.haproxy.servers()).filter((s) => s.backend === 'ftp_control' && ['edge-1', 'edge-2'].includes(s.server));
  assert.deepEqual(servers.map((s) => s.status), ['UP', 'UP']);
  const flapped = cluster.replicas.flatMap((r) => r.logs.filter((l) => /readyz|unready/i.test(String(l.msg ?? ''))));
  t.diagnostic(`edge log lines about readiness: ${flapped.length}`);
});
