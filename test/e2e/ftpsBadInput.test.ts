import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FtpsControl, startWithImplicitTls } from '../support/ftpsClient';
import type { TestServer } from '../support/server';

/** Handshakes (control and data) time out after 1 s: FTP_DATA_CONNECT_TIMEOUT bounds them. */
let quick: TestServer;
/** Default timeouts (30 s): anything that ends fast here ended because the server noticed, not because a timer fired. */
let patient: TestServer;
const clients: FtpsControl[] = [];
const payload = randomBytes(128 * 1024 + 5);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  [quick, patient] = await Promise.all([startWithImplicitTls({ env: { FTP_DATA_CONNECT_TIMEOUT: '1' } }), startWithImplicitTls({})]);
  mkdirSync(join(quick.dataDir, 'alice'), { recursive: true });
  writeFileSync(join(quick.dataDir, 'alice', 'file.bin'), payload);
});
after(async () => {
  for (const c of clients) c.close();
  await Promise.all([quick, patient].map((s) => s?.close()));
});

async function open(server: TestServer): Promise<FtpsControl> {
  const client = await FtpsControl.connect(server.port);
  clients.push(client);
  await client.greeting();
  return client;
}

async function sessionsActive(server: TestServer): Promise<number> {
  return (await server.edge.metrics.sessionsActive.get()).values.reduce((n, v) => n + v.value, 0);
}

/** Waits (bounded) until no session is open on `server`. */
async function expectNoSessions(server: TestServer, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while ((await sessionsActive(server)) !== 0 && Date.now() < deadline) await sleep(20);
  assert.equal(await sessionsActive(server), 0, 'no session left behind');
}

/** Waits (bounded) for a log line with `msg` written after index `from`; returns it. */
async function logLine(server: TestServer, match: (l: Record<string, unknown>) => boolean, from = 0, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = server.logs.slice(from).find(match);
    if (line) return line;
    if (Date.now() > deadline) throw new Error('log line never written');
    await sleep(20);
  }
}

/** A raw TCP connection that records whatever the server sends and whether it closed. */
async function rawConnect(port: number): Promise<{ socket: Socket; received: () => string; closed: Promise<number> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => {});
  const started = Date.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  return { socket, received: () => received, closed };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`${what} not within ${ms} ms`)))]);
}

test('AUTH TLS, then no ClientHello: the handshake times out (1 s), the connection is closed and logged, no session stays', async () => {
  const client = await open(quick);
  const from = quick.logs.length;
  await client.expect('AUTH TLS', 234);
  const started = Date.now();
  await client.waitClosed(4000);
  assert.ok(Date.now() - started >= 900, 'not before the timeout');
  const line = await logLine(quick, (l) => l.msg === 'TLS handshake on the control connection failed: closing', from);
  assert.match(String(line.err), /timed out/);
  await expectNoSessions(quick);
});

test('a client that hangs up mid-handshake is noticed at once (not after the 30 s timeout): control and implicit port', async () => {
  const client = await open(patient);
  const from = patient.logs.length;
  await client.expect('AUTH TLS', 234);
  client.socket.end(Buffer.from([0x16, 0x03, 0x01])); // the start of a TLS record, then FIN
  await logLine(patient, (l) => l.msg === 'TLS handshake on the control connection failed: closing', from, 1500);
  await expectNoSessions(patient, 1500);

  const raw = await rawConnect(patient.edge.implicitPort);
  const before = patient.logs.length;
  raw.socket.end(Buffer.from([0x16, 0x03, 0x01]));
  const line = await logLine(patient, (l) => String(l.msg).startsWith('implicit TLS handshake failed'), before, 1500);
  assert.match(String(line.err), /closed/);
  await within(raw.closed, 1500, 'implicit connection closed');
});

test('plain FTP bytes on the implicit TLS port: connection closed, "implicit TLS handshake failed" logged, no greeting in clear', async () => {
  const raw = await rawConnect(patient.edge.implicitPort);
  const from = patient.logs.length;
  raw.socket.write('USER alice\r\n');
  await within(raw.closed, 3000, 'server closes the connection');
  assert.ok(!raw.received().includes('220'), `no clear greeting: ${JSON.stringify(raw.received())}`);
  assert.ok(!raw.received().includes('331'), 'the plaintext USER was never answered');
  await logLine(patient, (l) => String(l.msg).startsWith('implicit TLS handshake failed'), from);
  await expectNoSessions(patient);
});

test('downgrade: after 234, plaintext commands instead of a ClientHello → connection closed and logged, never answered', async () => {
  const client = await open(quick);
  const from = quick.logs.length;
  await client.expect('AUTH TLS', 234);
  client.send(`USER ${quick.user}`);
  client.send(`PASS ${quick.password}`);
  await client.waitClosed(3000);
  assert.equal(client.pending, '', 'no reply to the plaintext commands');
  const line = await logLine(quick, (l) => l.msg === 'TLS handshake on the control connection failed: closing', from);
  assert.doesNotMatch(String(line.err), /timed out/, 'refused for what was sent, not for the silence');
  assert.ok(!quick.logs.slice(from).some((l) => l.event === 'login'), 'no login attempt was made');
  await expectNoSessions(quick);
});

test('STARTTLS injection: commands pipelined behind AUTH TLS in the same write are dropped, not run under TLS', async () => {
  const client = await open(quick);
  const from = quick.logs.length;
  client.send(Buffer.from(`AUTH TLS\r\nUSER ${quick.user}\r\nPASS ${quick.password}\r\nNOOP\r\n`));
  const auth = await client.reply();
  assert.equal(auth.code, 234);
  await sleep(100);
  assert.equal(client.pending, '', 'nothing answered in clear after the 234');
  await client.upgrade();
  const first = await client.command('FEAT');
  assert.equal(first.code, 211, `the first reply over TLS answers our next command, got ${first.code} ${first.text}`);
  assert.equal((await client.command('PWD')).code, 530, 'the injected USER/PASS did not log in');
  await sleep(100);
  assert.equal(client.pending, '', 'no stray replies');
  assert.ok(!quick.logs.slice(from).some((l) => l.event === 'login'));
  await client.login(quick.user, quick.password);
  assert.equal((await client.command('PWD')).code, 257);
});

test('PROT P, then a clear data connection (plain bytes, or silence) → 522 within the timeout; nothing stored or sent; session usable', async () => {
  const client = await open(quick);
  await client.authTls();
  await client.login(quick.user, quick.password);
  await client.expect('PBSZ 0', 200);
  await client.expect('PROT P', 200);

  const from = quick.logs.length;
  const plainRetr = await client.transfer('RETR file.bin', 'clear', Buffer.from('USER x\r\n'));
  assert.equal(plainRetr.first.code, 150);
  assert.equal(plainRetr.final?.code, 522, JSON.stringify(plainRetr.final));
  assert.equal(plainRetr.data.length, 0, 'the file never went out in clear');
  await logLine(quick, (l) => l.msg === 'TLS handshake on the data connection failed', from);
  assert.equal((await client.command('NOOP')).code, 200);

  const plainStor = await client.transfer('STOR clear-up.bin', 'clear', payload);
  assert.ok([522, 425].includes(plainStor.final?.code ?? 0), JSON.stringify(plainStor.final));
  assert.equal(existsSync(join(quick.dataDir, 'alice', 'clear-up.bin')), false, 'clear bytes are never stored');

  const started = Date.now();
  const silent = await client.transfer('RETR file.bin', 'clear');
  assert.ok([522, 425].includes(silent.final?.code ?? 0), JSON.stringify(silent.final));
  assert.ok(Date.now() - started < 3500, `answered within the 1 s handshake timeout (took ${Date.now() - started} ms)`);
  assert.equal(silent.data.length, 0);

  assert.equal((await client.command('NOOP')).code, 200, 'the session is still usable');
  const ok = await client.transfer('RETR file.bin', 'resume');
  assert.equal(ok.final?.code, 226);
  assert.equal(sha(ok.data), sha(payload));
});
