import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Client } from 'basic-ftp';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.close());

async function client() {
  const c = new Client(10_000);
  await c.access({ host: server.host, port: server.port, user: server.user, password: server.password });
  return c;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function download(c: Client, path: string, startAt = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk, _e, done) {
      chunks.push(chunk);
      done();
    },
  });
  await c.downloadTo(sink, path, startAt);
  return Buffer.concat(chunks);
}

test('basic-ftp: binary upload and download are byte-exact (passive)', async () => {
  const c = await client();
  const payload = randomBytes(3 * 1024 * 1024 + 17);
  await c.uploadFrom(Readable.from([payload]), 'blob.bin');
  assert.equal(sha(readFileSync(join(server.dataDir, 'alice', 'blob.bin'))), sha(payload));
  assert.equal(sha(await download(c, 'blob.bin')), sha(payload));
  assert.equal(await c.size('blob.bin'), payload.length);
  c.close();
});

test('basic-ftp: directories, rename, delete, MLSD listing', async () => {
  const c = await client();
  await c.ensureDir('/inbox/2026');
  assert.equal(await c.pwd(), '/inbox/2026');
  await c.uploadFrom(Readable.from([Buffer.from('abc')]), 'a.txt');
  await c.rename('a.txt', 'b.txt');
  const list = await c.list();
  assert.deepEqual(
    list.map((f) => [f.name, f.size, f.isFile]),
    [['b.txt', 3, true]],
  );
  assert.ok(list[0].modifiedAt instanceof Date, 'MLSD modify fact parsed');
  await c.cd('/');
  const root = await c.list();
  assert.ok(root.some((f) => f.name === 'inbox' && f.isDirectory));
  await c.remove('/inbox/2026/b.txt');
  await c.removeEmptyDir('/inbox/2026');
  assert.equal(existsSync(join(server.dataDir, 'alice', 'inbox', '2026')), false);
  c.close();
});

test('basic-ftp: resume a download with REST and an upload with APPE', async () => {
  const c = await client();
  const payload = randomBytes(200_000);
  await c.uploadFrom(Readable.from([payload.subarray(0, 50_000)]), 'resume.bin');
  await c.appendFrom(Readable.from([payload.subarray(50_000)]), 'resume.bin');
  assert.equal(sha(readFileSync(join(server.dataDir, 'alice', 'resume.bin'))), sha(payload));
  const tail = await download(c, 'resume.bin', 123_456);
  assert.equal(sha(tail), sha(payload.subarray(123_456)));
  c.close();
});

test('ASCII mode converts line endings both ways; binary keeps them', async () => {
  const c = await client();
  await c.send('TYPE A');
  // basic-ftp streams bytes as given; in ASCII mode the network form is CRLF.
  await c.uploadFrom(Readable.from([Buffer.from('one\r\ntwo\r\n')]), 'text.txt');
  assert.equal(readFileSync(join(server.dataDir, 'alice', 'text.txt'), 'utf8'), 'one\ntwo\n');
  writeFileSync(join(server.dataDir, 'alice', 'unix.txt'), 'a\nb\n');
  assert.equal((await download(c, 'unix.txt')).toString(), 'a\r\nb\r\n');
  await c.send('TYPE I');
  assert.equal((await download(c, 'unix.txt')).toString(), 'a\nb\n');
  c.close();
});
