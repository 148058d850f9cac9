// The SFTP front door shares the FTP front door's protections and bookkeeping: brute-force bans (in memory and in
// Redis across two replicas), per-user session limits, the pre-login cap per address and the login grace time; and its
// transfers show up in the same metrics (protocol="sftp") and audit log.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createRedisConnection } from '@ftp/cluster-state';
import { RawClient } from '../support/rawClient';
import { deleteKeysUnder } from '../support/redisKeys';
import { startRedisProxy } from '../support/redisProxy';
import { TEST_PASSWORD, type TestServer, type TestServerOptions } from '../support/server';
import { call, closeClient, rawSsh, sftpOf, sshConnect, startSftpServer, until, userYaml, waitForLog, type LogLine } from '../support/sftpClient';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:${randomUUID()}:`;
const servers: TestServer[] = [];
let usedRedis = false;

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  if (!usedRedis) return;
  const redis = createRedisConnection(REDIS_URL);
  await once(redis, 'ready');
  await deleteKeysUnder(redis, prefix);
  redis.disconnect();
});

async function start(options: TestServerOptions = {}): Promise<TestServer> {
  const server = await startSftpServer(options);
  servers.push(server);
  return server;
}

async function ftpGuess(server: TestServer, from: string, user: string, password: string): Promise<number> {
  const c = await RawClient.connect(server.port, server.host, from);
  try {
    const greeting = await c.reply(15_000);
    if (greeting.code !== 220) return greeting.code;
    const u = await c.command(`USER ${user}`);
    if (u.code !== 331) return u.code;
    return (await c.command(`PASS ${password}`)).code;
  } finally {
    c.close();
  }
}

/** An SFTP login of alice from `from`; resolves true when the sftp subsystem answered, false when refused. */
async function sftpLogin(server: TestServer, from: string, password = TEST_PASSWORD): Promise<boolean> {
  let client;
  try {
    client = await sshConnect({ port: server.edge.sftpPort, localAddress: from, username: 'alice', password, readyTimeout: 30_000 });
  } catch {
    return false;
  }
  try {
    const sftp = await sftpOf(client);
    return (await call<string>((cb) => sftp.realpath('.', cb))) === '/';
  } finally {
    await closeClient(client);
  }
}

for (const mode of ['memory', 'redis'] as const) {
  describe(`bans shared with FTP (${mode} cluster state)`, () => {
    test('two wrong FTP passwords and one wrong SFTP password ban the address on both front doors; another address still works', { timeout: 90_000 }, async () => {
      const env = { FTP_BAN_AFTER_FAILURES: '3' };
      let a: TestServer;
      let b: TestServer;
      if (mode === 'memory') {
        a = b = await start({ env });
      } else {
        usedRedis = true;
        const shared = { ...env, REDIS_URL, FTP_REDIS_PREFIX: `${prefix}${randomUUID()}:` };
        [a, b] = [await start({ env: shared }), await start({ env: shared })];
      }
      const attacker = mode === 'memory' ? '127.0.0.31' : '127.0.0.33';
      assert.equal(await ftpGuess(a, attacker, 'alice', 'wrong-1'), 530);
      assert.equal(await ftpGuess(a, attacker, 'alice', 'wrong-2'), 530);
      // The third failure, over SFTP on the other replica, bans.
      await assert.rejects(sshConnect({ port: b.edge.sftpPort, localAddress: attacker, username: 'alice', password: 'wrong-3' }));
      const failed = await waitForLog(b, (l) => l.msg === 'login failed' && l.protocol === 'sftp' && l.client === attacker, 'the SFTP failure');
      assert.equal(failed.user, 'alice');
      await waitForLog(b, (l) => l.msg === 'address banned after repeated failed logins' && l.client === attacker, 'the ban');

      for (const replica of mode === 'memory' ? [a] : [a, b]) {
        // A new SFTP connection from the banned address is dropped before the SSH banner.
        const raw = await rawSsh(replica.edge.sftpPort, attacker);
        await assert.rejects(raw.banner(15_000), /no SSH banner/);
        assert.equal(raw.received(), '', 'not a byte of SSH');
        await assert.rejects(sshConnect({ port: replica.edge.sftpPort, localAddress: attacker, username: 'alice', password: TEST_PASSWORD }), 'ssh2 client refused, even with the right password');
        assert.equal(await ftpGuess(replica, attacker, 'alice', TEST_PASSWORD), 421, 'FTP: 421');
        await waitForLog(replica, (l) => l.msg === 'connection refused: address is banned after failed logins' && l.protocol === 'sftp' && l.client === attacker, 'the SFTP refusal');
      }
      const other = mode === 'memory' ? '127.0.0.32' : '127.0.0.34';
      assert.equal(await sftpLogin(b, other), true, 'another address logs in over SFTP');
      assert.equal(await ftpGuess(a, other, 'alice', TEST_PASSWORD), 230, 'and over FTP');
    });
  });
}

test('the cluster state away at login: SFTP gets a "service not available" disconnect that says so, not failed authentication; FTP gets 421', { timeout: 60_000 }, async () => {
  usedRedis = true;
  const proxy = await startRedisProxy(REDIS_URL);
  try {
    const server = await start({ env: { REDIS_URL: proxy.url, FTP_REDIS_PREFIX: `${prefix}away:` } });
    // Admitted while Redis is there; Redis goes away when the client is about to authenticate.
    const refused = await sshConnect({
      port: server.edge.sftpPort,
      username: 'alice',
      authHandler: (_methods, _partial, next) => {
        void proxy.cut().then(() => next({ type: 'password', username: 'alice', password: TEST_PASSWORD }));
      },
    }).then(
      (client) => closeClient(client).then(() => assert.fail('logged in without the cluster state')),
      (err: Error & { code?: number }) => err,
    );
    assert.equal(refused.code, 7, `SSH_DISCONNECT_SERVICE_NOT_AVAILABLE, got ${refused.code}: ${refused.message}`);
    assert.match(refused.message, /Service temporarily unavailable, try again later/);
    await waitForLog(server, (l) => l.msg === 'cluster state unavailable: login refused' && l.protocol === 'sftp', 'the refusal logged');
    assert.ok(!server.logs.some((l) => l.msg === 'login failed' && l.protocol === 'sftp'), 'not counted as a failed login');
    assert.equal(await ftpGuess(server, '127.0.0.1', 'alice', TEST_PASSWORD), 421, 'FTP: 421');
  } finally {
    await proxy.cut();
  }
});

describe('session limits shared with FTP', () => {
  test('a user with max_sessions: 2 holding two FTP sessions gets no SFTP session until one ends', { timeout: 90_000 }, async () => {
    const server = await start({ extraUsers: await userYaml('limited', { password: 'limited-password', maxSessions: 2 }) });
    const login = async () => {
      const c = await RawClient.connect(server.port);
      await c.login('limited', 'limited-password');
      return c;
    };
    const ftp = [await login(), await login()];
    const sftp = () => sshConnect({ port: server.edge.sftpPort, username: 'limited', password: 'limited-password', readyTimeout: 30_000 });
    await assert.rejects(sftp(), 'the third session, over SFTP, is refused');
    const refused = await waitForLog(server, (l) => l.msg === 'login refused: too many sessions for this user' && l.protocol === 'sftp', 'the refusal');
    assert.deepEqual([refused.user, refused.limit], ['limited', 2]);
    assert.equal((await ftp[0].command('QUIT')).code, 221);
    await ftp[0].waitClosed(15_000);
    // The FTP session's slot is released asynchronously after its close: SFTP gets in once it is.
    let client: Awaited<ReturnType<typeof sftp>> | undefined;
    await until('an SFTP login once an FTP session ended', async () => (client = await sftp().catch(() => undefined)) !== undefined, 30_000);
    try {
      const channel = await sftpOf(client!);
      assert.equal(await call<string>((cb) => channel.realpath('.', cb)), '/');
      // And now FTP is the one refused: 2 sessions (1 FTP + 1 SFTP) are held.
      const third = await RawClient.connect(server.port);
      assert.equal((await third.reply(15_000)).code, 220);
      assert.equal((await third.command('USER limited')).code, 331);
      assert.notEqual((await third.command('PASS limited-password')).code, 230);
      third.close();
    } finally {
      await closeClient(client!);
      ftp[1].close();
    }
  });
});

describe('before login', () => {
  test('a third unauthenticated connection from one address is closed without an SSH banner', { timeout: 60_000 }, async () => {
    const server = await start({ env: { FTP_MAX_UNAUTHENTICATED_PER_IP: '2' } });
    const port = server.edge.sftpPort;
    const held = [await rawSsh(port, '127.0.0.35'), await rawSsh(port, '127.0.0.35')];
    for (const raw of held) assert.match(await raw.banner(), /^SSH-2\.0-ftp-cluster$/);
    const third = await rawSsh(port, '127.0.0.35');
    await assert.rejects(third.banner(15_000), /no SSH banner/);
    assert.equal(third.received(), '');
    await waitForLog(server, (l) => l.msg === 'connection refused: session limit reached' && l.reason === 'max-unauthenticated' && l.protocol === 'sftp', 'the refusal');
    const elsewhere = await rawSsh(port, '127.0.0.36');
    assert.match(await elsewhere.banner(), /^SSH-2\.0-/, 'another address is not affected');
    elsewhere.destroy();
    // A slot frees when a pre-login connection goes.
    held[0].destroy();
    await until('a new connection gets the banner once a slot is free', async () => {
      const next = await rawSsh(port, '127.0.0.35');
      const ok = await next.banner(5_000).then(
        () => true,
        () => false,
      );
      next.destroy();
      return ok;
    });
    held[1].destroy();
  });

  test('FTP_LOGIN_GRACE_TIME=1: a connection that only reads the banner is closed after about a second', { timeout: 60_000 }, async () => {
    const server = await start({ env: { FTP_LOGIN_GRACE_TIME: '1' } });
    const raw = await rawSsh(server.edge.sftpPort, '127.0.0.37');
    assert.match(await raw.banner(), /^SSH-2\.0-ftp-cluster$/);
    const closedAfter = await raw.waitClosed(20_000);
    assert.ok(closedAfter >= 900 && closedAfter < 10_000, `closed after ${closedAfter} ms`);
    await waitForLog(server, (l) => l.msg === 'login grace time over: closing' && l.protocol === 'sftp' && l.client === '127.0.0.37', 'the grace log line');
  });
});

describe('telemetry', () => {
  test('an SFTP upload and download are counted under protocol="sftp" and audited with protocol sftp', { timeout: 60_000 }, async () => {
    const server = await start();
    const { metrics } = server.edge;
    const value = async (metric: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> }, labels: Record<string, string>) =>
      (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((n, v) => n + v.value, 0);
    const payload = Buffer.alloc(300_001, 7);
    const client = await sshConnect({ port: server.edge.sftpPort, username: 'alice', password: TEST_PASSWORD });
    try {
      assert.equal(await value(metrics.sessionsActive, { protocol: 'sftp' }), 1, 'one SFTP session active');
      const sftp = await sftpOf(client);
      await call((cb) => sftp.writeFile('/metered.bin', payload, cb));
      const back = await call<Buffer>((cb) => sftp.readFile('/metered.bin', cb));
      assert.ok(back.equals(payload));
      assert.ok(readFileSync(join(server.dataDir, 'alice/metered.bin')).equals(payload));
    } finally {
      await closeClient(client);
    }
    await until('the SFTP session is closed', async () => (await value(metrics.sessionsActive, { protocol: 'sftp' })) === 0);
    assert.equal(await value(metrics.loginsTotal, { protocol: 'sftp', result: 'success' }), 1);
    assert.equal(await value(metrics.transfersTotal, { protocol: 'sftp', direction: 'upload', result: 'ok' }), 1);
    assert.equal(await value(metrics.transfersTotal, { protocol: 'sftp', direction: 'download', result: 'ok' }), 1);
    assert.equal(await value(metrics.transfersTotal, { protocol: 'ftp' }), 0, 'nothing counted as FTP');
    assert.equal(await value(metrics.transferBytes, { protocol: 'sftp', direction: 'upload' }), payload.length);
    assert.equal(await value(metrics.transferBytes, { protocol: 'sftp', direction: 'download' }), payload.length);
    const audited = (event: string) => server.logs.find((l: LogLine) => l.audit === true && l.event === event && l.path === '/metered.bin');
    for (const event of ['upload', 'download']) {
      const line = audited(event);
      assert.ok(line, `an audit line for the ${event}`);
      assert.deepEqual([line.protocol, line.user, line.bytes, line.result, line.data], ['sftp', 'alice', payload.length, 'ok', 'ssh']);
    }
    // The same counters as the Prometheus text on /metrics shows them.
    const text = await metrics.registry.metrics();
    assert.match(text, /ftp_transfers_total\{protocol="sftp",direction="upload",result="ok"\} 1/);
    assert.match(text, /ftp_logins_total\{protocol="sftp",result="success"\} 1/);
  });
});
