import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import ssh2, { type Client as SshClient, type ServerHostKeyAlgorithm, type SFTPWrapper, type Stats } from 'ssh2';
import { createRedisClusterState, type ClusterState } from '@ftp/cluster-state';
import { partialNameFor } from '@ftp/storage';
import { JOB_UPLOAD_COMPLETED, queuePrefix, UPLOAD_QUEUE, type UploadEvent } from '@ftp/upload-events';
import { sshFingerprint, startCluster, type Cluster, type ClusterReplica } from '../support/cluster';
import { findBinary } from '../support/processes';
import { sleep, waitFor } from '../support/rawData';

// Three replicas behind HAProxy's SFTP frontend, round-robin: every SSH connection lands on the next replica, each
// behind a PROXY v2 header. All replicas present the host keys the cluster generated once, share one Redis (session
// registry, upload queue) and one data folder, so an upload broken on one replica is resumed on another.
let cluster: Cluster;
let redis: Redis;
let queue: Queue<UploadEvent>;
let state: ClusterState;

/** Generous: a loaded 2-core machine runs three edges, HAProxy, Redis and this file (and maybe another cluster). */
const WAIT_MS = 30_000;

before(async () => {
  cluster = await startCluster({ balance: 'roundrobin', pasvPorts: 4, startTimeoutMs: 120_000 });
  redis = new Redis(cluster.redis.url);
  // skipMetasUpdate: a reader only, it writes nothing into the edges' queue.
  queue = new Queue<UploadEvent>(UPLOAD_QUEUE, { connection: redis, prefix: queuePrefix(cluster.redisPrefix), skipMetasUpdate: true });
  state = await createRedisClusterState({ url: cluster.redis.url, prefix: cluster.redisPrefix, pasvRange: cluster.pasvRange });
});

after(async () => {
  await state?.close().catch(() => undefined);
  await queue?.close().catch(() => undefined);
  await redis?.quit().catch(() => undefined);
  // Its own redis-server (nothing saved) and temp folder: closing the cluster removes every key and file of this run.
  await cluster?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// An ssh2 client through the balancer, from its own loopback address (HAProxy itself talks to the edges from 127.0.0.1).

let lastHost = 100;
/** A client address of its own for each connection, so the replica that served it is found by its logs. */
const nextSource = () => {
  assert.ok(lastHost < 254, 'out of client addresses');
  return `127.0.0.${++lastHost}`;
};

interface SftpConnection {
  source: string;
  client: SshClient;
  sftp: SFTPWrapper;
  /** The host key blob the server presented. */
  hostKey: Buffer;
  closed: Promise<void>;
}

function connectSftp(source: string, serverHostKey?: ServerHostKeyAlgorithm[]): Promise<SftpConnection> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let hostKey: Buffer | undefined;
    const closed = new Promise<void>((done) => client.once('close', () => done()));
    const fail = (err: Error) => {
      clearTimeout(timer);
      client.destroy();
      reject(new Error(`SFTP from ${source} through 127.0.0.1:${cluster.sftpPort}: ${err.message}`));
    };
    const timer = setTimeout(() => fail(new Error(`not ready within ${WAIT_MS} ms`)), WAIT_MS);
    // Stays attached: a reset after the test ended the connection must not become an unhandled 'error'.
    client.on('error', fail);
    client.on('ready', () =>
      client.sftp((err, sftp) => {
        if (err) return fail(err);
        clearTimeout(timer);
        resolve({ source, client, sftp, hostKey: hostKey!, closed });
      }),
    );
    client.connect({
      host: cluster.host,
      port: cluster.sftpPort,
      localAddress: source,
      username: cluster.user,
      password: cluster.password,
      readyTimeout: WAIT_MS,
      hostVerifier: (key: Buffer) => {
        hostKey = key;
        return true;
      },
      ...(serverHostKey ? { algorithms: { serverHostKey } } : {}),
    });
  });
}

/** Ends the SSH connection cleanly and waits until the socket is closed. */
async function closeSftp(conn: SftpConnection) {
  conn.client.end();
  await conn.closed;
}

const call = <T>(run: (cb: (err: Error | null | undefined, value: T) => void) => void) =>
  new Promise<T>((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value))));

const openFile = (sftp: SFTPWrapper, path: string, flags: number) => call<Buffer>((cb) => sftp.open(path, flags, cb));
const closeFile = (sftp: SFTPWrapper, handle: Buffer) => call<void>((cb) => sftp.close(handle, (err) => cb(err, undefined)));
const statPath = (sftp: SFTPWrapper, path: string) => call<Stats>((cb) => sftp.stat(path, cb));

/** WRITEs of `data` from `position`, 32 KiB each, eight in flight; resolves when the server acknowledged every one. */
async function writeAll(sftp: SFTPWrapper, handle: Buffer, data: Buffer, position: number) {
  const chunk = 32 * 1024;
  const offsets = Array.from({ length: Math.ceil(data.length / chunk) }, (_, i) => i * chunk);
  for (let i = 0; i < offsets.length; i += 8) {
    await Promise.all(
      offsets.slice(i, i + 8).map((offset) => {
        const part = data.subarray(offset, offset + chunk);
        return call<void>((cb) => sftp.write(handle, part, 0, part.length, position + offset, (err) => cb(err, undefined)));
      }),
    );
  }
}

// SSH_FXF_* (draft-ietf-secsh-filexfer-02): WRITE|CREAT|TRUNC, WRITE alone (keeps the bytes), WRITE|CREAT|APPEND (reput).
const OPEN_WRITE_TRUNC = 0x02 | 0x08 | 0x10;
const OPEN_WRITE_KEEP = 0x02;
const OPEN_APPEND = 0x02 | 0x08 | 0x04;

// ---------------------------------------------------------------------------------------------------------------
// What the replicas logged.

interface Served {
  replica: ClusterReplica;
  /** The session id the edge gave the connection (its log lines' `session`, the registry record's id). */
  session: string;
}

/** The replica that logged the SFTP login of `source`: the address from HAProxy's PROXY v2 header, not HAProxy's own. */
async function servedBy(source: string): Promise<Served> {
  let found: Served | undefined;
  await waitFor(
    `an SFTP login from ${source} in a replica's log`,
    () => {
      for (const replica of cluster.replicas) {
        const line = replica.logs.find((l) => l.event === 'login' && l.result === 'success' && l.protocol === 'sftp' && l.client === source);
        if (line) found = { replica, session: String(line.session) };
      }
      return found !== undefined;
    },
    WAIT_MS,
  );
  return found!;
}

/**
 * A connection served by a replica not in `avoid`. Round-robin makes the first try the right one; a replica that a
 * slow health check took out for a moment only costs another try.
 */
async function connectElsewhere(avoid: string[]): Promise<{ conn: SftpConnection; served: Served }> {
  for (let attempt = 1; ; attempt++) {
    const conn = await connectSftp(nextSource());
    const served = await servedBy(conn.source);
    if (!avoid.includes(served.replica.id) || attempt >= 6) return { conn, served };
    await closeSftp(conn);
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Every `upload.completed` job for `path`, in whatever state (no worker runs here, so they stay waiting). */
async function completedJobs(path: string): Promise<Job<UploadEvent>[]> {
  const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed']);
  return jobs.filter((j) => j.name === JOB_UPLOAD_COMPLETED && j.data.path === path);
}

/** Exactly one job for `path`, still one after a while (a duplicate publish would come right after the first). */
async function theOneJob(path: string): Promise<UploadEvent> {
  await waitFor(`the upload.completed job of ${path}`, async () => (await completedJobs(path)).length > 0, WAIT_MS);
  await sleep(1000);
  const jobs = await completedJobs(path);
  assert.equal(jobs.length, 1, `exactly one upload.completed job for ${path}: ${JSON.stringify(jobs.map((j) => j.data))}`);
  assert.equal(jobs[0].id, jobs[0].data.uploadId, 'the job id is the upload id');
  return jobs[0].data;
}

// ---------------------------------------------------------------------------------------------------------------

test('every replica presents the same host keys through the balancer (ed25519 and RSA), seen from the real client address', async (t) => {
  const expected = Object.fromEntries(cluster.sftpHostKeys.map((k) => [k.type, k.fingerprint]));
  assert.ok(expected['ssh-ed25519'] && expected['ssh-rsa'], `the cluster made both keys: ${JSON.stringify(expected)}`);
  const algorithms: [ServerHostKeyAlgorithm, string][] = [
    ['ssh-ed25519', 'ssh-ed25519'],
    ['rsa-sha2-512', 'ssh-rsa'],
    ['rsa-sha2-256', 'ssh-rsa'],
  ];
  for (const [algorithm, keyType] of algorithms) {
    const seen: { replica: string; fingerprint: string }[] = [];
    const started = Date.now();
    // Round-robin: three connections in a row go to three replicas; a replica briefly out (a slow health check on a
    // loaded machine) is reached by a later one.
    const replicas = () => new Set(seen.map((s) => s.replica)).size;
    for (let i = 0; i < 6 || (replicas() < 3 && i < 15); i++) {
      const source = nextSource();
      const conn = await connectSftp(source, [algorithm]);
      try {
        const { replica } = await servedBy(source);
        seen.push({ replica: replica.id, fingerprint: sshFingerprint(conn.hostKey) });
      } finally {
        await closeSftp(conn);
      }
    }
    t.diagnostic(`${algorithm}: ${seen.map((s) => s.replica).join(' ')} in ${Date.now() - started} ms`);
    assert.deepEqual([...new Set(seen.map((s) => s.replica))].sort(), ['edge-1', 'edge-2', 'edge-3'], `${algorithm}: round-robin reached every replica`);
    for (const s of seen) assert.equal(s.fingerprint, expected[keyType], `${algorithm} host key of ${s.replica}`);
  }
});

test('OpenSSH ssh-keyscan through the balancer sees the cluster\'s host keys', async (t) => {
  let keyscan: string;
  try {
    keyscan = findBinary('ssh-keyscan', 'apt-get install -y openssh-client');
  } catch (err) {
    return t.skip((err as Error).message);
  }
  const expected = cluster.sftpHostKeys.map((k) => `${k.type} ${k.fingerprint}`).sort();
  // Three rounds: whichever replicas they land on, the keys are the same.
  for (let round = 0; round < 3; round++) {
    const { stdout } = await promisify(execFile)(keyscan, ['-T', '20', '-p', String(cluster.sftpPort), '-t', 'ed25519,rsa', cluster.host], { timeout: WAIT_MS });
    const found = stdout
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => {
        const [, type, base64] = line.split(' ');
        return `${type} ${sshFingerprint(Buffer.from(base64, 'base64'))}`;
      })
      .sort();
    assert.deepEqual(found, expected, `round ${round}: ${stdout}`);
  }
});

test('an SFTP upload through the balancer: the file byte-exact and exactly one upload.completed job, protocol sftp', async () => {
  const source = nextSource();
  const payload = randomBytes(300_001);
  const conn = await connectSftp(source);
  let served: Served;
  try {
    served = await servedBy(source);
    const handle = await openFile(conn.sftp, '/through-lb.bin', OPEN_WRITE_TRUNC);
    await writeAll(conn.sftp, handle, payload, 0);
    assert.equal((await completedJobs('/through-lb.bin')).length, 0, 'nothing is announced before CLOSE');
    await closeFile(conn.sftp, handle);
  } finally {
    await closeSftp(conn);
  }
  const file = join(cluster.dataDir, 'alice', 'through-lb.bin');
  assert.equal(sha256(readFileSync(file)), sha256(payload), 'stored byte-exact');
  const event = await theOneJob('/through-lb.bin');
  assert.equal(event.protocol, 'sftp');
  assert.equal(event.size, payload.length);
  assert.equal(event.path, '/through-lb.bin');
  assert.equal(event.storageKey, 'alice/through-lb.bin');
  assert.equal(event.user, 'alice');
  assert.equal(event.clientAddress, source, 'the client address from the PROXY header, not HAProxy\'s');
  assert.equal(event.replicaId, served.replica.id, 'published by the replica that served the session');
  assert.ok(event.startedAt <= event.completedAt);
});

test('open SFTP sessions are in the cluster-wide registry, one per replica, and gone after close', async () => {
  const conns: SftpConnection[] = [];
  const served: Served[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const next = await connectElsewhere(served.map((s) => s.replica.id));
      conns.push(next.conn);
      served.push(next.served);
    }
    assert.deepEqual(served.map((s) => s.replica.id).sort(), ['edge-1', 'edge-2', 'edge-3'], 'held at once, one on each replica');

    const records = await state.sessions.list();
    for (const [i, conn] of conns.entries()) {
      const record = records.find((r) => r.clientAddress === conn.source);
      assert.ok(record, `a registry record for ${conn.source}: ${JSON.stringify(records)}`);
      assert.equal(record.id, served[i].session, 'the record is the session the edge logged');
      assert.equal(record.replicaId, served[i].replica.id);
      assert.equal(record.user, 'alice', 'bound to the logged-in user');
    }
    // Every edge sees all three, whichever of them it serves.
    const other = await createRedisClusterState({ url: cluster.redis.url, prefix: cluster.redisPrefix, pasvRange: cluster.pasvRange });
    try {
      const ids = new Set((await other.sessions.list()).map((r) => r.id));
      for (const s of served) assert.ok(ids.has(s.session));
    } finally {
      await other.close();
    }
  } finally {
    await Promise.all(conns.map((c) => closeSftp(c)));
  }
  const sources = new Set(conns.map((c) => c.source));
  let left: unknown[] = [];
  await waitFor(
    'the closed SFTP sessions to leave the registry',
    async () => {
      left = (await state.sessions.list()).filter((r) => sources.has(r.clientAddress));
      return left.length === 0;
    },
    WAIT_MS,
  ).catch(() => assert.fail(`records left after close: ${JSON.stringify(left)}`));
});

test('an upload broken on one replica is resumed on others, byte-exact, with exactly one upload.completed job', async (t) => {
  const path = '/resumed.bin';
  const home = join(cluster.dataDir, 'alice');
  const payload = randomBytes(3 * 1024 * 1024 + 4321);
  const cut1 = 1024 * 1024 + 17; // not a multiple of the chunk size
  const cut2 = 2 * 1024 * 1024 + 999;

  /** Kills the connection mid-upload (no CLOSE) and waits until its replica has kept the partial. */
  const breakUpload = async (conn: SftpConnection, served: Served, expectedSize: number) => {
    const aborted = () => served.replica.logs.filter((l) => l.event === 'sftp-upload-aborted' && l.path === path && l.session === served.session);
    conn.client.destroy();
    await conn.closed;
    await waitFor(`${served.replica.id} to keep the broken upload as a partial`, () => aborted().length > 0, WAIT_MS);
    assert.equal(statSync(join(home, partialNameFor('resumed.bin'))).size, expectedSize, 'the partial holds every acknowledged byte');
    assert.ok(!existsSync(join(home, 'resumed.bin')), 'a broken upload is not visible under its name');
    assert.equal((await completedJobs(path)).length, 0, 'a broken upload is not announced');
  };

  // 1. The first part, fresh (TRUNC), then the connection dies.
  const first = await connectElsewhere([]);
  const handle1 = await openFile(first.conn.sftp, path, OPEN_WRITE_TRUNC);
  await writeAll(first.conn.sftp, handle1, payload.subarray(0, cut1), 0);
  await breakUpload(first.conn, first.served, cut1);

  // 2. On another replica: STAT tells where to go on; open without TRUNC and write at the offsets; dies again.
  const second = await connectElsewhere([first.served.replica.id]);
  assert.notEqual(second.served.replica.id, first.served.replica.id, 'round-robin: the resume lands on another replica');
  // STAT of a name with only a partial: where a resume continues, one byte short of the partial (sent again).
  const from = (await statPath(second.conn.sftp, path)).size!;
  assert.equal(from, cut1 - 1);
  const handle2 = await openFile(second.conn.sftp, path, OPEN_WRITE_KEEP);
  await writeAll(second.conn.sftp, handle2, payload.subarray(from, cut2), from);
  await breakUpload(second.conn, second.served, cut2);

  // 3. On the third replica, as OpenSSH's reput does: STAT, then WRITE|CREAT|APPEND from that size, then CLOSE.
  const third = await connectElsewhere([first.served.replica.id, second.served.replica.id]);
  try {
    assert.notEqual(third.served.replica.id, second.served.replica.id, 'round-robin: the last part lands on another replica');
    const size = (await statPath(third.conn.sftp, path)).size!;
    assert.equal(size, cut2 - 1);
    const handle3 = await openFile(third.conn.sftp, path, OPEN_APPEND);
    await writeAll(third.conn.sftp, handle3, payload.subarray(size), size);
    await closeFile(third.conn.sftp, handle3);
    assert.equal((await statPath(third.conn.sftp, path)).size, payload.length);
  } finally {
    await closeSftp(third.conn);
  }
  t.diagnostic(`parts on ${first.served.replica.id}, ${second.served.replica.id}, ${third.served.replica.id}`);

  assert.equal(sha256(readFileSync(join(home, 'resumed.bin'))), sha256(payload), 'the resumed file is byte-exact');
  assert.ok(!existsSync(join(home, partialNameFor('resumed.bin'))), 'the partial became the file');
  const event = await theOneJob(path);
  assert.equal(event.protocol, 'sftp');
  assert.equal(event.size, payload.length, 'the event has the whole size, not the last part\'s');
  assert.equal(event.storageKey, 'alice/resumed.bin');
  assert.equal(event.clientAddress, third.conn.source);
  assert.equal(event.replicaId, third.served.replica.id, 'published by the replica that received the CLOSE');
});

test('no replica crashed and none logged an SFTP error', () => {
  for (const replica of cluster.replicas) {
    assert.ok(replica.running, `${replica.id} runs`);
    const errors = replica.logs.filter((l) => l.protocol === 'sftp' && typeof l.level === 'number' && l.level >= 50);
    assert.deepEqual(errors, [], `${replica.id}: no SFTP error lines`);
  }
});
