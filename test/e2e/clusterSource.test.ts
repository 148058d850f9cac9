import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createRedisClusterState } from '@ftp/cluster-state';
import { queuePrefix, UPLOAD_QUEUE } from '@ftp/upload-events';
import { startCluster, type Cluster, type ClusterReplica } from '../support/cluster';
import {
  clusterCounter,
  downloadFrom,
  loginFrom,
  passiveFrom,
  sha256,
  uploadAndDownloadConcurrently,
  uploadFrom,
} from '../support/clusterClient';
import { RawClient } from '../support/rawClient';
import { makeTempDir, removeTempDir } from '../support/processes';
import { readAll, sleep, waitFor, writeData } from '../support/rawData';

// Three replicas behind HAProxy with source-address affinity: a client's control and data connections reach the
// same replica, so nothing needs relaying. The same cluster then loses a replica (SIGKILL) and Redis (restart).
// Leases live FTP_IDLE_TIMEOUT + FTP_DATA_CONNECT_TIMEOUT = 8 s here, so a dead replica's leases expire quickly.
// The replicas share one outbox journal, as they share /data in Compose and Kubernetes.
let cluster: Cluster;
const outboxDir = makeTempDir('ftp-outbox-');

before(async () => {
  cluster = await startCluster({
    balance: 'source',
    pasvPorts: 4,
    env: { FTP_IDLE_TIMEOUT: '6', FTP_DATA_CONNECT_TIMEOUT: '2', FTP_OUTBOX_DIR: outboxDir },
  });
});
after(async () => {
  await cluster?.close();
  removeTempDir(outboxDir);
});

/** The replica that logged this client address in. */
async function replicaOf(source: string): Promise<ClusterReplica> {
  let found: ClusterReplica | undefined;
  await waitFor(`the replica serving ${source}`, () => {
    found = cluster.replicas.find((r) => r.logs.some((l) => l.event === 'login' && l.client === source && l.result === 'success'));
    return found !== undefined;
  });
  return found!;
}

test('source affinity: 200 concurrent clients from 50 addresses on 4 passive ports, byte-exact, nothing relayed', async (t) => {
  const started = Date.now();
  const results = await uploadAndDownloadConcurrently(cluster, { clients: 200, perAddress: 4, firstHost: 100, prefix: 'src' });
  for (const r of results) assert.equal(r.received, r.sent, `${r.name} came back byte-exact`);
  assert.equal(await clusterCounter(cluster, 'ftp_relayed_data_connections_total', 'side="sent"'), 0);
  t.diagnostic(`200 clients, 400 transfers in ${Date.now() - started} ms; none relayed`);
});

test('SIGKILL mid-upload: the client resumes through the balancer on another replica, byte-exact; dead leases expire and are reused', async (t) => {
  const source = '127.0.0.22';
  const payload = randomBytes(24 * 1024 * 1024);
  const client = await loginFrom(cluster, source);
  const victim = await replicaOf(source);

  const data = await passiveFrom(client, source);
  assert.equal((await client.command('STOR big.bin')).code, 150);
  await writeData(data, payload.subarray(0, 8 * 1024 * 1024));
  const partial = join(cluster.dataDir, 'alice', '.big.bin.ftp-partial');
  await waitFor('half the upload on disk', () => statSync(partial, { throwIfNoEntry: false })?.size === 8 * 1024 * 1024, 10_000);

  // Four more sessions of this address on the same replica take every passive port for it, then the replica dies.
  const holders = await Promise.all(Array.from({ length: 4 }, () => loginFrom(cluster, source)));
  for (const holder of holders) assert.equal((await holder.command('PASV')).code, 227);
  await victim.kill('SIGKILL');
  await client.waitClosed(10_000);
  for (const holder of holders) holder.close();
  data.destroy();

  const again = await loginFrom(cluster, source);
  // Log lines reach the test through a pipe, some time after the reply: wait for the rescuer's.
  await waitFor('the new session on a live replica', () =>
    cluster.replicas.some((r) => r !== victim && r.running && r.logs.some((l) => l.event === 'login' && l.client === source)),
  );
  const size = await again.command('SIZE big.bin');
  assert.equal(size.code, 213, 'SIZE reports the partial upload');
  const offset = Number(size.text);
  assert.equal(offset, 8 * 1024 * 1024 - 1, 'where a resume continues: one byte short of the partial');

  assert.equal((await again.command('PASV')).code, 425, "the dead replica's leases still hold every port for this address");
  const killedAt = Date.now();
  await waitFor('a passive port after the dead leases expire', async () => (await again.command('PASV')).code === 227, 20_000);
  const waited = Date.now() - killedAt;
  assert.ok(waited < 15_000, `ports reused ${waited} ms after the kill`);
  t.diagnostic(`dead replica's ports reused ${waited} ms after the kill`);

  assert.equal((await again.command(`REST ${offset}`)).code, 350);
  await uploadFrom(again, source, 'STOR big.bin', payload.subarray(offset));
  assert.equal(sha256(readFileSync(join(cluster.dataDir, 'alice', 'big.bin'))), sha256(payload), 'resumed upload is byte-exact');
  again.close();
  await victim.restart();
});

test('Redis restarted mid-run: a running download completes, new logins are refused, service returns by itself', async (t) => {
  const source = '127.0.0.23';
  const payload = randomBytes(16 * 1024 * 1024);
  const client = await loginFrom(cluster, source);
  await uploadFrom(client, source, 'STOR during-outage.bin', payload);

  // A download under way: the client reads nothing until Redis is gone.
  const data = await passiveFrom(client, source);
  data.pause();
  assert.equal((await client.command('RETR during-outage.bin')).code, 150);
  await sleep(200);

  await cluster.redis.stop();
  for (const replica of cluster.replicas) {
    await waitFor(`${replica.id} not ready`, async () => (await fetch(`http://${replica.address}:${replica.adminPort}/readyz`)).status === 503);
  }
  const refused = await RawClient.connect(cluster.port, cluster.host, '127.0.0.24').then(
    async (c) => {
      const reply = await c.reply(5000).catch(() => ({ code: 0, text: 'closed' }));
      c.close();
      return reply.code;
    },
    () => 0,
  );
  assert.ok(refused === 421 || refused === 0, `a new session is refused (421 or closed by the balancer), got ${refused}`);

  const body = readAll(data);
  data.resume();
  assert.equal((await client.reply(30_000)).code, 226, 'the transfer in flight completes');
  assert.equal(sha256(await body), sha256(payload));
  client.close();

  await cluster.redis.start();
  const restarted = Date.now();
  let back: RawClient | undefined;
  await waitFor(
    'a login after Redis is back',
    async () => {
      back = await loginFrom(cluster, '127.0.0.24').catch(() => undefined);
      return back !== undefined;
    },
    20_000,
  );
  assert.ok(Date.now() - restarted < 15_000, `service back ${Date.now() - restarted} ms after Redis`);
  t.diagnostic(`logins work again ${Date.now() - restarted} ms after Redis restarted`);
  assert.deepEqual(await downloadFrom(back!, '127.0.0.24', 'RETR during-outage.bin').then(sha256), sha256(payload));
  back!.close();
  assert.ok(cluster.replicas.every((r) => r.running), 'no replica crashed');
  await waitFor('the outage in the logs', () => cluster.replicas.some((r) => r.logs.some((l) => String(l.msg).startsWith('Redis unreachable'))));
});

test('SIGTERM drains: the running transfer finishes, an idle session gets 421, its lease is released, exit code 0', async () => {
  const source = '127.0.0.25';
  const payload = randomBytes(8 * 1024 * 1024);
  // After the Redis outage HAProxy brings replicas back one check at a time; with one still DOWN, source hashing
  // would send the two sessions below to different replicas.
  for (const r of cluster.replicas) await cluster.haproxy.waitServer(r.id, 'UP');
  const busy = await loginFrom(cluster, source);
  await uploadFrom(busy, source, 'STOR drain.bin', payload);
  const replica = await replicaOf(source);
  const idle = await loginFrom(cluster, source);
  assert.equal((await idle.command('PASV')).code, 227);
  await waitFor('both sessions logged in on one replica', () => replica.logs.filter((l) => l.event === 'login' && l.client === source && l.result === 'success').length === 2);

  const data = await passiveFrom(busy, source);
  data.pause();
  assert.equal((await busy.command('RETR drain.bin')).code, 150);
  const stopping = replica.kill('SIGTERM');
  const goodbye = await idle.reply(5000);
  assert.equal(goodbye.code, 421, 'the idle session is told to reconnect');

  const body = readAll(data);
  data.resume();
  assert.equal((await busy.reply(10_000)).code, 226);
  assert.equal(sha256(await body), sha256(payload));
  assert.deepEqual(await stopping, { code: 0, signal: null });

  const state = await createRedisClusterState({ url: cluster.redis.url, prefix: cluster.redisPrefix, pasvRange: cluster.pasvRange });
  try {
    for (let port = cluster.pasvRange.min; port <= cluster.pasvRange.max; port++) {
      assert.equal(await state.ports.find(port, source), null, `no lease left on ${port}`);
    }
    assert.ok(!(await state.sessions.list()).some((s) => s.replicaId === replica.id), 'no session record left');
  } finally {
    await state.close();
  }
  busy.close();
  idle.close();
  await replica.restart();
});

test('Redis gone as an upload ends: the 226 comes once the event is journaled; SIGKILL, restart: the event reaches the queue', async () => {
  const source = '127.0.0.26';
  const payload = randomBytes(2 * 1024 * 1024);
  const client = await loginFrom(cluster, source);
  const replica = await replicaOf(source);
  const data = await passiveFrom(client, source);
  assert.equal((await client.command('STOR journaled.bin')).code, 150);
  await writeData(data, payload.subarray(0, 1024 * 1024));

  await cluster.redis.stop();
  data.end(payload.subarray(1024 * 1024));
  assert.equal((await client.reply(30_000)).code, 226, 'the upload completes while Redis is away');
  const journaled = readdirSync(outboxDir);
  assert.equal(journaled.length, 1, 'the deferred event was on disk before the 226');
  const onDisk = JSON.parse(readFileSync(join(outboxDir, journaled[0]), 'utf8')) as { name: string; data: { path: string; size: number } };
  assert.equal(onDisk.name, 'upload.completed');
  assert.equal(onDisk.data.path, '/journaled.bin');
  assert.equal(onDisk.data.size, payload.length);
  client.close();

  // The replica dies before Redis returns: its in-memory outbox is gone, the journal is not.
  assert.equal((await replica.kill('SIGKILL')).signal, 'SIGKILL');
  await cluster.redis.start();
  await replica.restart();

  const reader = new Queue(UPLOAD_QUEUE, { connection: new Redis(cluster.redis.url), prefix: queuePrefix(cluster.redisPrefix) });
  try {
    await waitFor('the journaled event on the queue', async () => (await reader.getJobs(['wait', 'active', 'completed'])).length === 1, 20_000);
    const [job] = await reader.getJobs(['wait', 'active', 'completed']);
    assert.equal(job.name, 'upload.completed');
    assert.equal(job.data.path, '/journaled.bin');
    assert.equal(job.data.size, payload.length);
    await waitFor('the journal emptied', () => readdirSync(outboxDir).length === 0);
  } finally {
    await reader.close();
    await (reader.opts.connection as Redis).quit();
  }
  assert.ok(replica.logs.some((l) => l.recovered === 1), 'the restarted replica says it recovered the event');
});
