import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword } from '@ftp/identity';
import { FtpsControl, startWithImplicitTls } from '../support/ftpsClient';
import { startTestServer, type TestServer } from '../support/server';

const BOB_PASSWORD = 'bob needs tls';
const payload = randomBytes(256 * 1024 + 17);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Defaults plus `bob`, whose users-file entry says `require_tls: true`. */
let plain: TestServer;
let requireControl: TestServer;
let requireData: TestServer;
let disabled: TestServer;
const clients: FtpsControl[] = [];

before(async () => {
  const bob = `  bob:\n    password: "${await hashPassword(BOB_PASSWORD)}"\n    home: bob\n    require_tls: true\n`;
  [plain, requireControl, requireData, disabled] = await Promise.all([
    startTestServer({ extraUsers: bob }),
    startWithImplicitTls({ env: { FTP_TLS_REQUIRE_CONTROL: 'true' } }),
    startTestServer({ env: { FTP_TLS_REQUIRE_DATA: 'true' } }),
    startTestServer({ env: { FTP_TLS_ENABLED: 'false' } }),
  ]);
  for (const s of [plain, requireData]) {
    for (const user of ['alice', 'bob']) {
      mkdirSync(join(s.dataDir, user), { recursive: true });
      writeFileSync(join(s.dataDir, user, 'file.bin'), payload);
    }
  }
});
after(async () => {
  for (const c of clients) c.close();
  await Promise.all([plain, requireControl, requireData, disabled].map((s) => s?.close()));
});

/** A connected client that has read the greeting; closed after the file. */
async function open(server: TestServer): Promise<FtpsControl> {
  const client = await FtpsControl.connect(server.port);
  clients.push(client);
  await client.greeting();
  return client;
}

const featLines = async (client: FtpsControl) => {
  const feat = await client.command('FEAT');
  assert.equal(feat.code, 211);
  return feat.text.split('\r\n').map((l) => l.trim());
};

test('FEAT lists AUTH TLS, PBSZ and PROT when TLS is enabled, before and after AUTH TLS', async () => {
  const client = await open(plain);
  for (const lines of [await featLines(client), (await client.authTls(), await featLines(client))]) {
    for (const feature of ['AUTH TLS', 'PBSZ', 'PROT']) assert.ok(lines.includes(feature), `${feature} in ${lines.join(' | ')}`);
  }
});

test('FTP_TLS_ENABLED=false: AUTH TLS, PBSZ and PROT get 502, FEAT does not offer them, plain FTP works', async () => {
  const client = await open(disabled);
  const lines = await featLines(client);
  assert.ok(!lines.some((l) => /^(AUTH|PBSZ|PROT)\b/.test(l)), lines.join(' | '));
  assert.equal((await client.command('AUTH TLS')).code, 502);
  assert.equal((await client.command('PBSZ 0')).code, 502);
  assert.equal((await client.command('PROT P')).code, 502);
  await client.login(disabled.user, disabled.password);
  assert.equal((await client.command('PWD')).code, 257);
});

test('command order: PBSZ/PROT before AUTH → 503, PROT before PBSZ → 503, bad PBSZ → 501, PROT S/E → 536, unknown level → 504', async () => {
  const client = await open(plain);
  assert.equal((await client.command('PBSZ 0')).code, 503);
  assert.equal((await client.command('PROT P')).code, 503);
  assert.equal((await client.command('AUTH XYZ')).code, 504);
  await client.authTls();
  assert.equal((await client.command('PROT P')).code, 503, 'PROT before PBSZ');
  assert.equal((await client.command('PBSZ abc')).code, 501);
  const pbsz = await client.command('PBSZ 1024');
  assert.equal(pbsz.code, 200);
  assert.match(pbsz.text, /PBSZ=0/, 'stream mode has no protection buffer: the answer is 0');
  assert.equal((await client.command('PROT S')).code, 536);
  assert.equal((await client.command('PROT E')).code, 536);
  assert.equal((await client.command('PROT Q')).code, 504);
  assert.equal((await client.command('PROT P')).code, 200);
  assert.equal((await client.command('PROT C')).code, 200, 'clear data is allowed without a policy');
});

test('AUTH TLS a second time (on the secure channel) → 503, AUTH XYZ → 504; CCC → 530 before login, 534 after', async () => {
  const client = await open(plain);
  await client.authTls();
  const again = await client.command('AUTH TLS');
  assert.equal(again.code, 503);
  assert.equal((await client.command('AUTH SSL')).code, 503);
  assert.equal((await client.command('AUTH XYZ')).code, 504);
  assert.equal((await client.command('CCC')).code, 530);
  await client.login(plain.user, plain.password);
  assert.equal((await client.command('CCC')).code, 534, 'the control connection never goes back to clear');
  assert.equal((await client.command('NOOP')).code, 200, 'still talking TLS');
  assert.ok(client.tls && !client.tls.destroyed);
});

test('FTP_TLS_REQUIRE_CONTROL=true: USER on a clear connection → 530 (logged); after AUTH TLS the same connection logs in', async () => {
  const client = await open(requireControl);
  const refused = await client.command(`USER ${requireControl.user}`);
  assert.equal(refused.code, 530);
  assert.match(refused.text, /AUTH TLS/);
  assert.ok(requireControl.logs.some((l) => l.msg === 'login refused: TLS required on the control connection' && l.user === 'alice'));
  assert.equal((await client.command(`PASS ${requireControl.password}`)).code, 503, 'no USER was accepted');
  assert.equal((await client.command('PWD')).code, 530, 'not logged in');
  await client.authTls();
  await client.login(requireControl.user, requireControl.password);
  assert.equal((await client.command('PWD')).code, 257);

  // The implicit port is TLS from the first byte: USER is welcome at once.
  const implicit = await FtpsControl.connect(requireControl.edge.implicitPort, { implicit: true });
  clients.push(implicit);
  await implicit.greeting();
  await implicit.login(requireControl.user, requireControl.password);
  assert.equal((await implicit.command('PWD')).code, 257);
});

test('FTP_TLS_REQUIRE_DATA=true: PROT C → 534, a transfer without PROT P → 521 (no 150), with PROT P it works', async () => {
  // Logged in on a clear control connection: allowed, but its transfers are not.
  const clear = await open(requireData);
  await clear.login(requireData.user, requireData.password);
  const clearRetr = await clear.transfer('RETR file.bin', 'clear');
  assert.equal(clearRetr.first.code, 521);
  assert.equal(clearRetr.data.length, 0);

  const client = await open(requireData);
  await client.authTls();
  await client.login(requireData.user, requireData.password);
  await client.expect('PBSZ 0', 200);
  assert.equal((await client.command('PROT C')).code, 534);
  assert.ok(requireData.logs.some((l) => l.reply === 534 && l.verb === 'PROT'));
  const retr = await client.transfer('RETR file.bin', 'clear');
  assert.equal(retr.first.code, 521, JSON.stringify(retr.first));
  assert.equal(retr.data.length, 0, 'no data went out in clear');
  assert.ok(requireData.logs.some((l) => l.msg === 'transfer refused: data connection must be protected (PROT P)'));
  const stor = await client.transfer('STOR up.bin', 'clear', payload);
  assert.equal(stor.first.code, 521);
  assert.equal(existsSync(join(requireData.dataDir, 'alice', 'up.bin')), false);
  assert.equal((await client.transfer('LIST', 'clear')).first.code, 521, 'listings too');

  await client.expect('PROT P', 200);
  const ok = await client.transfer('RETR file.bin', 'resume');
  assert.equal(ok.final?.code, 226);
  assert.equal(sha(ok.data), sha(payload));
  const up = await client.transfer('STOR up.bin', 'resume', payload);
  assert.equal(up.final?.code, 226);
});

test('require_tls: true for one user: bob on a clear connection → 530, alice (no rule) logs in on clear; bob via TLS needs PROT P', async () => {
  const bobClear = await open(plain);
  // USER answers as for any name (no account enumeration); PASS refuses, with the right password too.
  assert.equal((await bobClear.command('USER bob')).code, 331);
  const refused = await bobClear.command(`PASS ${BOB_PASSWORD}`);
  assert.equal(refused.code, 530);
  assert.match(refused.text, /TLS required/);
  assert.ok(plain.logs.some((l) => l.msg === 'login refused' && l.user === 'bob' && String(l.reason).startsWith('TLS required')));

  const alice = await open(plain);
  await alice.login(plain.user, plain.password);
  const aliceRetr = await alice.transfer('RETR file.bin', 'clear');
  assert.equal(aliceRetr.final?.code, 226, 'alice may move data in clear');
  assert.equal(sha(aliceRetr.data), sha(payload));

  const bob = await open(plain);
  await bob.authTls();
  await bob.login('bob', BOB_PASSWORD);
  await bob.expect('PBSZ 0', 200);
  assert.equal((await bob.command('PROT C')).code, 534, "bob's rule covers the data connections too");
  assert.equal((await bob.transfer('RETR file.bin', 'clear')).first.code, 521);
  await bob.expect('PROT P', 200);
  const ok = await bob.transfer('RETR file.bin', 'resume');
  assert.equal(ok.final?.code, 226);
  assert.equal(sha(ok.data), sha(payload));
});
