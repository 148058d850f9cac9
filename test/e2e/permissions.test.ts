import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '@ftp/identity';
import { RawClient } from '../support/rawClient';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../support/server';

async function login(server: TestServer, user: string, password = TEST_PASSWORD) {
  const c = await RawClient.connect(server.port, server.host);
  await c.login(user, password);
  return c;
}

async function pasv(c: RawClient): Promise<Socket> {
  const r = await c.command('PASV');
  assert.equal(r.code, 227, r.text);
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text)!;
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: Number(m[5]) * 256 + Number(m[6]) });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** RETR/LIST/NLST/MLSD: final reply code and the bytes (empty when refused before 150). */
async function fetch(c: RawClient, command: string) {
  const data = await pasv(c);
  const chunks: Buffer[] = [];
  data.on('data', (b: Buffer) => chunks.push(b));
  const closed = new Promise((resolve) => data.once('close', resolve));
  const first = await c.command(command);
  if (first.code !== 150) {
    data.destroy();
    return { code: first.code, body: '' };
  }
  const final = await c.reply(10_000);
  await closed;
  return { code: final.code, body: Buffer.concat(chunks).toString() };
}

/** STOR/APPE: the final reply code (the refusal, if it comes before 150). */
async function store(c: RawClient, command: string, payload: string) {
  const data = await pasv(c);
  const first = await c.command(command);
  if (first.code !== 150) {
    data.destroy();
    return first.code;
  }
  data.end(payload);
  return (await c.reply(10_000)).code;
}

/** MLSD body → name → perm fact. */
function perms(mlsd: string): Record<string, string> {
  return Object.fromEntries(
    mlsd
      .split('\r\n')
      .filter(Boolean)
      .map((line) => [line.slice(line.indexOf('; ') + 2), /(?:^|;)perm=([a-z]*);/.exec(line)![1]]),
  );
}

describe('per-user permissions and homes', () => {
  let server: TestServer;
  before(async () => {
    const hash = await hashPassword(TEST_PASSWORD);
    server = await startTestServer({
      extraUsers:
        `  reader:\n    password: "${hash}"\n    home: reader\n    permissions:\n      /: [list, download]\n` +
        `  dropbox:\n    password: "${hash}"\n    home: dropbox\n    permissions:\n      /: [list]\n      /inbox: [list, upload]\n`,
    });
    mkdirSync(join(server.dataDir, 'reader', 'docs'), { recursive: true });
    writeFileSync(join(server.dataDir, 'reader', 'docs', 'manual.txt'), 'read me');
    mkdirSync(join(server.dataDir, 'dropbox', 'inbox'), { recursive: true });
    writeFileSync(join(server.dataDir, 'dropbox', 'welcome.txt'), 'hello');
  });
  after(() => server.close());

  test('reader: LIST and RETR work; STOR, APPE, DELE, MKD, RMD, RNFR, MFMT are 550 and change nothing', async () => {
    const c = await login(server, 'reader');
    const list = await fetch(c, 'NLST docs');
    assert.equal(list.code, 226);
    assert.equal(list.body, 'manual.txt\r\n');
    assert.deepEqual(await fetch(c, 'RETR docs/manual.txt'), { code: 226, body: 'read me' });
    assert.equal((await c.command('SIZE docs/manual.txt')).code, 213);

    assert.equal(await store(c, 'STOR new.txt', 'x'), 550);
    assert.equal(await store(c, 'STOR docs/manual.txt', 'overwritten'), 550);
    assert.equal(await store(c, 'APPE docs/manual.txt', 'more'), 550);
    assert.equal((await c.command('DELE docs/manual.txt')).code, 550);
    assert.equal((await c.command('MKD newdir')).code, 550);
    assert.equal((await c.command('RMD docs')).code, 550);
    assert.equal((await c.command('RNFR docs/manual.txt')).code, 550);
    assert.equal((await c.command('MFMT 20200101000000 docs/manual.txt')).code, 550);
    assert.equal(readFileSync(join(server.dataDir, 'reader', 'docs', 'manual.txt'), 'utf8'), 'read me');
    assert.equal(existsSync(join(server.dataDir, 'reader', 'new.txt')), false);
    assert.equal(existsSync(join(server.dataDir, 'reader', 'newdir')), false);

    const mlsd = await fetch(c, 'MLSD docs');
    assert.deepEqual(perms(mlsd.body), { 'manual.txt': 'r' }, 'a read-only file: r');
    assert.deepEqual(perms((await fetch(c, 'MLSD')).body), { docs: 'el' }, 'a read-only folder: e and l');
    assert.ok(server.logs.some((l) => l.event === 'denied' && l.user === 'reader' && l.perm === 'upload'), 'denials are audited');
    c.close();
  });

  test('dropbox: uploads into /inbox only, no overwrite, no download; perm facts say so', async () => {
    const c = await login(server, 'dropbox');
    const inbox = join(server.dataDir, 'dropbox', 'inbox');
    assert.equal(await store(c, 'STOR inbox/report.csv', 'a,b\n'), 226);
    assert.equal(readFileSync(join(inbox, 'report.csv'), 'utf8'), 'a,b\n');
    assert.equal(await store(c, 'STOR inbox/report.csv', 'replaced'), 550, 'overwrite is not granted');
    assert.equal(await store(c, 'APPE inbox/report.csv', 'more'), 550, 'appending to an existing file is an overwrite');
    assert.equal((await c.command('REST 2')).code, 350);
    assert.equal(await store(c, 'STOR inbox/report.csv', 'xx'), 550, 'a resume over an existing file is an overwrite');
    assert.equal(readFileSync(join(inbox, 'report.csv'), 'utf8'), 'a,b\n', 'the first upload is untouched');

    assert.equal((await fetch(c, 'RETR inbox/report.csv')).code, 550, 'no download');
    assert.equal((await fetch(c, 'RETR welcome.txt')).code, 550);
    assert.equal((await c.command('HASH inbox/report.csv')).code, 550, 'HASH would reveal the content');
    assert.equal(await store(c, 'STOR outside.txt', 'x'), 550, 'no upload outside /inbox');
    assert.equal(existsSync(join(server.dataDir, 'dropbox', 'outside.txt')), false);
    assert.equal((await c.command('DELE inbox/report.csv')).code, 550);
    assert.equal((await c.command('MKD inbox/sub')).code, 550);

    const listed = await fetch(c, 'NLST inbox');
    assert.equal(listed.body, 'report.csv\r\n');
    assert.deepEqual(perms((await fetch(c, 'MLSD')).body), { inbox: 'cel', 'welcome.txt': '' });
    assert.deepEqual(perms((await fetch(c, 'MLSD inbox')).body), { 'report.csv': 'a' });
    c.close();
  });

  test('homes are chroots: alice cannot reach reader’s files', async () => {
    const c = await login(server, 'alice');
    assert.equal((await c.command('CWD ..')).code, 250);
    assert.match((await c.command('PWD')).text, /^"\/" /);
    const root = await fetch(c, 'NLST');
    assert.ok(!root.body.includes('manual.txt') && !root.body.includes('reader') && !root.body.includes('dropbox'), root.body);
    for (const path of ['../reader/docs/manual.txt', '/../reader/docs/manual.txt', '../../reader/docs/manual.txt']) {
      assert.equal((await fetch(c, `RETR ${path}`)).code, 550, path);
      assert.equal((await c.command(`SIZE ${path}`)).code, 550, path);
    }
    assert.equal((await c.command('CWD /../reader')).code, 550);
    // `..` is clamped at alice's root: these names are inside her home, where /reader does not exist.
    assert.equal(await store(c, 'STOR ../reader/docs/manual.txt', 'pwned'), 550);
    assert.equal(readFileSync(join(server.dataDir, 'reader', 'docs', 'manual.txt'), 'utf8'), 'read me');
    assert.equal(await store(c, 'STOR ../escape.txt', 'stays home'), 226);
    assert.equal(readFileSync(join(server.dataDir, 'alice', 'escape.txt'), 'utf8'), 'stays home');
    assert.equal(existsSync(join(server.dataDir, 'escape.txt')), false);
    c.close();
  });

  test('anonymous is off by default: USER anonymous then PASS → 530', async () => {
    const c = await RawClient.connect(server.port, server.host);
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.command('USER anonymous')).code, 331);
    assert.equal((await c.command('PASS guest@example.com')).code, 530);
    assert.equal((await c.command('PWD')).code, 530);
    c.close();
  });
});

describe('anonymous enabled', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ anonymous: true });
    mkdirSync(join(server.dataDir, 'pub'), { recursive: true });
    writeFileSync(join(server.dataDir, 'pub', 'readme.txt'), 'public');
  });
  after(() => server.close());

  test('anonymous and ftp log in with any password and are read-only', async () => {
    for (const name of ['anonymous', 'ftp']) {
      const c = await login(server, name, 'guest@example.com');
      assert.deepEqual(await fetch(c, 'RETR readme.txt'), { code: 226, body: 'public' });
      assert.equal(await store(c, 'STOR upload.txt', 'x'), 550);
      assert.equal(await store(c, 'STOR readme.txt', 'x'), 550);
      assert.equal((await c.command('DELE readme.txt')).code, 550);
      assert.equal((await c.command('MKD incoming')).code, 550);
      assert.equal((await c.command('RNFR readme.txt')).code, 550);
      assert.deepEqual(perms((await fetch(c, 'MLSD')).body), { 'readme.txt': 'r' });
      c.close();
    }
    assert.equal(readFileSync(join(server.dataDir, 'pub', 'readme.txt'), 'utf8'), 'public');
    assert.equal(existsSync(join(server.dataDir, 'pub', 'upload.txt')), false);
  });
});
