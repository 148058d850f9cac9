// The admin REST API of a real cluster: three edge replicas behind HAProxy sharing Redis and a PostgreSQL user store
// (their own database, reached through a relay the test can cut), each serving the API on its own address. A change
// made through one replica's API is in force on another within a second; sessions are listed cluster-wide with their
// replica and live transfer bytes, and ended on whichever replica holds them.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, test, type TestContext } from 'node:test';
import { createPostgresStore, type PostgresStore } from '@ftp/identity';
import { adminApi, eventually, type AdminApi } from '../support/adminApi';
import { startCluster, type Cluster } from '../support/cluster';
import { passiveFrom } from '../support/clusterClient';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { freeBlock } from '../support/processes';
import { RawClient } from '../support/rawClient';
import { closeClient, sftpOf, sshConnect, type SshClient } from '../support/sftpClient';
import { startTcpProxy } from '../support/tcpProxy';

let cluster: Cluster;
let db: TestDatabase;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
let admin: PostgresStore;
/** The API of each replica, by replica id. */
const apis = new Map<string, AdminApi>();
let controlPort = 0;

const PASSWORD = 'cluster-api-password';
const api = (replica: string) => apis.get(replica)!;

before(async () => {
  db = await createTestDatabase('cluster_api');
  proxy = await startTcpProxy('127.0.0.1', Number(new URL(db.url).port || 5432));
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  const apiPort = await freeBlock(1, ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
  cluster = await startCluster({
    replicas: 3,
    balance: 'roundrobin',
    pasvPorts: 6,
    startTimeoutMs: 120_000,
    env: { FTP_USERS_DATABASE_URL: viaProxy.href, FTP_API_PORT: String(apiPort), FTP_BAN_AFTER_FAILURES: '1000', FTP_TRANSFER_PROGRESS_SECONDS: '1' },
    replicaEnv: (index) => ({ FTP_API_HOST: `127.0.0.${10 + index}` }),
  });
  controlPort = cluster.port;
  // ftpctl's part: a token in the same database (every replica hears of it by NOTIFY).
  admin = await createPostgresStore({ connection: db.url, dataRoot: cluster.dataDir });
  const { token } = await admin.createToken({ name: 'ops', scopes: ['users:read', 'users:write', 'sessions:read', 'sessions:write', 'bans:write'] }, { name: 'test' });
  for (const replica of cluster.replicas) {
    const client = adminApi(`http://${replica.address}:${apiPort}`, token);
    apis.set(replica.id, client);
    await eventually(`${replica.id} knows the token`, async () => (await client.get('/users')).status === 200, 10_000);
  }
});

after(async () => {
  await admin?.close();
  await cluster?.close();
  await proxy?.cut();
  await db?.drop();
});

let lastSource = 60;
const nextSource = () => `127.0.0.${++lastSource}`;

/** FTP login straight to one replica (from a source that is not HAProxy's, so no PROXY header is expected). */
async function loginAt(replica: string, user: string, password = PASSWORD): Promise<{ code: number; client: RawClient }> {
  const address = cluster.replicas.find((r) => r.id === replica)!.address;
  const client = await RawClient.connect(controlPort, address, nextSource());
  await client.reply();
  await client.command(`USER ${user}`);
  return { code: (await client.command(`PASS ${password}`)).code, client };
}

/** FTP login through HAProxy from a source address of its own. */
async function ftpThroughBalancer(user: string): Promise<{ client: RawClient; source: string }> {
  const source = nextSource();
  const client = await RawClient.connect(cluster.port, cluster.host, source);
  await client.login(user, PASSWORD);
  return { client, source };
}

async function sftpThroughBalancer(user: string): Promise<{ ssh: SshClient; closed: Promise<number> }> {
  const ssh = await sshConnect({ port: cluster.sftpPort, username: user, password: PASSWORD, tryKeyboard: false, localAddress: nextSource() });
  ssh.on('error', () => {});
  return { ssh, closed: new Promise((resolve) => ssh.once('close', () => resolve(Date.now()))) };
}

interface Listed {
  id: string;
  user?: string;
  protocol?: string;
  client: string;
  replica: string;
  transfer?: { direction: string; path: string; bytes?: number };
}
const sessionsOf = async (via: string, user: string) => (await api(via).get<{ items: Listed[] }>(`/sessions?user=${user}`)).body.items;

const within = (ms: number, promise: Promise<unknown>, what: string) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))]);

test('a user created through one replica\'s API logs in through another replica within a second', async (t: TestContext) => {
  const created = await api('edge-1').post('/users', { name: 'ulla', password: PASSWORD, home: 'ulla' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  // From the write's answer: the API's own password hashing (scrypt) is not the propagation being measured.
  const started = Date.now();
  await eventually('edge-2 knows ulla', async () => (await api('edge-2').get('/users/ulla')).status === 200, 1000, 5);
  const { code, client } = await loginAt('edge-2', 'ulla');
  client.close();
  const ms = Date.now() - started;
  assert.equal(code, 230);
  assert.ok(ms < 1000, `${ms} ms`);
  t.diagnostic(`created on edge-1, logged in on edge-2 ${ms} ms after the API answered`);
});

test('a user disabled through the API is refused everywhere, and its live FTP and SFTP sessions on every replica end within a second', async () => {
  assert.equal((await api('edge-1').post('/users', { name: 'vera', password: PASSWORD })).status, 201);
  await eventually('every replica knows vera', async () => {
    for (const r of cluster.replicas) if ((await api(r.id).get('/users/vera')).status !== 200) return false;
    return true;
  });
  // Round robin: three FTP and two SFTP sessions spread over the replicas.
  const ftp = [await ftpThroughBalancer('vera'), await ftpThroughBalancer('vera'), await ftpThroughBalancer('vera')];
  const sftp = [await sftpThroughBalancer('vera'), await sftpThroughBalancer('vera')];
  const listed = await eventually('five sessions listed', async () => {
    const items = await sessionsOf('edge-3', 'vera');
    return items.length === 5 ? items : undefined;
  });
  assert.ok(new Set(listed.map((s) => s.replica)).size >= 2, `sessions on several replicas: ${listed.map((s) => s.replica).join(', ')}`);
  assert.deepEqual(listed.map((s) => s.protocol).sort(), ['ftp', 'ftp', 'ftp', 'sftp', 'sftp']);

  const started = Date.now();
  const res = await api('edge-2').patch('/users/vera', { disabled: true });
  assert.equal(res.status, 200);
  await within(1000, Promise.all(ftp.map(async ({ client }) => {
    assert.equal((await client.reply(1000)).code, 421);
    await client.waitClosed(1000);
  })), 'FTP sessions ended');
  const closedAt = await within(1000, Promise.all(sftp.map((s) => s.closed)), 'SFTP sessions disconnected');
  assert.ok(Math.max(...(closedAt as number[])) - started < 1000);
  for (const replica of cluster.replicas) {
    const { code, client } = await loginAt(replica.id, 'vera');
    client.close();
    assert.equal(code, 530, `${replica.id} refuses vera`);
  }
  await eventually('the registry forgets them', async () => (await sessionsOf('edge-1', 'vera')).length === 0, 3000);
});

test('a session listed by the API shows its replica and its live transfer bytes (SFTP and FTP uploads in progress)', async (t: TestContext) => {
  assert.equal((await api('edge-1').post('/users', { name: 'wendy', password: PASSWORD, home: 'wendy' })).status, 201);
  await eventually('every replica knows wendy', async () => {
    for (const r of cluster.replicas) if ((await api(r.id).get('/users/wendy')).status !== 200) return false;
    return true;
  });
  // SFTP: an upload of 2 MiB so far, its handle still open.
  const { ssh } = await sftpThroughBalancer('wendy');
  const sftp = await sftpOf(ssh);
  const handle = await new Promise<Buffer>((resolve, reject) => sftp.open('/big.bin', 'w', (err, h) => (err ? reject(err) : resolve(h))));
  const chunk = Buffer.alloc(256 * 1024, 1);
  for (let i = 0; i < 8; i++) await new Promise<void>((resolve, reject) => sftp.write(handle, chunk, 0, chunk.length, i * chunk.length, (err) => (err ? reject(err) : resolve())));
  // FTP: STOR with 1 MiB sent so far, the data connection left open.
  const { client: ftp, source } = await ftpThroughBalancer('wendy');
  const data: Socket = await passiveFrom(ftp, source);
  assert.equal((await ftp.command('STOR ftp-big.bin')).code, 150);
  data.write(Buffer.alloc(1024 * 1024, 2));

  const items = await eventually('both transfers listed with their bytes', async () => {
    const all = await sessionsOf('edge-1', 'wendy');
    const s = all.find((i) => i.protocol === 'sftp');
    const f = all.find((i) => i.protocol === 'ftp');
    return s?.transfer?.bytes === 8 * chunk.length && f?.transfer?.bytes === 1024 * 1024 ? all : undefined;
  }, 5000);
  const sftpRecord = items.find((i) => i.protocol === 'sftp')!;
  const ftpRecord = items.find((i) => i.protocol === 'ftp')!;
  assert.ok(cluster.replicas.some((r) => r.id === sftpRecord.replica));
  assert.equal(sftpRecord.transfer?.direction, 'upload');
  assert.equal(sftpRecord.transfer?.path, '/big.bin');
  assert.equal(ftpRecord.client, source, 'the client address HAProxy passed on');
  assert.deepEqual([ftpRecord.transfer?.direction, ftpRecord.transfer?.path], ['upload', '/ftp-big.bin']);
  // The same view from every replica: the registry is cluster-wide.
  for (const r of cluster.replicas) assert.deepEqual((await sessionsOf(r.id, 'wendy')).map((s) => s.replica).sort(), items.map((s) => s.replica).sort());
  // More bytes, a later report.
  for (let i = 8; i < 12; i++) await new Promise<void>((resolve, reject) => sftp.write(handle, chunk, 0, chunk.length, i * chunk.length, (err) => (err ? reject(err) : resolve())));
  await eventually('the SFTP bytes grow', async () => (await sessionsOf('edge-2', 'wendy')).find((s) => s.protocol === 'sftp')?.transfer?.bytes === 12 * chunk.length, 4000);
  t.diagnostic(`SFTP upload on ${sftpRecord.replica}, FTP upload on ${ftpRecord.replica}`);

  data.destroy();
  ftp.close();
  await closeClient(ssh);
});

test('DELETE /sessions/{id} ends an FTP session held by another replica with 421, and an SFTP one with a disconnect, within a second', async (t: TestContext) => {
  assert.equal((await api('edge-1').post('/users', { name: 'xena', password: PASSWORD })).status, 201);
  await eventually('every replica knows xena', async () => {
    for (const r of cluster.replicas) if ((await api(r.id).get('/users/xena')).status !== 200) return false;
    return true;
  });
  const ftp = [await ftpThroughBalancer('xena'), await ftpThroughBalancer('xena')];
  const sftp = await sftpThroughBalancer('xena');
  const items = await eventually('three sessions', async () => {
    const all = await sessionsOf('edge-1', 'xena');
    return all.length === 3 ? all : undefined;
  });

  for (const record of items) {
    // Ask through a replica that does not hold the session: the kick travels through Redis.
    const via = cluster.replicas.find((r) => r.id !== record.replica)!.id;
    const started = Date.now();
    const res = await api(via).delete(`/sessions/${record.id}`);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.replica, record.replica);
    if (record.protocol === 'sftp') {
      const closedAt = (await within(1000, sftp.closed, 'SFTP disconnect')) as number;
      t.diagnostic(`SFTP session on ${record.replica} ended through ${via} in ${closedAt - started} ms`);
    } else {
      const client = ftp.find((f) => f.source === record.client)!.client;
      const reply = await client.reply(1000);
      assert.equal(reply.code, 421);
      await client.waitClosed(1000);
      t.diagnostic(`FTP session on ${record.replica} ended through ${via} in ${Date.now() - started} ms`);
    }
    assert.ok(Date.now() - started < 1000);
  }
  await eventually('none left', async () => (await sessionsOf('edge-3', 'xena')).length === 0, 3000);
});

test('PostgreSQL cut off: existing users keep logging in on every replica, API writes answer 503, and all recovers by itself', async () => {
  assert.equal((await api('edge-1').post('/users', { name: 'yuri', password: PASSWORD })).status, 201);
  await eventually('every replica knows yuri', async () => {
    for (const r of cluster.replicas) if ((await api(r.id).get('/users/yuri')).status !== 200) return false;
    return true;
  });
  await proxy.cut();
  try {
    for (const replica of cluster.replicas) {
      const { code, client } = await loginAt(replica.id, 'yuri');
      client.close();
      assert.equal(code, 230, `${replica.id} logs yuri in from memory`);
      const write = await api(replica.id).post('/users', { name: `zoe-${replica.id}`, password: PASSWORD });
      assert.equal(write.status, 503, `${replica.id}: ${JSON.stringify(write.body)}`);
    }
  } finally {
    await proxy.reopen();
  }
  const created = await eventually('writes work again', async () => {
    const res = await api('edge-3').post('/users', { name: 'zoe', password: PASSWORD });
    return res.status === 201 ? res : undefined;
  }, 30_000, 250);
  assert.equal(created.body.name, 'zoe');
  await eventually('zoe logs in through edge-1', async () => {
    const { code, client } = await loginAt('edge-1', 'zoe');
    client.close();
    return code === 230;
  }, 10_000, 200);
});
