import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createRedisConnection } from '@ftp/cluster-state';
import { encodeProxyV2 } from '@ftp/session-core';
import { freeLoopbackPort, FtpsControl } from '../support/ftpsClient';
import { RawClient } from '../support/rawClient';
import { readAll, sleep } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';

// Two replicas sharing Redis, each on its own loopback address with the same passive range: a data connection
// that reaches the replica which did not lease the port must be relayed to the one that did.
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:relay:${process.pid}:${Date.now()}:`;
let owner: TestServer;
let peer: TestServer;
/** A peer without the zero-copy addon: it relays through Node's streams. */
let streamPeer: TestServer;

before(async () => {
  const shared = { REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_LOG_LEVEL: 'info' };
  owner = await startTestServer({ env: { ...shared, FTP_HOST: '127.0.0.11', FTP_REPLICA_ID: 'owner', FTP_RELAY_PORT: String(await freeLoopbackPort()) } });
  const range = `${owner.config.pasvRange.min}-${owner.config.pasvRange.max}`;
  peer = await startTestServer({
    env: { ...shared, FTP_HOST: '127.0.0.12', FTP_REPLICA_ID: 'peer', FTP_PASV_RANGE: range, FTP_RELAY_PORT: String(await freeLoopbackPort()) },
  });
  streamPeer = await startTestServer({
    env: { ...shared, FTP_HOST: '127.0.0.13', FTP_REPLICA_ID: 'stream-peer', FTP_PASV_RANGE: range, FTP_RELAY_PORT: String(await freeLoopbackPort()), FTP_ZERO_COPY: 'off' },
  });
});

after(async () => {
  await Promise.all([owner?.close(), peer?.close(), streamPeer?.close()]);
  const redis = createRedisConnection(REDIS_URL);
  await new Promise((resolve) => redis.once('ready', resolve));
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

async function login(): Promise<RawClient> {
  const client = await RawClient.connect(owner.port, '127.0.0.11', '127.0.0.1');
  await client.login(owner.user, owner.password);
  return client;
}

/** PASV on the owner, data connection to the same port on the peer (`host`: which peer). */
async function passiveViaPeer(client: RawClient, host = '127.0.0.12'): Promise<Socket> {
  const reply = await client.command('PASV');
  assert.equal(reply.code, 227, reply.text);
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.text)!;
  const port = Number(m[5]) * 256 + Number(m[6]);
  const socket = connect({ host, port, localAddress: '127.0.0.1' });
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

const relayed = async (server: TestServer, side: 'sent' | 'received') =>
  (await server.edge.metrics.relayedConnections.get()).values.find((v) => v.labels.side === side)?.value ?? 0;

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

test('a data connection that reaches the wrong replica is relayed to the owner, both ways, byte-exact', async () => {
  const client = await login();
  const payload = randomBytes(8 * 1024 * 1024 + 7);

  const up = await passiveViaPeer(client);
  assert.equal((await client.command('STOR relayed.bin')).code, 150);
  up.end(payload);
  assert.equal((await client.reply(15_000)).code, 226);
  assert.equal(sha(readFileSync(join(owner.dataDir, 'alice', 'relayed.bin'))), sha(payload));

  const down = await passiveViaPeer(client);
  const body = readAll(down);
  assert.equal((await client.command('RETR relayed.bin')).code, 150);
  assert.equal((await client.reply(15_000)).code, 226);
  assert.equal(sha(await body), sha(payload));

  assert.equal(await relayed(peer, 'sent'), 2);
  assert.equal(await relayed(owner, 'received'), 2);
  assert.ok(peer.logs.some((l) => l.msg === 'data connection relayed to the replica that owns its lease' && l.owner === 'owner'));
  client.close();
});

test('a peer without the zero-copy addon relays through streams: both ways byte-exact, a reset upload stays a partial', async () => {
  const client = await login();
  const payload = randomBytes(3 * 1024 * 1024 + 5);
  const up = await passiveViaPeer(client, '127.0.0.13');
  assert.equal((await client.command('STOR streamed.bin')).code, 150);
  up.end(payload);
  assert.equal((await client.reply(15_000)).code, 226, 'the client\'s end reaches the owner once the peer recorded it');
  assert.equal(sha(readFileSync(join(owner.dataDir, 'alice', 'streamed.bin'))), sha(payload));

  const down = await passiveViaPeer(client, '127.0.0.13');
  const body = readAll(down);
  assert.equal((await client.command('RETR streamed.bin')).code, 150);
  assert.equal((await client.reply(15_000)).code, 226);
  assert.equal(sha(await body), sha(payload));

  const cut = await passiveViaPeer(client, '127.0.0.13');
  assert.equal((await client.command('STOR streamed-cut.bin')).code, 150);
  cut.write(randomBytes(256 * 1024));
  await sleep(300);
  cut.resetAndDestroy();
  assert.notEqual((await client.reply(15_000)).code, 226, 'a cut upload is not acknowledged');
  assert.throws(() => readFileSync(join(owner.dataDir, 'alice', 'streamed-cut.bin')), /ENOENT/);
  assert.ok(streamPeer.logs.some((l) => l.msg === 'data connection relayed to the replica that owns its lease' && l.io === 'stream'));
  client.close();
});

test('a client that resets a relayed upload leaves a resumable partial, never a published half file', async () => {
  // The chaos run found it: the relay passed the client's reset on as a FIN, so the owner read a clean end of file
  // and published the first half under the final name.
  const client = await login();
  const up = await passiveViaPeer(client);
  assert.equal((await client.command('STOR cut.bin')).code, 150);
  up.write(randomBytes(256 * 1024));
  await sleep(300);
  up.resetAndDestroy();
  const reply = await client.reply(15_000);
  assert.notEqual(reply.code, 226, `a cut upload must not be acknowledged: ${reply.code} ${reply.text}`);
  await sleep(200);
  assert.throws(() => readFileSync(join(owner.dataDir, 'alice', 'cut.bin')), /ENOENT/, 'nothing published under the name');
  const size = await client.command('SIZE cut.bin');
  assert.equal(size.code, 213, 'the bytes that arrived wait as a resumable partial');
  client.close();
});

test('FTPS through the relay: TLS passes untouched, the owner sees its own session resumed', async () => {
  const control = await FtpsControl.connect(owner.port, { host: '127.0.0.11', dataHost: '127.0.0.12' });
  await control.secureLogin(owner.user, owner.password);
  const before = await relayed(peer, 'sent');
  const payload = randomBytes(2 * 1024 * 1024);
  const up = await control.transfer('STOR tls-relayed.bin', 'resume', payload);
  assert.equal(up.final?.code, 226, up.final?.text);
  assert.equal(sha(readFileSync(join(owner.dataDir, 'alice', 'tls-relayed.bin'))), sha(payload));
  const down = await control.transfer('RETR tls-relayed.bin', 'resume');
  assert.equal(down.final?.code, 226);
  assert.equal(down.resumed, true, 'the data connection resumed the control session, across the relay');
  assert.equal(sha(down.data), sha(payload));
  assert.equal(await relayed(peer, 'sent'), before + 2);
  control.socket.destroy();
});

test('the relay port refuses a header that does not carry the session of a lease', async () => {
  const client = await login();
  const reply = await client.command('PASV');
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.text)!;
  const port = Number(m[5]) * 256 + Number(m[6]);
  const forged = connect({ host: '127.0.0.11', port: owner.config.relayPort });
  forged.on('error', () => {});
  await new Promise((resolve) => forged.once('connect', resolve));
  forged.write(
    encodeProxyV2({
      source: { address: '127.0.0.1', port: 40000 },
      destination: { address: '127.0.0.11', port },
      tlvs: [[0xe0, Buffer.from('not-the-session')]],
    }),
  );
  await new Promise((resolve) => forged.once('close', resolve));
  assert.ok(owner.logs.some((l) => String(l.msg).includes('for a lease this replica does not hold')));

  // The real client's data connection still gets through.
  const data = await passiveViaPeerOnPort(port);
  const body = readAll(data);
  assert.equal((await client.command('LIST')).code, 150);
  assert.equal((await client.reply(15_000)).code, 226);
  await body;
  client.close();
});

async function passiveViaPeerOnPort(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.12', port, localAddress: '127.0.0.1' });
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

test('a connection for a port nobody leased is refused by every replica, not relayed', async () => {
  const before = await relayed(peer, 'sent');
  const port = owner.config.pasvRange.max;
  const stranger = connect({ host: '127.0.0.12', port, localAddress: '127.0.0.2' });
  stranger.on('error', () => {});
  await new Promise((resolve) => stranger.once('close', resolve));
  await sleep(50);
  assert.equal(await relayed(peer, 'sent'), before);
});

// Chaos finding 2 (a relayed download that ended with no byte and a 226): many back-to-back downloads, every one on a
// data connection relayed natively (splice both ways) by the replica that does not own the lease, each byte checked.
// Not reproduced this way (~45,000 relayed downloads through HAProxy and in-process without a loss); this guards it.
const DOWNLOADS = 1200;
const PARALLEL = 6;
const SIZES = [1, 2048, 32 * 1024, 64 * 1024, 64 * 1024 + 1, 256 * 1024];

/** Everything the data connection brings until it closes, and how it ended. */
function received(socket: Socket): Promise<{ data: Buffer; err?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let err: string | undefined;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => (err = e.code ?? e.message));
    socket.once('close', () => resolve({ data: Buffer.concat(chunks), err }));
  });
}

test('relayed downloads arrive whole, every one, whatever their size', { timeout: 60_000 }, async () => {
  mkdirSync(join(owner.dataDir, 'alice'), { recursive: true });
  const files = SIZES.map((size) => ({ name: `d${size}.bin`, data: randomBytes(size) }));
  for (const file of files) writeFileSync(join(owner.dataDir, 'alice', file.name), file.data);
  const relayedBefore = peer.logs.filter((l) => l.msg === 'data connection relayed to the replica that owns its lease' && l.io === 'splice').length;
  let next = 0;
  const failures: string[] = [];
  const partner = async () => {
    const client = await RawClient.connect(owner.port, '127.0.0.11', '127.0.0.1');
    await client.login(owner.user, owner.password);
    assert.equal((await client.command('TYPE I')).code, 200);
    while (next < DOWNLOADS) {
      const file = files[next++ % files.length];
      const pasv = await client.command('PASV');
      const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(pasv.text);
      assert.ok(m, pasv.text);
      // The owner leased the port; the connection reaches the peer, which relays it.
      const socket = connect({ host: '127.0.0.12', port: Number(m[5]) * 256 + Number(m[6]), localAddress: '127.0.0.1' });
      socket.on('error', () => {});
      const body = received(socket);
      await new Promise((resolve) => socket.once('connect', resolve));
      const first = await client.command(`RETR ${file.name}`);
      const final = first.code === 150 ? await client.reply(15_000) : first;
      const got = await body;
      if (final.code !== 226 || got.err || !got.data.equals(file.data)) {
        failures.push(`${file.name}: ${got.data.length} of ${file.data.length} bytes (${got.err ?? 'EOF'}), ${first.code} then ${final.code} ${final.text}`);
      }
    }
    client.close();
  };
  await Promise.all(Array.from({ length: PARALLEL }, partner));
  assert.deepEqual(failures, []);
  const relayed = peer.logs.filter((l) => l.msg === 'data connection relayed to the replica that owns its lease' && l.io === 'splice').length - relayedBefore;
  assert.equal(relayed, DOWNLOADS, 'every download went through the native relay');
});
