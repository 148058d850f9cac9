import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { encodeProxyV2 } from '@ftp/session-core';
import { createLogger } from '@ftp/telemetry';
import { createPassiveListeners, type PassiveListeners } from './passiveListeners';
import { RELAY_SESSION_TLV, RELAY_TOKEN_TLV } from './relay';

const log = createLogger({ level: 'silent' });
let listeners: PassiveListeners;
let port: number;

before(async () => {
  for (let attempt = 0; ; attempt++) {
    port = 42000 + Math.floor(Math.random() * 2000) * 2;
    listeners = createPassiveListeners({ host: '127.0.0.1', range: { min: port, max: port + 1 }, log });
    try {
      await listeners.start();
      return;
    } catch (err) {
      await listeners.close();
      if (attempt > 5) throw err;
    }
  }
});
after(() => listeners.close());

function dial(localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

const closed = (socket: Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));

test('a connection is routed to the session expecting its client address, even if it arrives first', async () => {
  const expectation = listeners.expect(port, '127.0.0.1', 's1');
  const client = await dial('127.0.0.1');
  const server = await expectation.connect(1000);
  server.write('hi');
  const got = await new Promise<string>((resolve) => client.once('data', (b) => resolve(String(b))));
  assert.equal(got, 'hi');
  expectation.dispose();
  await closed(client);
});

test('connections from an address nobody expects on that port are refused', async () => {
  const expectation = listeners.expect(port, '127.0.0.1', 's1');
  const before = listeners.strays;
  const stranger = await dial('127.0.0.2');
  await closed(stranger);
  assert.equal(listeners.strays, before + 1);
  await assert.rejects(expectation.connect(100), /timed out/);
  expectation.dispose();
});

test('a second connection to an already connected expectation is refused (no data-port theft)', async () => {
  const expectation = listeners.expect(port, '*', 's1');
  const first = await dial('127.0.0.3');
  await expectation.connect(1000);
  const second = await dial('127.0.0.4');
  await closed(second);
  expectation.dispose();
  await closed(first);
});

/** Passive listeners with a relay port, on loopback: the relay listener on `relayHost`, the passive ports elsewhere. */
async function withRelay(relayHost: string, run: (relay: { listeners: PassiveListeners; dataPort: number; relayPort: number; logs: Record<string, unknown>[] }) => Promise<void>) {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  for (let attempt = 0; ; attempt++) {
    const dataPort = 44000 + Math.floor(Math.random() * 2000) * 2;
    const relay = createPassiveListeners({
      host: '127.0.0.1',
      range: { min: dataPort, max: dataPort },
      log: createLogger({ level: 'info', destination: sink }),
      relayPort: dataPort + 1,
      relayHost,
    });
    try {
      await relay.start();
    } catch (err) {
      await relay.close();
      if (attempt > 5) throw err;
      continue;
    }
    try {
      return await run({ listeners: relay, dataPort, relayPort: dataPort + 1, logs });
    } finally {
      await relay.close();
    }
  }
}

/** A peer replica's hand-over: PROXY v2 header with the client, the port, the session id and (maybe) a token. */
async function handOver(host: string, relayPort: number, dataPort: number, tlvs: [number, Buffer][]): Promise<Socket> {
  const socket = connect({ host, port: relayPort });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(encodeProxyV2({ source: { address: '192.0.2.10', port: 40000 }, destination: { address: '10.0.0.1', port: dataPort }, tlvs }));
  return socket;
}

const session = (id: string): [number, Buffer] => [RELAY_SESSION_TLV, Buffer.from(id)];
const token = (value: string): [number, Buffer] => [RELAY_TOKEN_TLV, Buffer.from(value)];

test('relay port: a hand-over with the session id but without the right token is refused; the real one gets through', async () => {
  await withRelay('127.0.0.1', async ({ listeners: relay, dataPort, relayPort, logs }) => {
    const secret = 'lease-token-0123456789';
    const expectation = relay.expect(dataPort, '192.0.2.10', 's1', secret);
    for (const tlvs of [[session('s1')], [session('s1'), token('wrong-token-0123456789')], [session('s1'), token('')], [session('s1'), token(secret.slice(0, -1))]]) {
      const forged = await handOver('127.0.0.1', relayPort, dataPort, tlvs);
      await closed(forged);
    }
    const refusals = logs.filter((l) => String(l.msg).includes("without the lease's relay token"));
    assert.equal(refusals.length, 4);
    assert.equal(refusals[0].level, 40, 'warn');
    assert.ok(!JSON.stringify(logs).includes(secret), 'the token is never logged');

    const real = await handOver('127.0.0.1', relayPort, dataPort, [session('s1'), token(secret)]);
    const delivered = await expectation.connect(1000);
    assert.equal(expectation.relayed, true);
    delivered.write('hi');
    const [got] = (await once(real, 'data')) as [Buffer];
    assert.equal(String(got), 'hi');
    expectation.dispose();
    await closed(real);
  });
});

test('relay port: an expectation without a token accepts no hand-over at all', async () => {
  await withRelay('127.0.0.1', async ({ listeners: relay, dataPort, relayPort }) => {
    const expectation = relay.expect(dataPort, '192.0.2.10', 's1');
    for (const tlvs of [[session('s1')], [session('s1'), token('')]]) await closed(await handOver('127.0.0.1', relayPort, dataPort, tlvs));
    await assert.rejects(expectation.connect(100), /timed out/);
    expectation.dispose();
  });
});

test('relay port: the relay listener binds to relayHost only', async () => {
  await withRelay('127.0.0.3', async ({ relayPort }) => {
    const elsewhere = connect({ host: '127.0.0.1', port: relayPort });
    const [err] = (await once(elsewhere, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    const there = connect({ host: '127.0.0.3', port: relayPort });
    await once(there, 'connect');
    there.destroy();
  });
});

test('close() waits for open data connections only as long as its grace, then resets them', async () => {
  const own = createPassiveListeners({ host: '127.0.0.1', range: { min: port + 1, max: port + 1 }, log, relay: async () => true });
  await listeners.close(); // the shared listeners hold port + 1 too
  await own.start();
  try {
    // A connection nobody here expects, kept open by the relay (as a transfer relayed for another replica would be).
    const client = connect({ host: '127.0.0.1', port: port + 1 });
    await once(client, 'connect');
    client.on('error', () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await own.close(300);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2000, `close() returned after ${took} ms`);
    await closed(client);
  } finally {
    await own.close(0);
    listeners = createPassiveListeners({ host: '127.0.0.1', range: { min: port, max: port + 1 }, log });
    await listeners.start();
  }
});
