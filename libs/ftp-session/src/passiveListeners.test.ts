import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { createLogger } from '@ftp/telemetry';
import { createPassiveListeners, type PassiveListeners } from './passiveListeners';

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
