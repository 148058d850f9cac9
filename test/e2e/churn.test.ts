import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RawClient } from '../support/rawClient';
import { expectNothingLeaked, passiveDownload, resourceSnapshot, passiveUpload, rawLogin, sleep, waitFor } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';

const sessionsActive = async (server: TestServer) => (await server.edge.metrics.sessionsActive.get()).values.reduce((n, v) => n + v.value, 0);

/** Nobody crashed and nothing unexpected was logged at error level. */
function assertNoCrash(server: TestServer) {
  const bad = server.logs.filter((l) => l.msg === 'session crashed' || (l.level as number) >= 50);
  assert.deepEqual(bad, []);
}

/** A plain connection that does its own framing (or none at all). */
async function plainSocket(port: number, options: { allowHalfOpen?: boolean; localAddress?: string } = {}): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: options.allowHalfOpen, localAddress: options.localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

async function failLogin(c: RawClient, user: string) {
  assert.equal((await c.command(`USER ${user}`)).code, 331);
  return c.command('PASS wrong password');
}

describe('connection churn', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test('2000 connections dropped at once or after USER (100 at a time) leave nothing behind', { timeout: 30_000 }, async () => {
    // A first session warms up lazily created resources so that they are not counted as leaks.
    const warm = await rawLogin(server);
    assert.equal((await passiveDownload(warm, 'LIST')).final.code, 226);
    warm.close();
    await waitFor('warm-up session to close', async () => (await sessionsActive(server)) === 0);
    const before = resourceSnapshot();
    const acceptedBefore = (await server.edge.metrics.connectionsTotal.get()).values.find((v) => v.labels.result === 'accepted')?.value ?? 0;

    const TOTAL = 2000;
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        // From 127.0.0.3: the 2000 sockets this leaves in TIME_WAIT then do not block ports on 127.0.0.1.
        const socket = await plainSocket(server.port, { localAddress: '127.0.0.3' });
        const closed = once(socket, 'close');
        // Odd ones send USER and vanish without reading a single reply.
        if (i % 2 === 1) socket.write('USER x\r\n', () => socket.destroy());
        else socket.destroy();
        await closed;
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 100 }, worker));
    assert.ok(Date.now() - started < 20_000);

    await waitFor('ftp_sessions_active back to 0', async () => (await sessionsActive(server)) === 0, 10_000);
    const acceptedAfter = (await server.edge.metrics.connectionsTotal.get()).values.find((v) => v.labels.result === 'accepted')?.value ?? 0;
    assert.ok(acceptedAfter - acceptedBefore >= TOTAL * 0.9, `accepted ${acceptedAfter - acceptedBefore} of ${TOTAL}`);
    assert.deepEqual(await server.edge.cluster.sessions.list(), [], 'no session record left in cluster state');

    // The server still serves a normal session.
    const c = await rawLogin(server);
    assert.equal((await passiveUpload(c, 'STOR after-churn.txt', Buffer.from('still here\n'))).final.code, 226);
    const back = await passiveDownload(c, 'RETR after-churn.txt');
    assert.equal(back.body.toString(), 'still here\n');
    assert.match((await passiveDownload(c, 'LIST')).body.toString(), /after-churn\.txt/);
    assert.equal((await c.command('QUIT')).code, 221);
    await c.waitClosed();

    await waitFor('ftp_sessions_active back to 0', async () => (await sessionsActive(server)) === 0);
    await expectNothingLeaked(before, 5);
    assert.equal(await server.edge.cluster.ports.inUse(), 0);
    assertNoCrash(server);
  });
});

describe('idle timeout', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ env: { FTP_IDLE_TIMEOUT: '1' } });
  });
  after(() => server.close());

  test('a silent client gets 421 and is closed, before and after login', async () => {
    const anon = await RawClient.connect(server.port);
    assert.equal((await anon.reply()).code, 220);
    const c = await rawLogin(server);
    const started = Date.now();
    for (const client of [anon, c]) {
      const r = await client.reply(4000);
      assert.equal(r.code, 421);
      assert.match(r.text, /idle/i);
      await client.waitClosed(3000);
    }
    assert.ok(Date.now() - started >= 800);
    assert.ok(server.logs.some((l) => l.msg === 'idle timeout: closing control connection'));
    await waitFor('sessions closed', async () => (await sessionsActive(server)) === 0);
  });

  test('a client that keeps talking is not idle', async () => {
    const c = await rawLogin(server);
    for (let i = 0; i < 6; i++) {
      await sleep(400);
      assert.equal((await c.command('NOOP')).code, 200);
    }
    c.close();
  });

  test('a silent client that also never closes its side is still disconnected', { timeout: 20_000 }, async () => {
    const socket = await plainSocket(server.port, { allowHalfOpen: true });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => (received += text));
    await once(socket, 'end'); // the server's FIN after the 421; this client keeps its side open
    assert.match(received, /^220 .*\r\n421 /s);
    await waitFor('the server to drop the half-closed session', async () => (await sessionsActive(server)) === 0, 10_000);
    socket.destroy();
  });
});

describe('brute force and session limits', () => {
  test('FTP_BAN_AFTER_FAILURES=3: third bad password → 421 and closed; the address stays banned, others are not', async () => {
    const server = await startTestServer({ env: { FTP_BAN_AFTER_FAILURES: '3' } });
    try {
      const c = await RawClient.connect(server.port);
      assert.equal((await c.reply()).code, 220);
      assert.equal((await failLogin(c, server.user)).code, 530);
      assert.equal((await failLogin(c, 'nobody')).code, 530);
      const third = await failLogin(c, server.user);
      assert.equal(third.code, 421);
      await c.waitClosed();
      assert.ok(server.logs.some((l) => l.msg === 'address banned after repeated failed logins'));

      const again = await RawClient.connect(server.port);
      const refused = await again.reply();
      assert.equal(refused.code, 421);
      await again.waitClosed();

      // Even the right password from the banned address is not asked for.
      const other = await rawLogin(server, '127.0.0.2');
      assert.equal((await other.command('PWD')).code, 257);
      other.close();
      assert.equal((await server.edge.metrics.bansTotal.get()).values[0]?.value, 1);
    } finally {
      await server.close();
    }
  });

  test('hanging up right after PASS: a wrong password still counts towards the ban, a right one is no "limit" refusal', async () => {
    const server = await startTestServer({ env: { FTP_BAN_AFTER_FAILURES: '3' } });
    try {
      const hangUpAfterPass = async (password: string) => {
        const socket = await plainSocket(server.port);
        socket.write(`USER ${server.user}\r\nPASS ${password}\r\n`, () => socket.destroy());
        await once(socket, 'close');
      };
      await hangUpAfterPass(server.password);
      const passDone = async () => (await server.edge.metrics.commandsTotal.get()).values.some((v) => v.labels.verb === 'PASS');
      await waitFor('the password check to finish', passDone);
      await waitFor('sessions closed', async () => (await sessionsActive(server)) === 0);
      await sleep(50);
      assert.deepEqual(
        server.logs.filter((l) => l.msg === 'login refused: too many sessions for this user'),
        [],
        'no per-user limit is configured: a vanished client must not be reported as over it',
      );
      const limited = (await server.edge.metrics.loginsTotal.get()).values.find((v) => v.labels.result === 'limited');
      assert.equal(limited?.value ?? 0, 0);

      for (let i = 0; i < 3; i++) await hangUpAfterPass('wrong');
      await waitFor('the ban', () => server.logs.some((l) => l.msg === 'address banned after repeated failed logins'));
      const c = await RawClient.connect(server.port);
      assert.equal((await c.reply()).code, 421, 'failures from clients that hung up still count');
      await c.waitClosed();
    } finally {
      await server.close();
    }
  });

  test('FTP_MAX_SESSIONS_PER_IP=2: the third connection from one address → 421; another address is admitted', async () => {
    const server = await startTestServer({ env: { FTP_MAX_SESSIONS_PER_IP: '2' } });
    try {
      const a = await RawClient.connect(server.port);
      const b = await RawClient.connect(server.port);
      assert.equal((await a.reply()).code, 220);
      assert.equal((await b.reply()).code, 220);
      const c = await RawClient.connect(server.port);
      assert.equal((await c.reply()).code, 421);
      await c.waitClosed();
      const d = await RawClient.connect(server.port, '127.0.0.1', '127.0.0.2');
      assert.equal((await d.reply()).code, 220);
      // A freed slot is usable again.
      a.close();
      await waitFor('slot freed', async () => (await sessionsActive(server)) === 2);
      const e = await rawLogin(server);
      assert.equal((await e.command('NOOP')).code, 200);
      for (const x of [b, d, e]) x.close();
    } finally {
      await server.close();
    }
  });

  test('FTP_MAX_SESSIONS_PER_USER=1: a second login of alice → 421 and closed', async () => {
    const server = await startTestServer({ env: { FTP_MAX_SESSIONS_PER_USER: '1' } });
    try {
      const a = await rawLogin(server);
      const b = await RawClient.connect(server.port);
      assert.equal((await b.reply()).code, 220);
      assert.equal((await b.command(`USER ${server.user}`)).code, 331);
      const refused = await b.command(`PASS ${server.password}`);
      assert.equal(refused.code, 421);
      await b.waitClosed();
      assert.equal((await a.command('NOOP')).code, 200, 'the first session is unaffected');
      assert.equal((await a.command('QUIT')).code, 221);
      await a.waitClosed();
      await waitFor('first session closed', async () => (await sessionsActive(server)) === 0);
      const c = await rawLogin(server);
      assert.equal((await c.command('PWD')).code, 257);
      c.close();
    } finally {
      await server.close();
    }
  });
});
