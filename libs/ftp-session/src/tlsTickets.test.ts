import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { connect, createSecureContext, createServer as createTlsServer, TLSSocket, type SecureContext, type SecureContextOptions } from 'node:tls';
import { generate } from 'selfsigned';
import { startTls, type TlsProvider } from './tls';
import { renewTicketsOnResumption } from './tlsTickets';

let pems: { private: string; cert: string };
const listeners: Server[] = [];
before(async () => {
  pems = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
});
after(() => listeners.forEach((l) => l.close()));

const context = (ticketKeys: Buffer, extra: SecureContextOptions = {}) =>
  createSecureContext({ key: pems.private, cert: pems.cert, ticketKeys, sessionIdContext: 'test', ...extra });

/** A TLS listener that greets every connection; through startTls (as the session does) or a plain Node TLSSocket. */
async function listen(secureContext: SecureContext, through: 'startTls' | 'plain'): Promise<number> {
  const provider: TlsProvider = { context: () => secureContext, server: createTlsServer(), requireReuse: false, renewTickets: true, handshakeTimeoutMs: 5000 };
  const server = createServer((raw) => {
    raw.on('error', () => {});
    if (through === 'plain') new TLSSocket(raw, { isServer: true, secureContext }).on('error', () => {}).end('hello');
    else startTls(raw, provider).then((secure) => secure.end('hello'), () => raw.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  listeners.push(server);
  return (server.address() as AddressInfo).port;
}

/** Connects (offering `session`), reads the greeting; how it went and the tickets the server sent. */
async function dial(port: number, session?: Buffer, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3') {
  const socket = connect({ host: '127.0.0.1', port, session, rejectUnauthorized: false, maxVersion });
  const tickets: Buffer[] = [];
  socket.on('session', (s: Buffer) => tickets.push(s));
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const resumed = socket.isSessionReused();
  await new Promise((resolve) => socket.once('close', resolve).resume());
  return { resumed, tickets, latest: tickets.at(-1) };
}

test('TLS 1.3: a resumed handshake gets a fresh ticket (Node alone sends none), and the renewed ticket resumes too', async () => {
  const keys = randomBytes(48);
  const plain = await listen(context(keys), 'plain');
  const first = await dial(plain);
  assert.equal(first.resumed, false);
  assert.ok(first.latest, 'a full handshake brings tickets');
  assert.deepEqual((await dial(plain, first.latest)).tickets, [], "Node's own callback does not renew");

  const renewing = await listen(context(keys), 'startTls');
  const resumed = await dial(renewing, first.latest);
  assert.equal(resumed.resumed, true, 'the same ticket keys resume the session');
  assert.equal(resumed.tickets.length, 1, 'one fresh ticket after the resumed handshake');
  assert.equal((await dial(renewing, resumed.latest)).resumed, true, 'the renewed ticket resumes here');
  assert.equal((await dial(plain, resumed.latest)).resumed, true, 'and on a context without renewal: replicas mix');
});

test('a ticket under other keys gets a full handshake, not an error (the callback answers every field Node reads)', async () => {
  const port = await listen(context(randomBytes(48)), 'startTls');
  const foreign = await dial(await listen(context(randomBytes(48)), 'plain'));
  const result = await dial(port, foreign.latest);
  assert.equal(result.resumed, false);
  assert.ok(result.tickets.length >= 1, 'new tickets from the full handshake');
});

test('TLS 1.2 with tickets still resumes; enabling twice is harmless; key changes apply at once', async () => {
  const keys = randomBytes(48);
  const ctx = context(keys);
  assert.equal(renewTicketsOnResumption(ctx), true);
  assert.equal(renewTicketsOnResumption(ctx), true);
  const port = await listen(ctx, 'startTls');
  const first = await dial(port, undefined, 'TLSv1.2');
  assert.equal((await dial(port, first.latest, 'TLSv1.2')).resumed, true);

  const replaced = randomBytes(48);
  (ctx as unknown as { context: { setTicketKeys(keys: Buffer): void } }).context.setTicketKeys(replaced);
  assert.equal((await dial(port, first.latest, 'TLSv1.2')).resumed, false, 'a ticket under the old keys no longer resumes');
});
