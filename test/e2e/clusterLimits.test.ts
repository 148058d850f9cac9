// Per-user limits that hold across the whole cluster (issue 16): three edge replicas behind HAProxy (round-robin)
// sharing one Redis. A user's quota, bandwidth, daily volume and session rate are one budget whichever replicas its
// sessions land on; a refusal is a clean 552 / SSH_FX_FAILURE and the session goes on. Every test connects from
// client addresses of its own (127.0.0.30 and up), since FTP_SESSIONS_PER_MINUTE_PER_IP is on for the whole cluster.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import type { SFTPWrapper } from 'ssh2';
import { createRedisClusterState, utcDay, type ClusterState } from '@ftp/cluster-state';
import { createFileTokenStore, hashPassword } from '@ftp/identity';
import { partialNameFor } from '@ftp/storage';
import { adminApi, type AdminApi } from '../support/adminApi';
import { startCluster, type Cluster } from '../support/cluster';
import { clusterCounter, loginFrom, metricValue } from '../support/clusterClient';
import { homeContents, meteredDownload, meteredUpload, rateBetween, until, type MeteredTransfer, type Reply } from '../support/meteredTransfers';
import { freeBlock, makeTempDir } from '../support/processes';
import { RawClient } from '../support/rawClient';
import { sleep, waitFor } from '../support/rawData';
import { TEST_PASSWORD } from '../support/server';
import { call, closeClient, sftpOf, sshConnect, statusOf, SSH_FX, type SshClient } from '../support/sftpClient';

const MiB = 1024 * 1024;
const QUOTA = 10 * MiB;
const CAP = 4 * MiB;
const DAILY = 3 * MiB;
/** Bandwidth is measured between these offsets from the transfers' first byte: the first burst does not count. */
const WINDOW = { from: 2_000, to: 12_000 };

let cluster: Cluster;
let redis: Redis;
let state: ClusterState;
let api: AdminApi;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const home = (user: string) => join(cluster.dataDir, user);
const mib = (bytes: number) => `${(bytes / MiB).toFixed(2)} MiB`;

before(async () => {
  const hash = await hashPassword(TEST_PASSWORD);
  const user = (name: string, limits: string) => `  ${name}:\n    password: "${hash}"\n    home: ${name}\n    limits: {${limits}}\n`;
  // The admin API's token, in a tokens file of this run (users come from a file: no PostgreSQL here).
  const tokensFile = join(makeTempDir('cluster-limits-'), 'api-tokens.yaml');
  const { token } = await createFileTokenStore({ file: tokensFile }).createToken({ name: 'limits-e2e', scopes: ['users:read', 'users:write'] }, { name: 'test', via: 'test' });
  const apiPort = await freeBlock(1, ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
  cluster = await startCluster({
    replicas: 3,
    balance: 'roundrobin',
    startTimeoutMs: 120_000,
    env: {
      FTP_SESSIONS_PER_MINUTE_PER_IP: '3',
      FTP_BAN_AFTER_FAILURES: '1000',
      FTP_API_PORT: String(apiPort),
      FTP_API_TOKENS_FILE: tokensFile,
      FTP_TRANSFER_PROGRESS_SECONDS: '1',
    },
    replicaEnv: (index) => ({ FTP_API_HOST: `127.0.0.${10 + index}` }),
    extraUsers:
      user('quser', `quota_bytes: ${QUOTA}`) +
      user('bw', `bandwidth_up: ${CAP}, bandwidth_down: ${CAP}`) +
      user('daily', `daily_download_bytes: ${DAILY}`) +
      user('rate', 'sessions_per_minute: 3') +
      user('solo', `bandwidth_down: ${CAP}`) +
      user('pair', `bandwidth_down: ${CAP}`),
  });
  redis = new Redis(cluster.redis.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // Redis is stopped on purpose in the last test
  state = await createRedisClusterState({ url: cluster.redis.url, prefix: cluster.redisPrefix, pasvRange: cluster.pasvRange });
  api = adminApi(`http://127.0.0.11:${apiPort}`, token);
});

after(async () => {
  await state?.close().catch(() => undefined);
  redis?.disconnect();
  await cluster?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// Clients.

let lastHost = 29;
/** A client address of its own for every connection (the per-address session rate is 3 a minute). */
const nextSource = () => {
  assert.ok(lastHost < 250, 'out of client addresses');
  return `127.0.0.${++lastHost}`;
};

interface FtpSession {
  client: RawClient;
  source: string;
  replica: string;
}

/** The replica serving `user`'s session from `source`, as the cluster-wide session registry says. */
async function replicaOf(source: string, user: string): Promise<string> {
  let replica = '';
  await waitFor(
    `the registry record of ${user} from ${source}`,
    async () => {
      replica = (await state.sessions.list()).find((r) => r.clientAddress === source && r.user === user)?.replicaId ?? '';
      return replica !== '';
    },
    10_000,
  );
  return replica;
}

async function ftpSession(user: string): Promise<FtpSession> {
  const source = nextSource();
  const client = await loginFrom(cluster, source, user);
  return { client, source, replica: await replicaOf(source, user) };
}

/** `count` FTP sessions of `user`, each on another replica (round-robin gets there first time; a retry otherwise). */
async function sessionsOnDistinctReplicas(user: string, count: number): Promise<FtpSession[]> {
  const got: FtpSession[] = [];
  for (let attempt = 0; got.length < count && attempt < count * 4; attempt++) {
    const session = await ftpSession(user);
    if (got.some((g) => g.replica === session.replica)) await quit(session.client);
    else got.push(session);
  }
  assert.equal(new Set(got.map((g) => g.replica)).size, count, `${user}: ${count} sessions on ${count} replicas: ${got.map((g) => g.replica).join(', ')}`);
  return got;
}

async function quit(client: RawClient) {
  await client.command('QUIT', 10_000).catch(() => undefined);
  client.close();
}

async function stor(session: FtpSession, name: string, payload: Buffer): Promise<Reply> {
  const upload = await meteredUpload(session.client, session.source, name, payload);
  const { first, final, error } = await upload.done;
  assert.ok(!error, `STOR ${name}: ${error}`);
  return final ?? first;
}

async function avbl(client: RawClient): Promise<number> {
  const reply = await client.command('AVBL', 10_000);
  assert.equal(reply.code, 213, `AVBL → ${reply.code} ${reply.text}`);
  assert.match(reply.text, /^\d+$/);
  return Number(reply.text);
}

async function noop(client: RawClient) {
  const reply = await client.command('NOOP', 10_000);
  assert.equal(reply.code, 200, `the session still answers after a refusal: NOOP → ${reply.code} ${reply.text}`);
}

async function sftpSession(user: string): Promise<{ ssh: SshClient; sftp: SFTPWrapper; source: string }> {
  const source = nextSource();
  const ssh = await sshConnect({ host: cluster.host, port: cluster.sftpPort, localAddress: source, username: user, password: TEST_PASSWORD });
  return { ssh, sftp: await sftpOf(ssh), source };
}

/** WRITEs of `data`, 32 KiB each, eight in flight; stops after the first batch with a failure and throws its error. */
async function sftpWriteAll(sftp: SFTPWrapper, handle: Buffer, data: Buffer) {
  const chunk = 32 * 1024;
  const offsets = Array.from({ length: Math.ceil(data.length / chunk) }, (_, i) => i * chunk);
  for (let i = 0; i < offsets.length; i += 8) {
    const batch = await Promise.allSettled(
      offsets.slice(i, i + 8).map((offset) => {
        const part = data.subarray(offset, offset + chunk);
        return call((cb) => sftp.write(handle, part, 0, part.length, offset, (err) => cb(err)));
      }),
    );
    const failed = batch.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Storage quota.

const QUOTA_REFUSAL_FTP = new RegExp(`^Exceeded storage allocation \\(Quota of ${QUOTA} bytes reached\\)$`);
const QUOTA_REFUSAL_SFTP = new RegExp(`^Quota exceeded: Quota of ${QUOTA} bytes reached$`);

interface UploadResult {
  name: string;
  via: string;
  ok: boolean;
  detail: string;
}

test('quota: uploads over FTP and SFTP through all three replicas at once stop at 10 MiB; refusals are clean; delete frees room; AVBL, statvfs, quota scan', { timeout: 150_000 }, async (t) => {
  const errorLinesBefore = cluster.replicas.map((r) => r.logs.length);
  const payloads = new Map<string, Buffer>();
  const makeFile = (name: string) => {
    const data = randomBytes(2 * MiB + Math.floor(Math.random() * MiB));
    payloads.set(name, data);
    return { name, data };
  };
  const ftpSessions = await sessionsOnDistinctReplicas('quser', 3);
  const sftpSessions = [await sftpSession('quser'), await sftpSession('quser')];
  const results: UploadResult[] = [];

  const ftpWorker = async (s: FtpSession, index: number) => {
    for (let i = 0; i < 3; i++) {
      const { name, data } = makeFile(`ftp-${index}-${i}.bin`);
      const reply = await stor(s, name, data);
      results.push({ name, via: `ftp@${s.replica}`, ok: reply.code === 226, detail: `${reply.code} ${reply.text}` });
      if (reply.code !== 226) await noop(s.client);
    }
  };
  const sftpWorker = async (s: { sftp: SFTPWrapper }, index: number) => {
    for (let i = 0; i < 2; i++) {
      const { name, data } = makeFile(`sftp-${index}-${i}.bin`);
      const handle = await call<Buffer>((cb) => s.sftp.open(`/${name}`, 'w', cb));
      let writeError: { code?: number; message: string } | undefined;
      await sftpWriteAll(s.sftp, handle, data).catch((err: Error & { code?: number }) => (writeError = err));
      const closeStatus = await statusOf(call((cb) => s.sftp.close(handle, (err) => cb(err))));
      const detail = writeError ? `WRITE → ${writeError.code} ${writeError.message}; CLOSE → ${closeStatus}` : `CLOSE → ${closeStatus}`;
      results.push({ name, via: 'sftp', ok: !writeError && closeStatus === SSH_FX.OK, detail });
      if (writeError) {
        assert.equal(writeError.code, SSH_FX.FAILURE, `${name}: a refused WRITE is SSH_FX_FAILURE: ${detail}`);
        assert.match(writeError.message, QUOTA_REFUSAL_SFTP, `${name}: ${detail}`);
        assert.equal(closeStatus, SSH_FX.FAILURE, `${name}: CLOSE after a refused WRITE is a FAILURE, not a publish: ${detail}`);
      }
    }
    // Still usable after a refusal.
    assert.ok((await call<unknown[]>((cb) => s.sftp.readdir('/', cb))).length >= 0);
  };
  const started = Date.now();
  await Promise.all([...ftpSessions.map(ftpWorker), ...sftpSessions.map(sftpWorker)]);
  t.diagnostic(`${results.length} uploads (${mib([...payloads.values()].reduce((n, p) => n + p.length, 0))} offered) in ${Date.now() - started} ms`);
  for (const r of results) t.diagnostic(`  ${r.name} ${r.via}: ${r.ok ? 'stored' : 'refused'} (${r.detail})`);

  for (const r of results.filter((x) => x.via.startsWith('ftp') && !x.ok)) {
    assert.match(r.detail, /^552 /, `${r.name}: an upload over the quota is refused with 552, nothing else`);
    assert.match(r.detail.slice(4), QUOTA_REFUSAL_FTP, r.name);
  }
  const refused = results.filter((r) => !r.ok);
  assert.ok(refused.length >= 1, 'at least one upload was refused');

  let disk = homeContents(home('quser'));
  t.diagnostic(`on disk: ${mib(disk.bytes)} in ${disk.files.length} files, partials ${JSON.stringify(disk.partials)}`);
  assert.ok(disk.bytes <= QUOTA, `at most the quota on disk: ${disk.bytes} > ${QUOTA}`);
  assert.deepEqual(disk.partials, [], 'refused uploads leave no partial behind');
  assert.deepEqual(
    disk.files.map((f) => f.name),
    results.filter((r) => r.ok).map((r) => r.name).sort(),
    'exactly the accepted uploads are published',
  );
  for (const f of disk.files) assert.equal(sha256(readFileSync(join(home('quser'), f.name))), sha256(payloads.get(f.name)!), `${f.name} stored byte-exact`);

  const usageKey = `${cluster.redisPrefix}usage:quser`;
  const usage = async () => {
    const u = await redis.hgetall(usageKey);
    return { bytes: Number(u.bytes), files: Number(u.files) };
  };
  assert.deepEqual(await usage(), { bytes: disk.bytes, files: disk.files.length }, 'the usage in Redis is what is on disk');
  assert.equal(await redis.hlen(`${cluster.redisPrefix}reserved:quser`), 0, 'no reservation is left behind');
  const hits = await clusterCounter(cluster, 'ftp_limit_hits_total', 'limit="quota_bytes"');
  assert.ok(hits >= refused.length, `every refusal counted: ftp_limit_hits_total{limit="quota_bytes"} ${hits} < ${refused.length}`);

  // AVBL and ALLO over FTP; statvfs over SFTP.
  const control = ftpSessions[0];
  let room = await avbl(control.client);
  assert.equal(room, QUOTA - disk.bytes, 'AVBL: quota − usage');
  const allo = await control.client.command(`ALLO ${room + 1}`, 10_000);
  assert.equal(allo.code, 552, `ALLO beyond the room: ${allo.code} ${allo.text}`);
  assert.match(allo.text, /^Exceeded storage allocation \(/);
  assert.equal((await control.client.command(`ALLO ${room}`, 10_000)).code, 202, 'ALLO within the room');
  const vfs = await call<Record<string, number | bigint>>((cb) => sftpSessions[0].sftp.ext_openssh_statvfs('/', cb));
  assert.equal(Number(vfs.f_blocks) * Number(vfs.f_frsize), QUOTA, `statvfs: the quota is the size: ${JSON.stringify(vfs, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
  assert.equal(Number(vfs.f_bavail) * Number(vfs.f_frsize), room, 'statvfs: the room is quota − usage');

  // Deleting frees room: a refused upload fits once enough is deleted.
  const retry = refused.map((r) => ({ name: r.name, data: payloads.get(r.name)! })).sort((a, b) => a.data.length - b.data.length)[0];
  // The session above announced a size with ALLO, which its next upload would reserve: the rest runs on another.
  const fresh = await ftpSession('quser');
  if (room < retry.data.length) {
    const again = await stor(fresh, retry.name, retry.data);
    assert.equal(again.code, 552, `${retry.name} (${retry.data.length} bytes, room ${room}) is refused again: ${again.text}`);
    await noop(fresh.client);
  }
  for (const f of disk.files) {
    if (room >= retry.data.length) break;
    const dele = await fresh.client.command(`DELE ${f.name}`, 10_000);
    assert.equal(dele.code, 250, `DELE ${f.name}: ${dele.text}`);
    const now = await avbl(fresh.client);
    assert.equal(now, room + f.size, `deleting ${f.name} (${f.size} bytes) frees its size`);
    room = now;
  }
  const fits = await stor(fresh, retry.name, retry.data);
  assert.equal(fits.code, 226, `the refused ${retry.name} fits after deleting: ${fits.code} ${fits.text}`);
  assert.equal(await avbl(fresh.client), room - retry.data.length, 'AVBL after the upload');
  disk = homeContents(home('quser'));
  assert.deepEqual(await usage(), { bytes: disk.bytes, files: disk.files.length }, 'usage follows deletes and uploads');

  // An overwrite counts the difference; a rename over a file frees the one replaced.
  const [first, second] = disk.files;
  assert.ok(first && second, `two files to overwrite and rename: ${JSON.stringify(disk.files)}`);
  assert.equal((await stor(fresh, first.name, randomBytes(100_000))).code, 226, `STOR over ${first.name}`);
  disk = homeContents(home('quser'));
  assert.deepEqual(await usage(), { bytes: disk.bytes, files: disk.files.length }, 'usage after an overwrite');
  assert.equal((await fresh.client.command(`RNFR ${first.name}`, 10_000)).code, 350);
  assert.equal((await fresh.client.command(`RNTO ${second.name}`, 10_000)).code, 250, `RNTO over ${second.name}`);
  disk = homeContents(home('quser'));
  assert.deepEqual(await usage(), { bytes: disk.bytes, files: disk.files.length }, 'usage after a rename over a file');
  assert.equal(await avbl(fresh.client), QUOTA - disk.bytes, 'AVBL after overwrite and rename');

  // Quota scan through the admin API after the usage was corrupted.
  await redis.hset(usageKey, 'bytes', '1');
  assert.equal(await avbl(fresh.client), QUOTA - 1, 'the corrupted usage is what the edges see');
  const scan = await api.post(`/users/quser/quota-scan`);
  assert.equal(scan.status, 200, `POST /users/quser/quota-scan: ${JSON.stringify(scan.body)}`);
  assert.deepEqual(scan.body, { bytes: disk.bytes, files: disk.files.length }, 'the scan counts what is on disk');
  assert.deepEqual(await usage(), { bytes: disk.bytes, files: disk.files.length }, 'and records it');
  assert.equal(await avbl(fresh.client), QUOTA - disk.bytes, 'AVBL after the scan');

  // A usage lost (the key deleted): the next upload scans the home again.
  await redis.del(usageKey);
  const small = randomBytes(64 * 1024);
  assert.equal((await stor(fresh, 'after-scan.bin', small)).code, 226);
  disk = homeContents(home('quser'));
  assert.deepEqual(await usage(), { bytes: disk.bytes, files: disk.files.length }, 'rescanned on the first upload');

  for (const s of [...ftpSessions, fresh]) await quit(s.client);
  for (const s of sftpSessions) await closeClient(s.ssh);
  assert.ok(cluster.replicas.every((r) => r.running), 'no replica crashed');
  const errors = cluster.replicas.flatMap((r, i) => r.logs.slice(errorLinesBefore[i]).filter((l) => typeof l.level === 'number' && l.level >= 50));
  assert.deepEqual(errors, [], 'no error lines logged');
});

// ---------------------------------------------------------------------------------------------------------------
// 2. Bandwidth shared by every session of a user on every replica.

const BIG = 64 * MiB;
let big: Buffer;

/** Within ±`tolerance` of the cap. */
function assertNearCap(rate: number, tolerance: number, what: string) {
  assert.ok(Math.abs(rate - CAP) <= CAP * tolerance, `${what}: ${mib(rate)}/s, cap ${mib(CAP)}/s ± ${tolerance * 100} %`);
}

/** Resolves with the instant every transfer had its first byte. */
async function allStarted(transfers: { firstByteAt(): number }[]) {
  await waitFor('every transfer to move its first byte', () => transfers.every((x) => x.firstByteAt() > 0), 15_000);
  return Date.now();
}

interface Shared<T> {
  replicas: string[];
  /** Bytes per second of all the sessions together, and of each, over the window. */
  total: number;
  each: number[];
  /** What `alongside` resolved to. */
  beside: T;
}

/**
 * `count` sessions of user bw, each on another replica, run a transfer each (`start`) at once; `alongside` starts once
 * they all moved their first byte. The rate of `moved` is measured over the window, then the transfers are aborted.
 */
async function shareOf<T>(
  count: number,
  start: (s: FtpSession, index: number) => Promise<MeteredTransfer>,
  moved: (transfer: MeteredTransfer, index: number) => number,
  alongside: () => Promise<T>,
): Promise<Shared<T>> {
  const sessions = count === 1 ? [await ftpSession('bw')] : await sessionsOnDistinctReplicas('bw', count);
  const transfers = await Promise.all(sessions.map(start));
  const t0 = await allStarted(transfers);
  const beside = alongside();
  beside.catch(() => undefined); // awaited below, after the transfers are stopped
  const window = (count: () => number) => rateBetween(count, t0 + WINDOW.from, t0 + WINDOW.to);
  const [total, ...each] = await Promise.all([window(() => transfers.reduce((n, x, i) => n + moved(x, i), 0)), ...transfers.map((x, i) => window(() => moved(x, i)))]);
  for (const [i, x] of transfers.entries()) {
    const replies = await x.abort();
    assert.ok(replies.some((r) => r.code === 226), `${sessions[i].replica}: ABOR ends the transfer cleanly: ${JSON.stringify(replies)}`);
  }
  for (const s of sessions) await quit(s.client);
  return { replicas: sessions.map((s) => s.replica), total, each, beside: await beside };
}

const describeShare = (s: Shared<unknown>) => `${s.replicas.length} on ${s.replicas.join(', ')}: ${mib(s.total)}/s in total (${s.each.map((r) => mib(r)).join(', ')} /s each)`;

/** An unlimited user's transfer through the balancer at the same time; its rate, first byte to final reply. */
async function unlimited(run: (s: FtpSession) => Promise<MeteredTransfer>, check: (outcome: Awaited<MeteredTransfer['done']>) => void) {
  const s = await ftpSession('alice');
  const x = await run(s);
  const outcome = await x.done;
  assert.equal(outcome.final?.code, 226, `the unlimited transfer: ${JSON.stringify(outcome)}`);
  check(outcome);
  await quit(s.client);
  return (BIG * 1000) / (x.endedAt() - x.firstByteAt());
}

test('bandwidth_down 4 MiB/s: shared by sessions on three, two and one replicas; an unlimited user is unaffected', { timeout: 120_000 }, async (t) => {
  big = randomBytes(BIG);
  mkdirSync(home('bw'), { recursive: true });
  mkdirSync(home('alice'), { recursive: true });
  writeFileSync(join(home('bw'), 'big.bin'), big);
  writeFileSync(join(home('alice'), 'big.bin'), big);
  const download = (s: FtpSession) => meteredDownload(s.client, s.source, 'big.bin');
  const freeDownload = () => unlimited(download, (o) => assert.equal(o.sha256, sha256(big), 'the unlimited download is byte-exact'));

  for (const count of [3, 2, 1]) {
    const share = await shareOf(count, download, (d) => d.bytes(), count === 3 ? freeDownload : async () => 0);
    t.diagnostic(`downloads, ${describeShare(share)}`);
    assertNearCap(share.total, 0.1, `${count} download session(s) of one user on ${count} replica(s), in total`);
    if (count === 3) {
      t.diagnostic(`unlimited user at the same time: ${mib(share.beside)}/s`);
      assert.ok(share.beside > 4 * CAP, `an unlimited user is not held by another user's cap: ${mib(share.beside)}/s`);
    }
  }
});

test('bandwidth_up 4 MiB/s: shared by sessions on three, two and one replicas; an unlimited user is unaffected', { timeout: 120_000 }, async (t) => {
  big ??= randomBytes(BIG);
  // What the replicas wrote to the partials: the server's side of the rate, whatever the socket buffers hold.
  const partialSize = (name: string) => statSync(join(home('bw'), partialNameFor(name)), { throwIfNoEntry: false })?.size ?? 0;
  const freeUpload = () =>
    unlimited(
      (s) => meteredUpload(s.client, s.source, 'up.bin', big),
      () => assert.equal(sha256(readFileSync(join(home('alice'), 'up.bin'))), sha256(big), 'the unlimited upload is byte-exact'),
    );

  for (const count of [3, 2, 1]) {
    const name = (i: number) => `up-${count}-${i}.bin`;
    const share = await shareOf(count, (s, i) => meteredUpload(s.client, s.source, name(i), big), (_u, i) => partialSize(name(i)), count === 3 ? freeUpload : async () => 0);
    t.diagnostic(`uploads (written by the replicas), ${describeShare(share)}`);
    assertNearCap(share.total, 0.1, `${count} upload session(s) of one user on ${count} replica(s), in total`);
    if (count === 3) {
      t.diagnostic(`unlimited user at the same time: ${mib(share.beside)}/s`);
      assert.ok(share.beside > 4 * CAP, `an unlimited user is not held by another user's cap: ${mib(share.beside)}/s`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// 3. Daily volume.

test('daily_download_bytes: downloads go through until the day\'s 3 MiB are used, then 552; the counter is in Redis', { timeout: 60_000 }, async (t) => {
  const file = randomBytes(1_200_000);
  mkdirSync(home('daily'), { recursive: true });
  writeFileSync(join(home('daily'), 'one.bin'), file);
  const refusal = new RegExp(`^Exceeded storage allocation \\(Daily download limit of ${DAILY} bytes reached\\)$`);
  const s = await ftpSession('daily');
  let received = 0;
  const outcomes: string[] = [];
  for (let i = 0; i < 4; i++) {
    const download = await meteredDownload(s.client, s.source, 'one.bin');
    const { first, final, sha256: got, error } = await download.done;
    assert.ok(!error, error);
    received += download.bytes();
    outcomes.push(`${final?.code ?? first.code} after ${download.bytes()} bytes`);
    if (i < 2) {
      assert.equal(final?.code, 226, `download ${i + 1} (${(i + 1) * file.length} bytes today) is within the limit: ${final?.text}`);
      assert.equal(got, sha256(file));
    } else {
      const reply = final ?? first;
      assert.equal(reply.code, 552, `download ${i + 1} passes ${DAILY} bytes: ${reply.code} ${reply.text}`);
      assert.match(reply.text, refusal);
      await noop(s.client);
    }
  }
  t.diagnostic(`downloads: ${outcomes.join('; ')}`);
  const key = `${cluster.redisPrefix}daily:${utcDay(Date.now())}:download:daily`;
  const counted = Number(await redis.get(key));
  t.diagnostic(`${key} = ${counted}; the client received ${received}`);
  assert.ok(counted >= 2 * file.length && counted <= DAILY, `the day's counter holds what was let through, at most the limit: ${counted}`);
  assert.ok(counted >= received, `every byte received was counted: ${counted} < ${received}`);
  assert.ok((await redis.pttl(key)) > 0, 'the counter expires');
  assert.ok((await clusterCounter(cluster, 'ftp_limit_hits_total', 'limit="daily_download_bytes"')) >= 2);
  await quit(s.client);
});

// ---------------------------------------------------------------------------------------------------------------
// 4. Session rates.

test('sessions_per_minute: the 4th login of a user within a minute is refused with 421, whichever replica it lands on', { timeout: 60_000 }, async () => {
  const sessions: FtpSession[] = [];
  for (let i = 0; i < 3; i++) sessions.push(await ftpSession('rate'));
  assert.ok(new Set(sessions.map((s) => s.replica)).size >= 2, `the logins were spread over replicas: ${sessions.map((s) => s.replica).join(', ')}`);
  // One leaves: the rate counts new sessions, not open ones.
  await quit(sessions.shift()!.client);
  const fourth = await RawClient.connect(cluster.port, cluster.host, nextSource());
  try {
    assert.equal((await fourth.reply(10_000)).code, 220);
    assert.equal((await fourth.command('USER rate', 10_000)).code, 331);
    const refused = await fourth.command(`PASS ${TEST_PASSWORD}`, 10_000);
    assert.equal(refused.code, 421, `${refused.code} ${refused.text}`);
    assert.match(refused.text, /Too many new sessions for this user/);
    await fourth.waitClosed(10_000);
  } finally {
    fourth.close();
  }
  for (const s of sessions) await noop(s.client); // those let in are not touched
  for (const s of sessions) await quit(s.client);
  // Another user is not concerned.
  await quit((await ftpSession('alice')).client);
  assert.ok((await clusterCounter(cluster, 'ftp_limit_hits_total', 'limit="sessions_per_minute"')) >= 1);
});

test('FTP_SESSIONS_PER_MINUTE_PER_IP=3: the 4th connection from one address within a minute is refused with 421 on any replica', { timeout: 60_000 }, async () => {
  const source = nextSource();
  for (let i = 0; i < 3; i++) {
    const client = await RawClient.connect(cluster.port, cluster.host, source);
    const greeting = await client.reply(10_000);
    assert.equal(greeting.code, 220, `connection ${i + 1}: ${greeting.text}`);
    await quit(client);
  }
  const fourth = await RawClient.connect(cluster.port, cluster.host, source);
  try {
    const reply = await fourth.reply(10_000);
    assert.equal(reply.code, 421, `${reply.code} ${reply.text}`);
    assert.match(reply.text, /Too many new sessions from your address/);
  } finally {
    fourth.close();
  }
  await quit((await ftpSession('alice')).client); // another address is not concerned
  assert.ok((await clusterCounter(cluster, 'ftp_limit_hits_total', 'limit="sessions_per_minute_per_ip"')) >= 1);
});

// ---------------------------------------------------------------------------------------------------------------
// 5. Redis lost mid-transfer (last: the cluster's Redis comes back empty).

test('Redis stopped mid-download: the transfer completes byte-exact at its local share of the cap (4 MiB/s), fallback gauge 1', { timeout: 90_000 }, async (t) => {
  big ??= randomBytes(BIG);
  const size = 48 * MiB;
  const file = big.subarray(0, size);
  mkdirSync(home('solo'), { recursive: true });
  writeFileSync(join(home('solo'), 'big.bin'), file);
  const s = await ftpSession('solo');
  const owner = cluster.replicas.find((r) => r.id === s.replica)!;
  const download = await meteredDownload(s.client, s.source, 'big.bin');
  const t0 = await allStarted([download]);
  let fallback: number[] = [];
  let rate = 0;
  try {
    await until(t0 + 2_000);
    await cluster.redis.stop();
    const stopped = Date.now();
    t.diagnostic(`Redis stopped ${stopped - t0} ms after the first byte, at ${mib(download.bytes())}`);
    const measuring = rateBetween(() => download.bytes(), stopped + 1_000, stopped + 7_000);
    await sleep(1_500);
    fallback = await Promise.all(cluster.replicas.map(async (r) => metricValue(await r.metrics(), 'ftp_limit_fallback_transfers')));
    rate = await measuring;
  } finally {
    const outcome = await download.done;
    await cluster.redis.start();
    t.diagnostic(`fallback gauge per replica during the outage: ${fallback.join(', ')} (session on ${owner.id}); ${mib(rate)}/s during the outage`);
    assert.equal(outcome.final?.code, 226, `the download completes: ${JSON.stringify(outcome)}`);
    assert.equal(download.bytes(), size);
    assert.equal(outcome.sha256, sha256(file), 'byte-exact');
  }
  assert.equal(fallback[cluster.replicas.indexOf(owner)], 1, `${owner.id} ran one transfer on its local share`);
  assert.equal(fallback.reduce((a, b) => a + b, 0), 1, 'no other replica did');
  assert.ok(Math.abs(rate - CAP) <= CAP * 0.25, `local share ${mib(rate)}/s, expected ${mib(CAP)}/s ± 25 %`);
  await quit(s.client);
  assert.ok(cluster.replicas.every((r) => r.running), 'no replica crashed');
});

test('Redis stopped while one user downloads twice on one replica: the two transfers share that replica\'s local share (4 MiB/s in total)', { timeout: 90_000 }, async (t) => {
  // The previous test brought Redis back empty: the replicas are back in HAProxy once their /readyz passes again.
  for (const r of cluster.replicas) await cluster.haproxy.waitServer(r.id, 'UP', 30_000);
  big ??= randomBytes(BIG);
  mkdirSync(home('pair'), { recursive: true });
  writeFileSync(join(home('pair'), 'big.bin'), big.subarray(0, 48 * MiB));
  // Round-robin: the fourth session at the latest lands where one of the first three did.
  const sessions: FtpSession[] = [];
  let pair: FtpSession[] = [];
  for (let i = 0; i < 6 && pair.length < 2; i++) {
    sessions.push(await ftpSession('pair'));
    pair = sessions.filter((s) => s.replica === sessions.at(-1)!.replica);
  }
  assert.equal(pair.length, 2, `two sessions on one replica: ${sessions.map((s) => s.replica).join(', ')}`);
  for (const s of sessions.filter((x) => !pair.includes(x))) await quit(s.client);
  const replica = cluster.replicas.find((r) => r.id === pair[0].replica)!;
  const downloads = await Promise.all(pair.map((s) => meteredDownload(s.client, s.source, 'big.bin')));
  const t0 = await allStarted(downloads);
  let fallback = 0;
  let rate = 0;
  try {
    await until(t0 + 2_000);
    await cluster.redis.stop();
    const stopped = Date.now();
    const measuring = rateBetween(() => downloads.reduce((n, d) => n + d.bytes(), 0), stopped + 1_000, stopped + 7_000);
    await sleep(1_500);
    fallback = metricValue(await replica.metrics(), 'ftp_limit_fallback_transfers');
    rate = await measuring;
    for (const d of downloads) await d.abort();
  } finally {
    await cluster.redis.start();
  }
  t.diagnostic(`2 downloads on ${replica.id} during the outage: ${mib(rate)}/s in total; fallback gauge ${fallback}`);
  assert.equal(fallback, 2, 'both transfers on their local share');
  assert.ok(Math.abs(rate - CAP) <= CAP * 0.25, `the replica's local share is the user's cap, whatever number of transfers use it: ${mib(rate)}/s, expected ${mib(CAP)}/s ± 25 %`);
  for (const s of pair) await quit(s.client);
});
