import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import { loadConfig } from '@ftp/config';
import { FtpsControl, startWithImplicitTls } from '../support/ftpsClient';
import type { TestServer } from '../support/server';

// TLS hardening (issue 12): TLS 1.2 offers only AEAD suites with forward secrecy, and a client that tries to
// renegotiate is refused and loses the connection, logged. The test servers' certificate is ECDSA (P-256).
let server: TestServer;

before(async () => {
  server = await startWithImplicitTls();
});
after(async () => {
  await server?.close();
});

/** A TLS handshake with the implicit FTPS port: the negotiated suite, or the error. */
async function handshake(options: ConnectionOptions, s = server): Promise<{ cipher?: string; protocol?: string | null; error?: string }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: s.edge.implicitPort, rejectUnauthorized: false, ...options });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed during the handshake')));
    });
    return { cipher: socket.getCipher().standardName, protocol: socket.getProtocol() };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    socket.destroy();
  }
}

const tls12 = (ciphers: string): ConnectionOptions => ({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers });

test('TLS 1.2 refuses CBC, CCM, ARIA and Camellia suites', async () => {
  for (const suite of [
    'ECDHE-ECDSA-AES128-SHA256', // CBC
    'ECDHE-ECDSA-AES256-SHA384', // CBC
    'ECDHE-ECDSA-AES128-SHA', // CBC, SHA-1
    'ECDHE-ECDSA-AES128-CCM8', // short tag
    'ECDHE-ECDSA-AES256-CCM',
    'ECDHE-ECDSA-ARIA128-GCM-SHA256',
    'ECDHE-ECDSA-CAMELLIA128-SHA256',
  ]) {
    const result = await handshake(tls12(suite));
    assert.ok(result.error, `${suite} must not be negotiated, got ${result.cipher}`);
    assert.match(result.error, /handshake failure|no shared cipher|alert/i, suite);
  }
});

test('TLS 1.2 offers ECDHE with AES-GCM and ChaCha20-Poly1305; TLS 1.3 is unchanged', async () => {
  for (const suite of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
    const result = await handshake(tls12(suite));
    assert.equal(result.error, undefined, suite);
    assert.equal(result.protocol, 'TLSv1.2');
  }
  // A client offering everything gets an AEAD suite.
  const any = await handshake(tls12('ALL'));
  assert.match(any.cipher ?? '', /_GCM_|_CHACHA20_POLY1305_/);
  for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
    const result = await handshake({ minVersion: 'TLSv1.3', ciphers: suite });
    assert.equal(result.cipher, suite);
    assert.equal(result.protocol, 'TLSv1.3');
  }
});

test('FTP_TLS_CIPHERS replaces the TLS 1.2 list and leaves TLS 1.3 alone; a bad list stops start-up naming the key', async () => {
  const narrow = await startWithImplicitTls({ env: { FTP_TLS_CIPHERS: 'ECDHE-ECDSA-CHACHA20-POLY1305' } });
  try {
    assert.equal((await handshake(tls12('ECDHE-ECDSA-CHACHA20-POLY1305'), narrow)).error, undefined);
    assert.ok((await handshake(tls12('ECDHE-ECDSA-AES128-GCM-SHA256'), narrow)).error, 'GCM is not in the configured list');
    assert.equal((await handshake({ minVersion: 'TLSv1.3' }, narrow)).protocol, 'TLSv1.3');
  } finally {
    await narrow.close();
  }
  assert.throws(() => loadConfig({ env: { FTP_TLS_CIPHERS: 'NO-SUCH-CIPHER' } }), /FTP_TLS_CIPHERS: expected an OpenSSL cipher list/);
});

/**
 * Asks the server to renegotiate from a TLS 1.2 client socket: null when it did, else why not (Node calls back only on
 * success; a refusal shows as an error or the connection closing).
 */
function renegotiate(socket: TLSSocket): Promise<Error | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(new Error('no answer within 5 s')), 5000);
    const done = (result: Error | null) => {
      clearTimeout(timer);
      resolve(result);
    };
    socket.once('error', (err) => done(err));
    socket.once('close', () => done(new Error('connection closed')));
    if (!socket.renegotiate({ rejectUnauthorized: false }, (err) => done(err ?? null))) done(new Error('renegotiate() refused to start'));
  });
}

const renegotiationLines = (s = server) => s.logs.filter((l) => l.msg === 'TLS renegotiation refused: closing the connection');

test('a TLS 1.2 renegotiation on the control connection is refused: the connection is closed and the attempt logged', async () => {
  const before = renegotiationLines().length;
  const control = await FtpsControl.connect(server.port, { tls: { maxVersion: 'TLSv1.2' } });
  await control.greeting();
  const secure = await control.authTls();
  assert.equal(secure.getProtocol(), 'TLSv1.2');
  await control.login(server.user, server.password);

  const err = await renegotiate(secure);
  assert.ok(err, 'the renegotiation must fail');
  await control.waitClosed(5000);
  const lines = renegotiationLines().slice(before);
  assert.equal(lines.length, 1);
  assert.equal(lines[0].level, 40, 'warn');
  assert.equal(lines[0].protocol, 'TLSv1.2');

  // The server itself is fine: the next client logs in.
  const next = await FtpsControl.connect(server.port, { tls: { maxVersion: 'TLSv1.2' } });
  await next.secureLogin(server.user, server.password);
  await next.expect('NOOP', 200);
  next.close();
});

test('implicit FTPS: a renegotiation is refused the same way', async () => {
  const before = renegotiationLines().length;
  const control = await FtpsControl.connect(server.edge.implicitPort, { implicit: true, tls: { maxVersion: 'TLSv1.2' } });
  await control.greeting();
  assert.ok(await renegotiate(control.tls!));
  await control.waitClosed(5000);
  assert.equal(renegotiationLines().length, before + 1);
});

test('a renegotiation on a protected data connection ends the transfer and is logged with the session', async () => {
  const before = renegotiationLines().length;
  const control = await FtpsControl.connect(server.port, { tls: { maxVersion: 'TLSv1.2' } });
  await control.secureLogin(server.user, server.password);
  const port = await control.epsv();
  control.send('STOR renegotiated.bin');
  const data = tlsConnect({ host: '127.0.0.1', port, session: control.tls!.getSession(), rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
  data.on('error', () => {});
  await once(data, 'secureConnect');
  assert.equal((await control.reply(5000)).code, 150);
  data.write(Buffer.alloc(64 * 1024, 1));
  assert.ok(await renegotiate(data), 'the renegotiation must fail');
  const final = await control.reply(10_000);
  assert.ok(final.code >= 400, `transfer must fail, got ${final.code} ${final.text}`);
  const lines = renegotiationLines().slice(before);
  assert.equal(lines.length, 1);
  assert.equal(typeof lines[0].session, 'string', 'logged on the session logger');
  await control.expect('NOOP', 200); // the control connection carries on
  control.close();
});

test('TLS 1.3: the tickets sent after the handshake are not taken for a renegotiation', async () => {
  const control = await FtpsControl.connect(server.port);
  await control.secureLogin(server.user, server.password);
  assert.equal(control.tls!.getProtocol(), 'TLSv1.3');
  const up = await control.transfer('STOR tls13.bin', 'resume', Buffer.alloc(256 * 1024, 7));
  assert.equal(up.final?.code, 226);
  await control.expect('NOOP', 200);
  control.close();
});
