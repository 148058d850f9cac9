import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, write, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { createLocalStorage, partialNameFor, type Storage } from '@ftp/storage';
import type { RawClient } from '../support/rawClient';
import { expectNothingLeaked, openPassive, resourceSnapshot, passiveDownload, passiveUpload, rawLogin, sleep, waitFor, writeData } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const BIG = 64 * 1024 * 1024;

/** How the injected storage fails uploads: a real ENOSPC from /dev/full, or EDQUOT, after `after` bytes. */
let diskFull: { after: number; kind: 'enospc' | 'edquot' } | undefined;

/** Forwards the first `limit` bytes to `real`; the rest goes to /dev/full, whose write fails with the kernel's ENOSPC. */
function fullAfter(real: Writable, limit: number, kind: 'enospc' | 'edquot'): Writable {
  let written = 0;
  let devFull: number | undefined;
  const spill = (rest: Buffer, done: (err?: Error | null) => void) => {
    if (rest.length === 0) return done();
    if (kind === 'edquot') return done(Object.assign(new Error('EDQUOT: disk quota exceeded, write'), { code: 'EDQUOT' }));
    devFull ??= openSync('/dev/full', 'w');
    write(devFull, rest, (err) => done(err));
  };
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const room = Math.max(0, limit - written);
      written += chunk.length;
      if (room === 0) return spill(chunk, done);
      real.write(chunk.subarray(0, room), (err) => (err ? done(err) : spill(chunk.subarray(room), done)));
    },
    final(done) {
      real.end(done);
    },
    destroy(err, done) {
      if (devFull !== undefined) closeSync(devFull);
      done(err);
    },
  });
}

function faultyStorage(root: string): Storage {
  const real = createLocalStorage({ root, fsync: false });
  return {
    ...real,
    async openUpload(path, start) {
      const upload = await real.openUpload(path, start);
      // The fault is in the stream, so the upload offers no zero-copy receiver (that would write around it).
      return diskFull ? { ...upload, stream: fullAfter(upload.stream, diskFull.after, diskFull.kind), receiveInto: undefined } : upload;
    },
  };
}

let server: TestServer;
let home: string;
let big: Buffer;
before(async () => {
  server = await startTestServer({ storageFor: (user) => faultyStorage(user.root) });
  home = join(server.dataDir, 'alice');
  mkdirSync(home, { recursive: true });
  // Random content, so a download that skipped or repeated bytes could not pass.
  big = randomBytes(BIG);
  writeFileSync(join(home, 'big.bin'), big);
  writeFileSync(join(home, 'small.txt'), 'small file\n');
});
after(() => server.close());

const sessionsActive = async () => (await server.edge.metrics.sessionsActive.get()).values.reduce((n, v) => n + v.value, 0);
const settled = () => waitFor('sessions to close', async () => (await sessionsActive()) === 0 && (await server.edge.cluster.ports.inUse()) === 0);

async function assertUsable(c: RawClient) {
  assert.equal((await c.command('NOOP')).code, 200);
  const next = await passiveDownload(c, 'RETR small.txt');
  assert.equal(next.final.code, 226);
  assert.equal(next.body.toString(), 'small file\n');
}

async function nlst(c: RawClient): Promise<string[]> {
  const { final, body } = await passiveDownload(c, 'NLST');
  assert.equal(final.code, 226);
  return body.toString().split('\r\n').filter(Boolean);
}

describe('client disconnects mid-transfer', () => {
  test('mid-upload: not published, partial kept for SIZE + REST + STOR; no fd or lease leaked', async () => {
    await settled();
    const before = resourceSnapshot();
    const payload = randomBytes(3 * 1024 * 1024 + 11);
    const sent = 1024 * 1024 + 123;
    const c = await rawLogin(server);
    const data = await openPassive(c);
    assert.equal((await c.command('STOR part.bin')).code, 150);
    await writeData(data, payload.subarray(0, sent));
    const partial = join(home, partialNameFor('part.bin'));
    await waitFor('partial bytes on disk', () => existsSync(partial) && statSync(partial).size === sent);
    c.socket.destroy();
    data.destroy();
    // The session counts as closed when its socket does; the transfer's outcome is decided (and audited) just after.
    const audited = () => server.logs.find((l) => l.event === 'upload' && l.path === '/part.bin');
    await waitFor('the interrupted upload to be audited', () => audited() !== undefined);
    assert.notEqual(audited()!.result, 'ok');
    await settled();
    assert.equal(existsSync(join(home, 'part.bin')), false, 'an interrupted upload is never published');

    const d = await rawLogin(server);
    assert.ok(!(await nlst(d)).includes('part.bin'));
    // SIZE says where a resume continues: one byte short of what arrived (the last byte is sent again, so that a
    // resume always ends with a commit).
    assert.deepEqual(await d.command('SIZE part.bin'), { code: 213, text: String(sent - 1) });
    assert.equal((await d.command(`REST ${sent - 1}`)).code, 350);
    const resumed = await passiveUpload(d, 'STOR part.bin', payload.subarray(sent - 1));
    assert.equal(resumed.final.code, 226);
    assert.equal(sha(readFileSync(join(home, 'part.bin'))), sha(payload));
    assert.equal(existsSync(partial), false);
    assert.equal((await d.command('QUIT')).code, 221);
    await d.waitClosed();
    await settled();
    await expectNothingLeaked(before);
  });

  test('mid-download and after PASV without a data connection: the file is closed, the lease released', async () => {
    await settled();
    const before = resourceSnapshot();
    for (let i = 0; i < 5; i++) {
      const c = await rawLogin(server);
      const data = await openPassive(c);
      const some = new Promise<void>((resolve) => data.once('data', () => resolve()));
      assert.equal((await c.command('RETR big.bin')).code, 150);
      await some;
      c.socket.destroy();
      data.destroy();
      const e = await rawLogin(server);
      assert.equal((await e.command('PASV')).code, 227);
      assert.equal(await server.edge.cluster.ports.inUse(), 1);
      e.close();
    }
    await settled();
    await expectNothingLeaked(before);
  });
});

describe('full disk', () => {
  test('ENOSPC during STOR (real, from /dev/full) → 452, logged, partial kept, session usable', { skip: !existsSync('/dev/full') }, async () => {
    const c = await rawLogin(server);
    const payload = randomBytes(2 * 1024 * 1024);
    const limit = 300_000;
    diskFull = { after: limit, kind: 'enospc' };
    try {
      const r = await passiveUpload(c, 'STOR full.bin', payload);
      assert.equal(r.first.code, 150);
      assert.equal(r.final.code, 452, r.final.text);
    } finally {
      diskFull = undefined;
    }
    const line = server.logs.find((l) => l.path === '/full.bin' && l.level === 50);
    assert.ok(line, 'an error log line for the failed upload');
    assert.match(JSON.stringify(line), /ENOSPC|no space/i);
    assert.equal(existsSync(join(home, 'full.bin')), false, 'a failed upload is never published');
    assert.deepEqual(await c.command('SIZE full.bin'), { code: 213, text: String(limit - 1) }, 'where a resume continues: one byte short');

    assert.equal((await c.command('NOOP')).code, 200);
    const small = await passiveUpload(c, 'STOR after-full.txt', Buffer.from('space again\n'));
    assert.equal(small.final.code, 226);
    assert.equal(readFileSync(join(home, 'after-full.txt'), 'utf8'), 'space again\n');
    // Once there is room, the kept partial resumes to the exact file.
    assert.equal((await c.command(`REST ${limit}`)).code, 350);
    assert.equal((await passiveUpload(c, 'STOR full.bin', payload.subarray(limit))).final.code, 226);
    assert.equal(sha(readFileSync(join(home, 'full.bin'))), sha(payload));
    c.close();
  });

  test('EDQUOT during STOR → 552, session usable', async () => {
    const c = await rawLogin(server);
    diskFull = { after: 1000, kind: 'edquot' };
    try {
      const r = await passiveUpload(c, 'STOR quota.bin', randomBytes(100_000));
      assert.equal(r.final.code, 552, r.final.text);
    } finally {
      diskFull = undefined;
    }
    assert.equal(existsSync(join(home, 'quota.bin')), false);
    await assertUsable(c);
    c.close();
  });
});

describe('ABOR', () => {
  /** Starts RETR of the big file, reads about 1 MiB, stops reading, then lets `abort` send its bytes. */
  async function abortRetr(abort: (c: RawClient) => Promise<void> | void) {
    await settled();
    const before = resourceSnapshot();
    const c = await rawLogin(server);
    const data = await openPassive(c);
    let received = 0;
    const gotSome = new Promise<void>((resolve) =>
      data.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= 1024 * 1024) {
          data.pause();
          resolve();
        }
      }),
    );
    assert.equal((await c.command('RETR big.bin')).code, 150);
    await gotSome;
    const abortsBefore = server.logs.filter((l) => l.msg === 'transfer aborted by client').length;
    await abort(c);
    const first = await c.reply();
    const second = await c.reply();
    assert.deepEqual([first.code, second.code], [426, 226], `${first.text} / ${second.text}`);
    data.destroy();
    assert.ok(received < BIG, 'the transfer did not finish before ABOR');
    assert.equal(server.logs.filter((l) => l.msg === 'transfer aborted by client').length, abortsBefore + 1);
    await assertUsable(c);
    c.close();
    await settled();
    await expectNothingLeaked(before); // the aborted file's descriptor included
  }

  test('plain ABOR during RETR → 426 then 226, session usable', () => abortRetr((c) => c.send('ABOR')));

  test('Telnet IAC IP, IAC DM, ABOR during RETR → 426 then 226', () =>
    abortRetr((c) => c.send(Buffer.from([0xff, 0xf4, 0xff, 0xf2, ...Buffer.from('ABOR\r\n')]))));

  test('Telnet IAC IP, IAC (DM stripped as urgent data), ABOR → 426 then 226', () =>
    abortRetr((c) => c.send(Buffer.from([0xff, 0xf4, 0xff, ...Buffer.from('ABOR\r\n')]))));

  test('Telnet sequence and ABOR split across TCP segments → 426 then 226', () =>
    abortRetr(async (c) => {
      for (const part of [[0xff], [0xf4, 0xff], [0xf2, 0x41], [...Buffer.from('BO')], [...Buffer.from('R\r')], [0x0a]]) {
        await writeData(c.socket, Buffer.from(part));
        await sleep(15);
      }
    }));

  test('ABOR as urgent data from Python ftplib → 426 then 226, NOOP and NLST work', { timeout: 30_000 }, async (t) => {
    const python = await promisify(execFile)('python3', ['--version']).catch(() => undefined);
    if (!python) return t.skip('python3 not installed');
    const script = fileURLToPath(new URL('./ftplib_abort.py', import.meta.url));
    const { stdout } = await promisify(execFile)('python3', [script, server.host, String(server.port), server.user, server.password, 'big.bin'], {
      timeout: 20_000,
    });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    assert.match(String(out.abort), /^426 /);
    assert.match(String(out.abort_final), /^226 /);
    assert.match(String(out.noop), /^200 /);
    assert.ok((out.nlst as string[]).includes('big.bin'), stdout);
    assert.ok((out.received as number) < BIG);
    assert.match(String(out.quit), /^221 /);
    await settled();
  });

  test('ABOR with no transfer → 226; after PASV it releases the lease', async () => {
    const c = await rawLogin(server);
    assert.equal((await c.command('ABOR')).code, 226);
    assert.equal((await c.command('PASV')).code, 227);
    assert.equal(await server.edge.cluster.ports.inUse(), 1);
    assert.equal((await c.command('ABOR')).code, 226);
    assert.equal(await server.edge.cluster.ports.inUse(), 0);
    await assertUsable(c);
    c.close();
  });

  test('ABOR during STOR → 426 then 226; the partial is kept, not published', async () => {
    const c = await rawLogin(server);
    const data = await openPassive(c);
    const payload = randomBytes(2 * 1024 * 1024);
    const sent = 700_001;
    assert.equal((await c.command('STOR aborted.bin')).code, 150);
    await writeData(data, payload.subarray(0, sent));
    const partial = join(home, partialNameFor('aborted.bin'));
    await waitFor('partial bytes on disk', () => existsSync(partial) && statSync(partial).size === sent);
    c.send('ABOR');
    assert.equal((await c.reply()).code, 426);
    assert.equal((await c.reply()).code, 226);
    data.destroy();
    assert.equal(existsSync(join(home, 'aborted.bin')), false);
    assert.ok(!(await nlst(c)).includes('aborted.bin'));
    assert.deepEqual(await c.command('SIZE aborted.bin'), { code: 213, text: String(sent - 1) }, 'one byte short of the partial');
    assert.equal((await c.command(`REST ${sent - 1}`)).code, 350);
    assert.equal((await passiveUpload(c, 'STOR aborted.bin', payload.subarray(sent - 1))).final.code, 226);
    assert.equal(sha(readFileSync(join(home, 'aborted.bin'))), sha(payload));
    c.close();
  });
});

describe('data connection timeout', () => {
  let slow: TestServer;
  before(async () => {
    slow = await startTestServer({ env: { FTP_DATA_CONNECT_TIMEOUT: '1' } });
    mkdirSync(join(slow.dataDir, 'alice'), { recursive: true });
    writeFileSync(join(slow.dataDir, 'alice', 'small.txt'), 'small file\n');
  });
  after(() => slow.close());

  test('PASV then RETR without connecting → 150 then 425 after FTP_DATA_CONNECT_TIMEOUT; session usable', async () => {
    const c = await rawLogin(slow);
    assert.equal((await c.command('PASV')).code, 227);
    const started = Date.now();
    assert.equal((await c.command('RETR small.txt')).code, 150);
    const r = await c.reply(5000);
    assert.equal(r.code, 425);
    assert.ok(Date.now() - started >= 900, 'waited for the timeout');
    assert.equal(await slow.edge.cluster.ports.inUse(), 0, 'the lease is released');
    assert.ok(slow.logs.some((l) => l.msg === 'data connection failed'));
    assert.equal((await c.command('NOOP')).code, 200);
    const ok = await passiveDownload(c, 'RETR small.txt');
    assert.equal(ok.final.code, 226);
    assert.equal(ok.body.toString(), 'small file\n');
    c.close();
  });
});
