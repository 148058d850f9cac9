import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { connect as tlsConnect, createSecureContext, TLSSocket } from 'node:tls';
import { encodeProxyV1, encodeProxyV2 } from './proxyProtocol';
import { addressAllowed } from '@ftp/identity';
import type { Logger } from '@ftp/telemetry';
import { generate } from 'selfsigned';
import { createProxyTrust, ProxyHeaderError, proxyHeaderBytes, readProxyHeader } from './proxyHeader';

let server: Server;
let port: number;
const open: Socket[] = [];

before(async () => {
  server = createServer({ noDelay: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as { port: number }).port;
});
after(async () => {
  for (const socket of open) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

/** A connected loopback pair: `client` is the balancer, `accepted` the edge's side. */
async function connection(): Promise<{ client: Socket; accepted: Socket }> {
  const acceptedNow = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(client, 'connect');
  const [accepted] = await acceptedNow;
  open.push(client, accepted);
  return { client, accepted };
}

/** Collects what a later 'data' listener receives until `bytes` have arrived. */
function nextBytes(socket: Socket, bytes: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`only got ${JSON.stringify(got)}`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('latin1');
      if (got.length >= bytes) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

const EVENTS = ['readable', 'data', 'end', 'close', 'error'] as const;
const listenerCounts = (socket: Socket) => EVENTS.map((event) => socket.listenerCount(event));

/**
 * Follows the timers started while `start` runs until `finish()`: which of them neither fired nor were cleared.
 * (A process-wide count would also see the tests' own delays.)
 */
function watchTimers<T>(start: () => T): { result: T; finish: () => number; started: number } {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const pending = new Set<unknown>();
  let started = 0;
  globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = realSet(() => {
      pending.delete(timer);
      callback(...args);
    }, ms);
    pending.add(timer);
    started++;
    return timer;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((timer: Parameters<typeof clearTimeout>[0]) => {
    pending.delete(timer);
    realClear(timer);
  }) as typeof clearTimeout;
  let result: T;
  try {
    result = start();
  } finally {
    globalThis.setTimeout = realSet;
  }
  return {
    result,
    started,
    finish: () => {
      globalThis.clearTimeout = realClear;
      return pending.size;
    },
  };
}

/** Runs readProxyHeader and checks it left no listener and no timer behind, whatever the outcome. */
async function readChecked(socket: Socket, timeoutMs = 2000) {
  const listenersBefore = listenerCounts(socket);
  const timers = watchTimers(() => readProxyHeader(socket, timeoutMs));
  try {
    return await timers.result;
  } finally {
    assert.equal(timers.finish(), 0, 'timer left behind');
    assert.ok(timers.started <= 1);
    assert.deepEqual(listenerCounts(socket), listenersBefore, 'listeners left behind');
  }
}

const v2Header = encodeProxyV2({
  source: { address: '203.0.113.9', port: 40001 },
  destination: { address: '198.51.100.1', port: 21 },
  tlvs: [[0xe0, Buffer.from('session-7')]],
});

test('a v1 header is read and the balancer-reported endpoints returned', async () => {
  const { client, accepted } = await connection();
  client.write('PROXY TCP4 192.0.2.10 192.0.2.1 51000 21\r\n');
  const header = await readChecked(accepted);
  assert.deepEqual(header, {
    command: 'proxy',
    source: { address: '192.0.2.10', port: 51000 },
    destination: { address: '192.0.2.1', port: 21 },
    tlvs: new Map(),
  });
});

test('a v2 header split across many small writes is reassembled', async () => {
  const { client, accepted } = await connection();
  const reading = readChecked(accepted);
  for (const cut of [[0, 1], [1, 13], [13, 15], [15, 30], [30, v2Header.length]]) {
    client.write(v2Header.subarray(cut[0], cut[1]));
    await delay(15);
  }
  const header = await reading;
  assert.deepEqual(header.source, { address: '203.0.113.9', port: 40001 });
  assert.equal(header.tlvs.get(0xe0)?.toString(), 'session-7');
});

test('header and FTP command in one TCP segment: the command waits, unread, for a later data listener', async () => {
  const { client, accepted } = await connection();
  const header1 = encodeProxyV1({ source: { address: '2001:db8::5', port: 1 }, destination: { address: '::1', port: 21 } });
  client.write(Buffer.concat([header1, Buffer.from('USER anonymous\r\n')]));
  await delay(30);
  assert.equal(accepted.readableLength, header1.length + 16, 'both are buffered: one read takes them together');
  const header = await readChecked(accepted);
  assert.equal(header.source?.address, '2001:db8::5');
  assert.equal(accepted.readableFlowing, null, 'not flowing, not explicitly paused: like a fresh socket');
  await delay(50); // nobody listens meanwhile: the bytes must stay buffered, not flow away
  assert.equal(await nextBytes(accepted, 16), 'USER anonymous\r\n');
});

test('proxyHeaderBytes: the headers read from a socket, so that byte counts of client data can leave them out', async () => {
  const { client, accepted } = await connection();
  assert.equal(proxyHeaderBytes(accepted), 0);
  const relayHeader = encodeProxyV2({ source: { address: '203.0.113.9', port: 4000 }, destination: { address: '10.0.0.1', port: 30000 } });
  client.write(Buffer.concat([v2Header, relayHeader, Buffer.from('0123456789')])); // a relayed data connection: two headers
  await readChecked(accepted);
  await readChecked(accepted);
  assert.equal(proxyHeaderBytes(accepted), v2Header.length + relayHeader.length);
  assert.equal(await nextBytes(accepted, 10), '0123456789');
  assert.equal(accepted.bytesRead - proxyHeaderBytes(accepted), 10, "bytesRead minus the headers: the client's bytes");
});

test('bytes after the header are not lost when they arrive in later chunks', async () => {
  const { client, accepted } = await connection();
  client.write(Buffer.concat([v2Header, Buffer.from('USER ano')]));
  await readChecked(accepted);
  const received = nextBytes(accepted, 'USER anonymous\r\nPASS x\r\n'.length);
  client.write('nymous\r\n');
  await delay(15);
  client.write('PASS x\r\n');
  assert.equal(await received, 'USER anonymous\r\nPASS x\r\n');
});

test('a header alone, then the command in a later write', async () => {
  const { client, accepted } = await connection();
  client.write(v2Header);
  await readChecked(accepted);
  const received = nextBytes(accepted, 6);
  client.write('SYST\r\n');
  assert.equal(await received, 'SYST\r\n');
});

test('a socket paused before the read stays paused after it, its bytes kept for resume()', async () => {
  const { client, accepted } = await connection();
  accepted.pause();
  client.write(Buffer.concat([v2Header, Buffer.from('NOOP\r\n')]));
  await readChecked(accepted);
  assert.equal(accepted.readableFlowing, false);
  const received = nextBytes(accepted, 6);
  await delay(50);
  assert.equal(accepted.readableFlowing, false, 'a data listener alone does not resume it');
  accepted.resume();
  assert.equal(await received, 'NOOP\r\n');
});

test('a TLS ClientHello read together with the header still reaches the TLS handshake (implicit FTPS)', { timeout: 5000 }, async () => {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  const { client, accepted } = await connection();
  await new Promise<void>((resolve) => client.write(v2Header, () => resolve()));
  const tlsClient = tlsConnect({ socket: client, rejectUnauthorized: false });
  tlsClient.on('error', () => {});
  await delay(100); // header and ClientHello are both buffered: one read takes them together
  assert.ok(accepted.readableLength > v2Header.length, 'the ClientHello arrived with the header');
  await readChecked(accepted);
  const secure = new TLSSocket(accepted, { isServer: true, secureContext: createSecureContext({ key: pems.private, cert: pems.cert }) });
  await Promise.all([once(secure, 'secure'), once(tlsClient, 'secureConnect')]);
  const echoed = nextBytes(secure, 5);
  tlsClient.write('hello');
  assert.equal(await echoed, 'hello');
  tlsClient.destroy();
  secure.destroy();
});

test('no header within the deadline: rejected after the timeout, even while bytes trickle in', async () => {
  const { client, accepted } = await connection();
  client.write('PROXY TCP4 ');
  const trickle = setInterval(() => client.write('1'), 50);
  const started = Date.now();
  try {
    await assert.rejects(readChecked(accepted, 200), (err: Error) => {
      assert.ok(err instanceof ProxyHeaderError);
      assert.match(err.message, /no complete PROXY protocol header within 200 ms/);
      return true;
    });
  } finally {
    clearInterval(trickle);
  }
  assert.ok(Date.now() - started >= 190, 'not before the deadline');
});

test('a silent connection times out', async () => {
  const { accepted } = await connection();
  await assert.rejects(readChecked(accepted, 200), /within 200 ms/);
});

test('garbage is refused at once, without waiting for the timeout', async () => {
  const { client, accepted } = await connection();
  client.write('GET / HTTP/1.1\r\n');
  const started = Date.now();
  await assert.rejects(readChecked(accepted, 5000), /invalid PROXY protocol header: not a PROXY protocol header/);
  assert.ok(Date.now() - started < 1000);
});

test('a malformed v2 header is refused with the reason', async () => {
  const { client, accepted } = await connection();
  const bad = Buffer.from(v2Header);
  bad[12] = 0x11; // version 1 in a v2 signature
  client.write(bad);
  await assert.rejects(readChecked(accepted), /invalid PROXY protocol header: unsupported v2 version 1/);
});

test('the balancer closing before a full header is reported with how much came', async () => {
  const { client, accepted } = await connection();
  client.end(v2Header.subarray(0, 10));
  await assert.rejects(readChecked(accepted), /connection closed before a complete PROXY protocol header \(10 bytes received\)/);
});

test('a connection reset before a full header is reported', async () => {
  const { client, accepted } = await connection();
  accepted.on('error', () => {}); // the caller's own handler; the rejection must not depend on it
  client.write('PROXY TCP4');
  await delay(20);
  client.resetAndDestroy();
  await assert.rejects(readChecked(accepted), /connection (failed|closed) before a complete PROXY protocol header/);
});

test('a socket already closed is refused without waiting', async () => {
  const { accepted } = await connection();
  accepted.destroy();
  await assert.rejects(readChecked(accepted, 5000), /connection closed before a PROXY protocol header/);
});

test('proxy trust: addresses and CIDRs of both families; mapped IPv6 peers match IPv4 entries', () => {
  const trusts = createProxyTrust(['10.0.0.0/8', '192.0.2.7', '2001:db8:1::/48', '::1']);
  for (const peer of ['10.1.2.3', '::ffff:10.200.0.1', '192.0.2.7', '2001:db8:1:ffff::9', '::1', '0:0:0:0:0:0:0:1']) {
    assert.equal(trusts(peer), true, peer);
  }
  for (const peer of ['11.0.0.1', '192.0.2.8', '2001:db8:2::1', '::2', 'garbage', '']) {
    assert.equal(trusts(peer), false, peer);
  }
});

test('proxy trust matches exactly as a user allow-list does (same entries, same peers)', () => {
  const entries = ['10.0.0.0/8', '::ffff:172.16.0.0/108', '192.0.2.7', '::ffff:198.51.100.9', '2001:db8::/32', 'fe80::1%eth0', '0.0.0.0/0'];
  const peers = ['10.9.9.9', '172.16.5.5', '172.17.0.1', '::ffff:172.16.0.1', '192.0.2.7', '198.51.100.9', '2001:db8::1', '2001:db9::1', 'fe80::1', 'fe80::1%lo', '8.8.8.8', '::1', 'x'];
  for (let n = 1; n <= entries.length; n++) {
    const subset = entries.slice(0, n);
    const trusts = createProxyTrust(subset);
    for (const peer of peers) assert.equal(trusts(peer), addressAllowed(peer, subset), `${peer} against ${subset.join(',')}`);
  }
});

test('proxy trust: an empty list trusts nobody', () => {
  const trusts = createProxyTrust([]);
  assert.equal(trusts('127.0.0.1'), false);
  assert.equal(trusts('::1'), false);
});

test('proxy trust: an invalid entry throws naming it', () => {
  for (const entry of ['lb.example.com', '10.0.0.0/33', '10.0.0.1/8/1', '2001:db8::/129', '']) {
    assert.throws(() => createProxyTrust(['10.0.0.1', entry]), (err: Error) => err.message.includes(`"${entry}"`), entry);
  }
});

test('proxy trust: later changes to the given array do not change who is trusted', () => {
  const entries = ['10.0.0.1'];
  const trusts = createProxyTrust(entries);
  entries.push('10.0.0.2');
  entries[0] = '10.0.0.3';
  assert.equal(trusts('10.0.0.1'), true);
  assert.equal(trusts('10.0.0.2'), false);
});

test('proxy trust: the first PROXY header of each trusted peer is logged once; untrusted peers are not; memory is bounded', () => {
  const lines: Record<string, unknown>[] = [];
  const log = { info: (fields: object, msg: string) => lines.push({ ...fields, msg, level: 'info' }), warn: (fields: object, msg: string) => lines.push({ ...fields, msg, level: 'warn' }) };
  const trusts = createProxyTrust(['10.0.0.0/8'], { log: log as unknown as Logger, remember: 2 });
  const from = (address: string) => ({ remoteAddress: address }) as Socket;
  const peer = (address: string) => ({ address, port: 50000, serverAddress: '10.9.9.9', serverPort: 21 });

  trusts.headerReceived(from('10.0.0.1'), peer('203.0.113.1'));
  trusts.headerReceived(from('::ffff:10.0.0.1'), peer('203.0.113.2'));
  trusts.headerReceived(from('10.0.0.1'), peer('203.0.113.3'));
  trusts.headerReceived(from('192.0.2.1'), peer('192.0.2.1')); // not a balancer: its connections carry no header
  assert.deepEqual(lines, [
    { balancer: '10.0.0.1', client: '203.0.113.1', clientPort: 50000, server: '10.9.9.9', serverPort: 21, msg: 'first PROXY protocol header from this trusted peer', level: 'info' },
  ]);

  trusts.headerReceived(from('10.0.0.2'), peer('203.0.113.4'));
  trusts.headerReceived(from('10.0.0.3'), peer('203.0.113.5'));
  trusts.headerReceived(from('10.0.0.4'), peer('203.0.113.6'));
  assert.deepEqual(
    lines.map((l) => [l.level, l.balancer]),
    [
      ['info', '10.0.0.1'],
      ['info', '10.0.0.2'],
      ['warn', undefined],
    ],
    'past the limit: one warning, then silence',
  );

  const quiet = createProxyTrust(['10.0.0.0/8']);
  quiet.headerReceived(from('10.0.0.1'), peer('203.0.113.1')); // without a logger: nothing to do, nothing thrown
});
