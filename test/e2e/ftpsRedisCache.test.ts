import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { constants } from 'node:crypto';
import { once } from 'node:events';
import { connect, type TLSSocket, type ConnectionOptions } from 'node:tls';
import { after, test } from 'node:test';
import { createRedisConnection } from '@ftp/cluster-state';
import { startWithImplicitTls } from '../support/ftpsClient';
import type { TestServer } from '../support/server';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:${randomUUID()}:`;
const servers: TestServer[] = [];

async function redisClient() {
  const redis = createRedisConnection(REDIS_URL);
  await once(redis, 'ready');
  return redis;
}

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  const redis = await redisClient();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

/** A TLS 1.2 client that does not do tickets, as older FTP clients: only the session-ID cache can resume it. */
function dial(port: number, session?: Buffer): Promise<TLSSocket> {
  const options: ConnectionOptions = {
    host: '127.0.0.1',
    port,
    rejectUnauthorized: false,
    maxVersion: 'TLSv1.2',
    secureOptions: constants.SSL_OP_NO_TICKET,
    session,
  };
  return new Promise((resolve, reject) => {
    const socket = connect(options, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Connects to `first`, then offers that session to `second`; true when `second` resumed it. */
async function resumedAcross(first: TestServer, second: TestServer): Promise<boolean> {
  const a = await dial(first.edge.implicitPort);
  // The session is only complete once the server's greeting has come through.
  await new Promise((resolve) => a.once('data', resolve));
  const session = a.getSession();
  a.destroy();
  assert.ok(session, 'the first server handed out a session');
  const b = await dial(second.edge.implicitPort, session);
  const resumed = b.isSessionReused();
  b.destroy();
  return resumed;
}

test('with REDIS_URL, a TLS session made on one replica resumes on another (clients without tickets)', async () => {
  const env = { REDIS_URL, FTP_REDIS_PREFIX: prefix };
  const [one, two] = await Promise.all([startWithImplicitTls({ env }), startWithImplicitTls({ env })]);
  servers.push(one, two);
  assert.equal(await resumedAcross(one, two), true);
  assert.equal(await resumedAcross(two, one), true);
  const redis = await redisClient();
  assert.ok((await redis.keys(`${prefix}tls:session:*`)).length >= 2, 'sessions are stored under the prefix');
  redis.disconnect();
});

/** A TLS 1.3 connection (with tickets), resuming `session` if given; resolves with the newest session once the greeting came. */
async function dialTls13(port: number, session?: Buffer): Promise<{ resumed: boolean; session: Buffer }> {
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3', session });
  let latest: Buffer | undefined;
  socket.on('session', (s: Buffer) => (latest = s));
  await once(socket, 'secureConnect');
  await once(socket, 'data');
  const resumed = socket.isSessionReused();
  socket.destroy();
  // A resumed session gets no new ticket unless FTP_TLS_RENEW_TICKETS is on: the one it came with stays valid.
  const newest = latest ?? session;
  assert.ok(newest, 'the server sent a ticket');
  return { resumed, session: newest };
}

test('with REDIS_URL, TLS 1.3 sessions are not stored (they resume from their tickets); TLS 1.2 ones without tickets are', async () => {
  const own = `${prefix}tls13:`;
  const server = await startWithImplicitTls({ env: { REDIS_URL, FTP_REDIS_PREFIX: own } });
  servers.push(server);
  const redis = await redisClient();
  try {
    const stored = async () => (await redis.keys(`${own}tls:session:*`)).length;
    const first = await dialTls13(server.edge.implicitPort);
    assert.equal(first.resumed, false);
    const second = await dialTls13(server.edge.implicitPort, first.session);
    assert.equal(second.resumed, true, 'TLS 1.3 resumes without the cache');
    assert.equal((await dialTls13(server.edge.implicitPort, second.session)).resumed, true, 'and again');
    assert.equal(await stored(), 0, 'no TLS 1.3 session in Redis');
    assert.equal(await resumedAcross(server, server), true, 'a TLS 1.2 client without tickets still resumes');
    assert.ok((await stored()) >= 1, 'its session is in Redis');
  } finally {
    redis.disconnect();
  }
});

test('without Redis, the same client gets a full handshake on the other replica', async () => {
  const [one, two] = await Promise.all([startWithImplicitTls(), startWithImplicitTls()]);
  servers.push(one, two);
  assert.equal(await resumedAcross(one, two), false);
  assert.equal(await resumedAcross(one, one), true, 'the replica that issued it still resumes it');
});

test('a Redis that is away costs full handshakes, never a failed or stuck one', async () => {
  const env = { REDIS_URL: 'redis://127.0.0.1:1', FTP_REDIS_PREFIX: prefix };
  const server = await startWithImplicitTls({ env });
  servers.push(server);
  const started = Date.now();
  assert.equal(await resumedAcross(server, server), false);
  assert.ok(Date.now() - started < 3000, 'both handshakes completed promptly');
  assert.ok(server.logs.some((l) => String(l.msg).startsWith('TLS session cache: Redis not reachable')));
});
