// Three replicas on FTP_STORAGE=s3 (one bucket and prefix, a bucket of its own on the process's radosgw, deleted at the
// end) behind HAProxy (round-robin), sharing the cluster's Redis: a file uploaded through one replica is seen by the
// others, and an upload whose replica is SIGKILLed after a complete part is continued through another replica.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { startCluster, type Cluster, type ClusterReplica } from '../support/cluster';
import { downloadFrom, loginFrom, passiveFrom, sha256, uploadFrom } from '../support/clusterClient';
import { sharedRadosgw, type Radosgw } from '../support/radosgw';
import { waitFor } from '../support/rawData';
import { awsCredentialsEnv, bucketView, s3EdgeEnv, type BucketView } from '../support/s3Bucket';

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const HOME = 'homes/alice/';

let rgw: Radosgw;
let bucket: string | undefined;
let view: BucketView;
let cluster: Cluster;

before(async () => {
  rgw = await sharedRadosgw();
  bucket = await rgw.createBucket();
  view = bucketView(rgw, bucket);
  cluster = await startCluster({ balance: 'roundrobin', env: { ...s3EdgeEnv(rgw, bucket, PART), ...awsCredentialsEnv(rgw) } });
});

after(async () => {
  await cluster?.close();
  if (bucket) await rgw.deleteBucket(bucket);
  view?.close();
});

/** The replica that logged alice's login from `source` (HAProxy passes the client's address by PROXY protocol). */
async function replicaOf(source: string): Promise<ClusterReplica> {
  const served = () => cluster.replicas.filter((r) => r.logs.some((l) => l.event === 'login' && l.result === 'success' && l.client === source));
  await waitFor(`the login from ${source} in a replica's log`, () => served().length > 0, 10_000);
  assert.equal(served().length, 1, `one replica served ${source}`);
  return served()[0];
}

const listed = (body: Buffer) =>
  body
    .toString('utf8')
    .split('\r\n')
    .filter(Boolean)
    .map((line) => ({ name: line.split(/\s+/).at(-1)!, line }));

test('S3 cluster: a file uploaded through one replica is listed and downloaded byte-exact through the others', { timeout: 60_000 }, async () => {
  const payload = randomBytes(PART + 1_234_567);
  const up = await loginFrom(cluster, '127.0.0.81');
  let uploader: ClusterReplica;
  try {
    await uploadFrom(up, '127.0.0.81', 'STOR shared.bin', payload);
    uploader = await replicaOf('127.0.0.81');
  } finally {
    up.close();
  }
  assert.equal(await view.sha256(`${HOME}shared.bin`), sha256(payload));

  // Round-robin: consecutive sessions go to the next replica; keep going until both others served one.
  const readers = new Set<string>();
  for (let i = 0; i < 6 && readers.size < 2; i++) {
    const source = `127.0.0.${82 + i}`;
    const client = await loginFrom(cluster, source);
    try {
      const replica = await replicaOf(source);
      const entry = listed(await downloadFrom(client, source, 'LIST')).find((e) => e.name === 'shared.bin');
      assert.ok(entry && entry.line.includes(` ${payload.length} `), `${replica.id} lists shared.bin with its size: ${entry?.line}`);
      assert.equal(sha256(await downloadFrom(client, source, 'RETR shared.bin')), sha256(payload), `${replica.id} serves it byte-exact`);
      if (replica.id !== uploader.id) readers.add(replica.id);
    } finally {
      client.close();
    }
  }
  assert.equal(readers.size, 2, `both other replicas served it (uploaded via ${uploader.id}, read via ${[...readers].join(', ')})`);
});

test('S3 cluster: an upload whose replica is SIGKILLed after a complete part resumes through another (SIZE, REST, STOR)', { timeout: 90_000 }, async () => {
  const payload = randomBytes(2 * PART + 3 * MiB + 4321);
  const key = `${HOME}killed.bin`;
  const source = '127.0.0.91';
  const first = await loginFrom(cluster, source);
  const victim = await replicaOf(source);
  let data: Socket | undefined;
  try {
    data = await passiveFrom(first, source);
    const opening = await first.command('STOR killed.bin', 10_000);
    assert.equal(opening.code, 150, opening.text);
    // More than one part, less than two: the second part is still in the replica's memory when it dies.
    data.write(payload.subarray(0, PART + 3 * MiB));
    await waitFor('a complete part in the store', async () => (await view.partsOf(key)) >= 1, 30_000);
    const exit = await victim.kill('SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
  } finally {
    data?.destroy();
    first.close();
  }
  await cluster.haproxy.waitServer(victim.id, 'DOWN', 15_000);
  assert.equal((await view.objects(key)).size, 0, 'nothing published');

  const again = '127.0.0.92';
  const client = await loginFrom(cluster, again);
  try {
    const resumer = await replicaOf(again);
    assert.notEqual(resumer.id, victim.id);
    const size = await client.command('SIZE killed.bin', 10_000);
    assert.equal(size.code, 213, size.text);
    const offset = Number(size.text);
    assert.equal(offset, PART, 'SIZE reports the complete part the dead replica left');
    assert.equal((await client.command(`REST ${offset}`, 10_000)).code, 350);
    await uploadFrom(client, again, 'STOR killed.bin', payload.subarray(offset));
  } finally {
    client.close();
  }
  assert.deepEqual([...(await view.objects(key))], [[key, payload.length]], 'exactly one object');
  assert.equal(await view.sha256(key), sha256(payload), 'byte-exact');
  assert.deepEqual(await view.openUploads(key), [], 'no multipart upload left');
  assert.ok(
    cluster.replicas.every((r) => r === victim || r.running),
    'only the killed replica is down',
  );
});
