import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';
import { EICAR, startClamd, type Clamd } from '../../../../test/support/clamd';
import { isPermanent } from './errors';
import { clamdPing, parseScanReply, scanStep, type QuarantineNote } from './scan';
import type { StepContext } from './types';

const log = createLogger({ level: 'silent' });

function event(storageKey: string, uploadId = randomUUID()): UploadEvent {
  return {
    uploadId,
    user: 'alice',
    groups: [],
    path: `/${storageKey.split('/').slice(1).join('/')}`,
    storageKey,
    size: 0,
    clientAddress: '127.0.0.1',
    protocol: 'ftp',
    startedAt: Date.now(),
    completedAt: Date.now(),
    replicaId: 'edge-1',
  };
}

describe('parseScanReply', () => {
  test('OK, FOUND, ERROR and anything else', () => {
    assert.deepEqual(parseScanReply('stream: OK'), { clean: true });
    assert.deepEqual(parseScanReply('stream: Win.Test.EICAR_HDB-1 FOUND'), { clean: false, signature: 'Win.Test.EICAR_HDB-1' });
    assert.throws(() => parseScanReply('INSTREAM size limit exceeded. ERROR'), /size limit exceeded/);
    assert.throws(() => parseScanReply('PONG'), /unexpected reply/);
  });
});

describe('scanStep with a real clamd', () => {
  let clamd: Clamd;
  let dataRoot: string;

  before(async () => {
    clamd = await startClamd();
    dataRoot = mkdtempSync(join(tmpdir(), 'scan-test-'));
  });
  after(async () => {
    await clamd?.stop();
    if (dataRoot) rmSync(dataRoot, { recursive: true, force: true });
  });

  /** Writes `content` at `<dataRoot>/alice/inbox/<name>` and returns a context for it. */
  function upload(name: string, content: Uint8Array | string): StepContext {
    const storageKey = `alice/inbox/${name}`;
    const filePath = join(dataRoot, storageKey);
    mkdirSync(dirname(filePath), { recursive: true });
    writeFileSync(filePath, content);
    return { event: event(storageKey), filePath, dataRoot, previous: {}, log, signal: new AbortController().signal };
  }

  const step = () => scanStep({ host: clamd.host, port: clamd.port, quarantineDir: '.quarantine' });

  test('clamd answers PING; nothing listening is false', async (t) => {
    t.diagnostic(`clamd started in ${clamd.startupMs} ms`);
    assert.equal(await clamdPing(clamd.host, clamd.port), true);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const { port } = closed.address() as { port: number };
    await new Promise((r) => closed.close(r));
    assert.equal(await clamdPing('127.0.0.1', port), false);
  });

  test('a clean file is clean and stays where it is', async () => {
    const context = upload('report.csv', 'a,b,c\n1,2,3\n');
    assert.deepEqual(await step().run(context), { details: { clean: true } });
    assert.ok(existsSync(context.filePath));
  });

  test('a 0-byte file is clean', async () => {
    const context = upload('empty.txt', '');
    assert.deepEqual(await step().run(context), { details: { clean: true } });
  });

  test('the EICAR file is quarantined with its sidecars and a note; a re-run gives the same answer', async () => {
    const context = upload('eicar.com', EICAR);
    writeFileSync(`${context.filePath}.sha256`, 'digest  eicar.com\n');
    const result = await step().run(context);

    const target = join(dataRoot, '.quarantine', context.event.uploadId, 'eicar.com');
    assert.equal(result.stop, true);
    assert.equal(result.filePath, target);
    assert.equal(result.details?.clean, false);
    assert.match(String(result.details?.signature), /^Test\.EICAR\./);
    assert.ok(!existsSync(context.filePath), 'original is gone');
    assert.ok(!existsSync(`${context.filePath}.sha256`), 'sidecar is gone');
    assert.equal(readFileSync(target, 'latin1'), EICAR);
    assert.equal(readFileSync(`${target}.sha256`, 'utf8'), 'digest  eicar.com\n');
    const note = JSON.parse(readFileSync(`${target}.quarantine.json`, 'utf8')) as QuarantineNote;
    assert.equal(note.signature, result.details?.signature);
    assert.equal(note.user, 'alice');
    assert.equal(note.uploadId, context.event.uploadId);
    assert.equal(note.originalPath, 'alice/inbox/eicar.com');
    assert.equal(note.path, '/inbox/eicar.com');
    assert.ok(!Number.isNaN(Date.parse(note.quarantinedAt)));

    // The job is retried after the quarantine (crash before its result was kept): same result, no error.
    assert.deepEqual(await step().run(context), result);
  });

  test('EICAR in the middle of a 5 MB random file is found (streamed over ~80 chunks)', async () => {
    const half = 2.5 * 1024 * 1024;
    const content = Buffer.concat([randomBytes(half), Buffer.from(EICAR, 'latin1'), randomBytes(half)]);
    const context = upload('big.bin', content);
    const result = await scanStep({ host: clamd.host, port: clamd.port, quarantineDir: '.quarantine', chunkBytes: 64 * 1024 }).run(context);
    assert.equal(result.stop, true);
    assert.equal(result.details?.signature, 'Test.EICAR.Body.UNOFFICIAL');
    assert.ok(readFileSync(result.filePath!).equals(content));
  });

  test('a quarantine that would leave the data root is refused, for good', async () => {
    assert.throws(() => scanStep({ host: clamd.host, port: clamd.port, quarantineDir: '../elsewhere' }), /inside the data root/);
    assert.throws(() => scanStep({ host: clamd.host, port: clamd.port, quarantineDir: '/var/quarantine' }), /inside the data root/);
    const unsafe = upload('x.txt', 'x');
    await assert.rejects(step().run({ ...unsafe, event: { ...unsafe.event, uploadId: '../x' } }), (err) => isPermanent(err) && /unsafe uploadId/.test(String(err)));
    // A quarantine folder that is a symlink leading out of the data root.
    const outside = mkdtempSync(join(tmpdir(), 'scan-outside-'));
    try {
      symlinkSync(outside, join(dataRoot, '.q-link'));
      const context = upload('eicar-link.com', EICAR);
      const escaping = scanStep({ host: clamd.host, port: clamd.port, quarantineDir: '.q-link' });
      await assert.rejects(escaping.run(context), (err) => isPermanent(err) && /outside the data root/.test(String(err)));
      assert.ok(existsSync(context.filePath), 'not moved');
      assert.deepEqual(readdirSync(outside), []);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  test('a file that is neither there nor in quarantine fails for good', async () => {
    const context = upload('vanished.txt', 'x');
    rmSync(context.filePath);
    await assert.rejects(step().run(context), (err) => isPermanent(err) && /gone and not in quarantine/.test(String(err)));
  });

  // clamd answers ERROR and closes while we still write; which reaches us first, its answer or the reset, is a race.
  test('clamd ERROR (stream over StreamMaxLength) throws', async () => {
    const small = await startClamd({ streamMaxLength: '1M' });
    try {
      const context = upload('toolarge.bin', randomBytes(3 * 1024 * 1024));
      await assert.rejects(scanStep({ host: small.host, port: small.port, quarantineDir: '.quarantine' }).run(context), /size limit exceeded\. ERROR|over its StreamMaxLength/);
      assert.ok(existsSync(context.filePath), 'not moved');
    } finally {
      await small.stop();
    }
  });

  test('a clamd that accepts and never answers times out', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      const context = upload('slow.txt', 'hello');
      const started = Date.now();
      await assert.rejects(scanStep({ host: '127.0.0.1', port, quarantineDir: '.quarantine', timeoutMs: 300 }).run(context), /no progress for 300 ms/);
      assert.ok(Date.now() - started < 3000);
    } finally {
      silent.close();
    }
  });

  test('a worker shutdown aborts the scan', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      const controller = new AbortController();
      const context = { ...upload('abort.txt', 'hello'), signal: controller.signal };
      setTimeout(() => controller.abort(new Error('worker closing')), 100);
      await assert.rejects(scanStep({ host: '127.0.0.1', port, quarantineDir: '.quarantine' }).run(context), /worker closing/);
    } finally {
      silent.close();
    }
  });

  // Last: it stops the shared clamd.
  test('clamd stopped: the step throws at once', async () => {
    await clamd.stop();
    const context = upload('later.txt', 'hello');
    const started = Date.now();
    await assert.rejects(step().run(context), (err) => !isPermanent(err) && /ECONNREFUSED/.test(String(err)));
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.ok(existsSync(context.filePath));
  });
});
