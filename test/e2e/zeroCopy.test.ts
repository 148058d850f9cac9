import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { partialNameFor } from '@ftp/storage';
import { FtpsControl } from '../support/ftpsClient';
import { deleteKeysUnder } from '../support/redisKeys';
import { openPassive, passiveDownload, passiveUpload, rawLogin, readAll, sleep, waitFor, writeData } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';
import { skipWithoutAddon } from '../support/zeroCopy';

// Zero-copy data connections (FTP_ZERO_COPY=auto with the addon built): clear-text binary downloads go out with
// sendfile, uploads come in with splice; the audit line of every transfer says which path it took (`io`).
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let work: string;
before(() => {
  work = mkdtempSync(join(tmpdir(), 'ftp-zero-copy-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

/** The audit line of the last transfer of `path` in `direction`. */
function audited(server: TestServer, direction: 'download' | 'upload', path: string) {
  return server.logs.filter((l) => l.audit === true && l.event === direction && l.path === path).at(-1);
}

async function waitAudited(server: TestServer, direction: 'download' | 'upload', path: string) {
  await waitFor(`the ${direction} of ${path} to be audited`, () => audited(server, direction, path) !== undefined);
  return audited(server, direction, path)!;
}

/** Runs curl as alice to completion. */
function curl(server: TestServer, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn('curl', ['-sS', '--user', `alice:${server.password}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const url = (server: TestServer, path: string) => `ftp://127.0.0.1:${server.port}/${path}`;

/** A curl download and a curl upload of a random file; returns the two audit lines after checking the bytes. */
async function curlRoundTrip(server: TestServer, name: string, size: number) {
  const home = join(server.dataDir, 'alice');
  mkdirSync(home, { recursive: true });
  const data = randomBytes(size);
  writeFileSync(join(home, name), data);
  const out = join(work, `${name}.${server.port}.down`);
  const down = await curl(server, ['-o', out, url(server, name)]);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(sha(readFileSync(out)), sha(data), 'download byte-identical');

  const source = join(work, `${name}.${server.port}.up`);
  const upData = randomBytes(size + 13);
  writeFileSync(source, upData);
  const up = await curl(server, ['-T', source, url(server, `up-${name}`)]);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(sha(readFileSync(join(home, `up-${name}`))), sha(upData), 'upload byte-identical');
  return { download: await waitAudited(server, 'download', `/${name}`), upload: await waitAudited(server, 'upload', `/up-${name}`), size };
}

describe('zero-copy transfers (FTP_ZERO_COPY=auto)', { skip: skipWithoutAddon }, () => {
  let server: TestServer;
  let home: string;
  let big: Buffer;
  before(async () => {
    server = await startTestServer();
    home = join(server.dataDir, 'alice');
    mkdirSync(home, { recursive: true });
    big = randomBytes(32 * MiB + 5);
    writeFileSync(join(home, 'big.bin'), big);
  });
  after(() => server.close());

  test('curl: a download goes out with sendfile and an upload comes in with splice, byte-identical, counted exactly', async () => {
    const { download, upload, size } = await curlRoundTrip(server, 'curl.bin', 24 * MiB + 1);
    assert.equal(download.io, 'sendfile');
    assert.equal(download.bytes, size);
    assert.equal(download.result, 'ok');
    assert.equal(upload.io, 'splice');
    assert.equal(upload.bytes, size + 13);
    assert.equal(upload.result, 'ok');
    const metric = await server.edge.metrics.transferIoBytes.get();
    const sent = metric.values.find((v) => v.labels.direction === 'download' && v.labels.io === 'sendfile')?.value ?? 0;
    const received = metric.values.find((v) => v.labels.direction === 'upload' && v.labels.io === 'splice')?.value ?? 0;
    assert.ok(sent >= size && received >= size + 13, `ftp_transfer_io_bytes_total counts them (${sent}, ${received})`);
  });

  test('REST resumes: a download from an offset, an upload continued at an offset, APPE', async () => {
    const c = await rawLogin(server);
    assert.equal((await c.command('REST 1000001')).code, 350);
    const tail = await passiveDownload(c, 'RETR big.bin');
    assert.equal(tail.final.code, 226);
    assert.equal(sha(tail.body), sha(big.subarray(1000001)));
    assert.equal((await waitAudited(server, 'download', '/big.bin')).bytes, big.length - 1000001);
    assert.equal(audited(server, 'download', '/big.bin')!.io, 'sendfile');

    const whole = randomBytes(6 * MiB + 77);
    const cut = 2 * MiB + 3;
    assert.equal((await passiveUpload(c, 'STOR resumed.bin', whole.subarray(0, cut))).final.code, 226);
    assert.equal((await c.command(`REST ${cut}`)).code, 350);
    assert.equal((await passiveUpload(c, 'STOR resumed.bin', whole.subarray(cut))).final.code, 226);
    assert.equal(sha(readFileSync(join(home, 'resumed.bin'))), sha(whole));
    const resumed = audited(server, 'upload', '/resumed.bin')!;
    assert.equal(resumed.io, 'splice');
    assert.equal(resumed.bytes, whole.length - cut);

    const more = randomBytes(MiB + 9);
    assert.equal((await passiveUpload(c, 'APPE resumed.bin', more)).final.code, 226);
    assert.equal(sha(readFileSync(join(home, 'resumed.bin'))), sha(Buffer.concat([whole, more])));
    assert.equal(audited(server, 'upload', '/resumed.bin')!.bytes, more.length);
    c.close();
  });

  test('ABOR mid-download: 426 then 226 at once; the client gets exactly the bytes counted', async () => {
    const c = await rawLogin(server);
    const data = await openPassive(c);
    data.pause(); // reads nothing: the native send waits for room in the socket
    assert.equal((await c.command('RETR big.bin')).code, 150);
    await sleep(300);
    const sentAbor = Date.now();
    assert.equal((await c.command('ABOR')).code, 426);
    assert.equal((await c.reply()).code, 226);
    assert.ok(Date.now() - sentAbor < 1000, 'the native send stopped promptly');
    const received = await readAll(data.resume());
    const line = await waitAudited(server, 'download', '/big.bin');
    assert.equal(line.result, 'aborted');
    assert.equal(line.io, 'sendfile');
    assert.ok(received.length > 0 && received.length < big.length);
    assert.equal(line.bytes, received.length, 'bytes counted = bytes the client got');
    assert.equal(sha(received), sha(big.subarray(0, received.length)));
    assert.equal((await c.command('NOOP')).code, 200, 'session usable');
    c.close();
  });

  test('ABOR mid-upload: 426 then 226; the partial keeps exactly the bytes received, and resumes', async () => {
    const c = await rawLogin(server);
    const data = await openPassive(c);
    assert.equal((await c.command('STOR aborted.bin')).code, 150);
    const sent = randomBytes(5 * MiB + 1);
    await writeData(data, sent); // and the data connection stays open
    const partial = join(home, partialNameFor('aborted.bin'));
    await waitFor('the bytes to reach the partial', () => statSync(partial, { throwIfNoEntry: false })?.size === sent.length);
    assert.equal((await c.command('ABOR')).code, 426);
    assert.equal((await c.reply()).code, 226);
    const line = await waitAudited(server, 'upload', '/aborted.bin');
    assert.equal(line.result, 'aborted');
    assert.equal(line.io, 'splice');
    assert.equal(line.bytes, sent.length);
    // SIZE: where a resume continues, one byte short of what was kept (the resume sends that byte again).
    assert.deepEqual(await c.command('SIZE aborted.bin'), { code: 213, text: String(sent.length - 1) });
    const rest = randomBytes(3 * MiB);
    assert.equal((await c.command(`REST ${sent.length - 1}`)).code, 350);
    assert.equal((await passiveUpload(c, 'STOR aborted.bin', Buffer.concat([sent.subarray(-1), rest]))).final.code, 226);
    assert.equal(sha(readFileSync(join(home, 'aborted.bin'))), sha(Buffer.concat([sent, rest])));
    c.close();
  });

  test('FTPS data connections (PROT P) and ASCII mode take the stream path', async () => {
    const control = await FtpsControl.connect(server.port);
    await control.secureLogin(server.user, server.password);
    const down = await control.transfer('RETR big.bin', 'resume', undefined, { timeoutMs: 30_000 });
    assert.equal(down.final?.code, 226);
    assert.equal(sha(down.data), sha(big));
    assert.equal((await waitAudited(server, 'download', '/big.bin')).io, 'stream');
    const payload = randomBytes(2 * MiB);
    assert.equal((await control.transfer('STOR tls.bin', 'resume', payload)).final?.code, 226);
    assert.equal((await waitAudited(server, 'upload', '/tls.bin')).io, 'stream');
    control.socket.destroy();

    const c = await rawLogin(server);
    assert.equal((await c.command('TYPE A')).code, 200);
    writeFileSync(join(home, 'text.txt'), 'line\n'.repeat(100_000));
    const text = await passiveDownload(c, 'RETR text.txt');
    assert.equal(text.final.code, 226);
    assert.equal(text.body.toString(), 'line\r\n'.repeat(100_000));
    assert.equal((await waitAudited(server, 'download', '/text.txt')).io, 'stream');
    assert.equal((await passiveUpload(c, 'STOR text-up.txt', Buffer.from('a\r\nb\r\n'.repeat(50_000)))).final.code, 226);
    assert.equal(readFileSync(join(home, 'text-up.txt'), 'utf8'), 'a\nb\n'.repeat(50_000));
    assert.equal((await waitAudited(server, 'upload', '/text-up.txt')).io, 'stream');
    c.close();
  });

  test('a small download stays on streams (below the zero-copy threshold)', async () => {
    writeFileSync(join(home, 'small.txt'), 'small\n');
    const c = await rawLogin(server);
    const r = await passiveDownload(c, 'RETR small.txt');
    assert.equal(r.body.toString(), 'small\n');
    assert.equal((await waitAudited(server, 'download', '/small.txt')).io, 'stream');
    c.close();
  });
});

describe('hashed uploads (FTP_UPLOAD_SHA256)', { skip: skipWithoutAddon }, () => {
  const prefix = `test:zero-copy:${randomUUID()}:`;
  const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ env: { REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_UPLOAD_SHA256: 'true' } });
  });
  after(async () => {
    await server.close();
    const admin = new Redis(REDIS_URL);
    await deleteKeysUnder(admin, prefix);
    await admin.quit();
  });

  test('an upload from offset 0 is hashed on streams; a resumed one (not hashed) is spliced', async () => {
    const c = await rawLogin(server);
    const first = randomBytes(3 * MiB);
    assert.equal((await passiveUpload(c, 'STOR hashed.bin', first)).final.code, 226);
    assert.equal((await waitAudited(server, 'upload', '/hashed.bin')).io, 'stream');
    const more = randomBytes(2 * MiB);
    assert.equal((await passiveUpload(c, 'APPE hashed.bin', more)).final.code, 226);
    assert.equal(audited(server, 'upload', '/hashed.bin')!.io, 'splice');
    assert.equal(sha(readFileSync(join(server.dataDir, 'alice', 'hashed.bin'))), sha(Buffer.concat([first, more])));
    c.close();
  });
});

describe('the stall timeout during a native transfer', { skip: skipWithoutAddon }, () => {
  let server: TestServer;
  let big: Buffer;
  before(async () => {
    server = await startTestServer({ env: { FTP_STALL_TIMEOUT: '1' } });
    mkdirSync(join(server.dataDir, 'alice'), { recursive: true });
    big = randomBytes(64 * MiB);
    writeFileSync(join(server.dataDir, 'alice', 'big.bin'), big);
  });
  after(() => server.close());

  test('a client that stops reading is cut after FTP_STALL_TIMEOUT (426), one that reads slowly is not', async () => {
    const c = await rawLogin(server);
    const stuck = await openPassive(c);
    stuck.pause();
    const started = Date.now();
    assert.equal((await c.command('RETR big.bin')).code, 150);
    const reply = await c.reply(10_000);
    assert.equal(reply.code, 426, reply.text);
    assert.ok(Date.now() - started < 5000, `cut after about a second (${Date.now() - started} ms)`);
    const line = await waitAudited(server, 'download', '/big.bin');
    assert.equal(line.io, 'sendfile');
    stuck.destroy();

    // About 16 MiB/s with a pause every 64 KiB chunk: the transfer takes seconds, bytes move all along.
    const slow = await openPassive(c);
    const chunks: Buffer[] = [];
    slow.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      slow.pause();
      setTimeout(() => slow.resume(), 4);
    });
    const closed = new Promise((resolve) => slow.once('close', resolve));
    const slowStart = Date.now();
    assert.equal((await c.command('RETR big.bin')).code, 150);
    assert.equal((await c.reply(60_000)).code, 226);
    await closed;
    assert.ok(Date.now() - slowStart > 1500, `the transfer outlasted the stall timeout (${Date.now() - slowStart} ms)`);
    assert.equal(sha(Buffer.concat(chunks)), sha(big));
    c.close();
  });
});

describe('without zero-copy, everything works on streams', () => {
  for (const [what, options] of [
    ['FTP_ZERO_COPY=off', { env: { FTP_ZERO_COPY: 'off' } }],
    ['the addon absent', { zeroCopy: null }],
  ] as const) {
    test(`${what}: curl download and upload byte-identical, on streams`, async () => {
      const server = await startTestServer(options);
      try {
        const { download, upload } = await curlRoundTrip(server, 'plain.bin', 8 * MiB + 3);
        assert.equal(download.io, 'stream');
        assert.equal(upload.io, 'stream');
        const c = await rawLogin(server);
        const data = await openPassive(c);
        data.pause();
        assert.equal((await c.command('RETR plain.bin')).code, 150);
        await sleep(100);
        assert.equal((await c.command('ABOR')).code, 426);
        assert.equal((await c.reply()).code, 226);
        data.destroy();
        c.close();
      } finally {
        await server.close();
      }
    });
  }
});
