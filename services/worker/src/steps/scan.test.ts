import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import fsp from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { UploadEvent } from '@ftp/upload-events';
import { EICAR, startClamd, type Clamd } from '../../../../test/support/clamd';
import { isPermanent } from './errors';
import { asStepError } from './files';
import { clamdPing, clamdScan, parseScanReply, scanStep, type QuarantineNote } from './scan';
import { backends, dataRootPerTest, failureOf, names, putFile, readBytes, readText, stepContext } from './testStorage';
import type { StepContext } from './types';

function eventFor(storageKey: string, size: number, uploadId = randomUUID()): UploadEvent {
  return {
    uploadId,
    user: 'alice',
    groups: [],
    path: `/${storageKey.split('/').slice(1).join('/')}`,
    storageKey,
    size,
    clientAddress: '127.0.0.1',
    protocol: 'ftp',
    startedAt: Date.now(),
    completedAt: Date.now(),
    replicaId: 'edge-1',
  };
}

/** A TCP server that accepts and never answers: a clamd gone quiet. */
async function silentServer(): Promise<{ port: number; close(): void }> {
  const server: Server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

describe('parseScanReply', () => {
  test('OK, FOUND, ERROR and anything else', () => {
    assert.deepEqual(parseScanReply('stream: OK'), { clean: true });
    assert.deepEqual(parseScanReply('stream: Win.Test.EICAR_HDB-1 FOUND'), { clean: false, signature: 'Win.Test.EICAR_HDB-1' });
    assert.deepEqual(parseScanReply('stream: OK\0'), { clean: true });
    assert.throws(() => parseScanReply('INSTREAM size limit exceeded. ERROR'), /size limit exceeded/);
    assert.throws(() => parseScanReply('PONG'), /unexpected reply/);
  });
});

test('a quarantine that would leave the data root, or bad chunk sizes, fail at construction', () => {
  const options = { host: '127.0.0.1', port: 1 };
  for (const quarantineDir of ['../elsewhere', 'a/../../b', '.', '', '/', 'a//b', 'a\0b']) {
    assert.throws(() => scanStep({ ...options, quarantineDir }), /must be a folder of the data root/, JSON.stringify(quarantineDir));
  }
  // A leading or trailing slash names the same folder of the data root (it is a storage path, not a host path).
  assert.doesNotThrow(() => scanStep({ ...options, quarantineDir: '/var/quarantine/' }));
  assert.throws(() => scanStep({ ...options, quarantineDir: '.q', chunkBytes: 0 }), /chunkBytes/);
});

describe('with a real clamd', () => {
  let clamd: Clamd;
  before(async () => {
    clamd = await startClamd();
  });
  after(async () => {
    await clamd?.stop();
  });

  test('clamd answers PING; nothing listening is false', async (t) => {
    t.diagnostic(`clamd started in ${clamd.startupMs} ms`);
    assert.equal(await clamdPing(clamd.host, clamd.port), true);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const { port } = closed.address() as { port: number };
    await new Promise((r) => closed.close(r));
    assert.equal(await clamdPing('127.0.0.1', port), false);
  });

  test('clamdScan takes any stream of buffers: EICAR split across them is found, small chunks included', async () => {
    const eicar = Buffer.from(EICAR, 'latin1');
    const split = [randomBytes(1000), eicar.subarray(0, 30), eicar.subarray(30), randomBytes(10)];
    assert.deepEqual(await clamdScan(clamd.host, clamd.port, split, { chunkBytes: 7 }), { clean: false, signature: 'Test.EICAR.Body.UNOFFICIAL' });
    async function* clean() {
      yield Buffer.from('nothing ');
      yield Buffer.from('to see here');
    }
    assert.deepEqual(await clamdScan(clamd.host, clamd.port, clean()), { clean: true });
    assert.deepEqual(await clamdScan(clamd.host, clamd.port, []), { clean: true });
  });

  test('a read error while streaming fails the scan with that error', async () => {
    async function* broken() {
      yield Buffer.from('some bytes');
      throw new Error('disk read failed');
    }
    await assert.rejects(clamdScan(clamd.host, clamd.port, broken()), /disk read failed/);
  });

  for (const backend of backends) {
    describe(`scanStep on ${backend} storage`, () => {
      const data = dataRootPerTest(backend);

      /** Uploads `content` as alice's `/inbox/<name>` and returns the step's context for it. */
      async function upload(name: string, content: Buffer | string): Promise<StepContext> {
        const context = stepContext(data.storage, eventFor(`alice/inbox/${name}`, Buffer.byteLength(content)));
        await putFile(data.storage, context.path, content);
        return context;
      }

      const step = (quarantineDir = '.quarantine') => scanStep({ host: clamd.host, port: clamd.port, quarantineDir });

      test('a clean file is clean and stays where it is', async () => {
        const context = await upload('report.csv', 'a,b,c\n1,2,3\n');
        assert.deepEqual(await step().run(context), { details: { clean: true } });
        assert.deepEqual(await data.stored(), ['alice/inbox/report.csv']);
      });

      test('a 0-byte file is clean', async () => {
        const context = await upload('empty.txt', '');
        assert.deepEqual(await step().run(context), { details: { clean: true } });
      });

      test('the EICAR file is quarantined with its sidecars and a note; a re-run gives the same answer', async () => {
        const context = await upload('eicar.com', EICAR);
        await putFile(data.storage, '/alice/inbox/eicar.com.sha256', 'digest  eicar.com\n');
        await putFile(data.storage, '/alice/inbox/eicar.com.md5', 'md5  eicar.com\n');
        const result = await step().run(context);

        const target = `/.quarantine/${context.event.uploadId}/eicar.com`;
        assert.equal(result.stop, true);
        assert.equal(result.path, target);
        assert.deepEqual(result.details, { clean: false, signature: result.details?.signature, quarantine: target.slice(1) });
        assert.match(String(result.details?.signature), /^Test\.EICAR\./);
        assert.deepEqual(await names(data.storage, '/alice/inbox'), [], 'the file and its sidecars are gone');
        assert.equal((await readBytes(data.storage, target)).toString('latin1'), EICAR);
        assert.equal(await readText(data.storage, `${target}.sha256`), 'digest  eicar.com\n');
        assert.equal(await readText(data.storage, `${target}.md5`), 'md5  eicar.com\n');
        const note = JSON.parse(await readText(data.storage, `${target}.quarantine.json`)) as QuarantineNote;
        assert.equal(note.signature, result.details?.signature);
        assert.equal(note.user, 'alice');
        assert.equal(note.uploadId, context.event.uploadId);
        assert.equal(note.originalPath, 'alice/inbox/eicar.com');
        assert.equal(note.path, '/inbox/eicar.com');
        assert.equal(note.size, EICAR.length);
        assert.ok(!Number.isNaN(Date.parse(note.quarantinedAt)));
        const quarantined = ['eicar.com', 'eicar.com.md5', 'eicar.com.quarantine.json', 'eicar.com.sha256'];
        assert.deepEqual(await data.stored(), quarantined.map((name) => `.quarantine/${context.event.uploadId}/${name}`));

        // The job is retried after the quarantine (crash before its result was kept): same result, no error, no rescan.
        assert.deepEqual(await step().run(context), result);
        assert.deepEqual(await data.stored(), quarantined.map((name) => `.quarantine/${context.event.uploadId}/${name}`));
      });

      test('a crash half-way through the quarantine (note and sidecars moved, file not) is finished by the retry', async () => {
        const context = await upload('half.com', EICAR);
        await putFile(data.storage, '/alice/inbox/half.com.sha256', 'digest  half.com\n');
        const folder = `/.quarantine/${context.event.uploadId}`;
        await putFile(data.storage, `${folder}/half.com.quarantine.json`, '{"partial": "note"}\n');
        await data.storage.rename('/alice/inbox/half.com.sha256', `${folder}/half.com.sha256`);
        const result = await step().run(context);
        assert.deepEqual([result.stop, result.path], [true, `${folder}/half.com`]);
        assert.deepEqual(await names(data.storage, folder), ['half.com', 'half.com.quarantine.json', 'half.com.sha256']);
        assert.equal((JSON.parse(await readText(data.storage, `${folder}/half.com.quarantine.json`)) as QuarantineNote).uploadId, context.event.uploadId);
        assert.deepEqual(await names(data.storage, '/alice/inbox'), []);
      });

      test('a quarantine folder given with slashes is that folder of the data root', async () => {
        const context = await upload('eicar.com', EICAR);
        const result = await step('/q/infected/').run(context);
        assert.equal(result.path, `/q/infected/${context.event.uploadId}/eicar.com`);
        assert.equal((await readBytes(data.storage, result.path!)).toString('latin1'), EICAR);
      });

      test('EICAR in the middle of a 5 MB random file is found (streamed over ~80 chunks)', async () => {
        const half = 2.5 * 1024 * 1024;
        const content = Buffer.concat([randomBytes(half), Buffer.from(EICAR, 'latin1'), randomBytes(half)]);
        const context = await upload('big.bin', content);
        const result = await scanStep({ host: clamd.host, port: clamd.port, quarantineDir: '.quarantine', chunkBytes: 64 * 1024 }).run(context);
        assert.equal(result.stop, true);
        assert.equal(result.details?.signature, 'Test.EICAR.Body.UNOFFICIAL');
        assert.ok((await readBytes(data.storage, result.path!)).equals(content));
      });

      test('an unsafe upload id is refused for good and nothing moves', async () => {
        const context = await upload('x.com', EICAR);
        for (const uploadId of ['../x', '..', 'a/b', '']) {
          await assert.rejects(step().run({ ...context, event: { ...context.event, uploadId } }), (err) => isPermanent(err) && /unsafe uploadId/.test(String(err)));
        }
        assert.deepEqual(await data.stored(), ['alice/inbox/x.com']);
      });

      test('a file that is neither there nor in quarantine fails for good', async () => {
        const context = await upload('vanished.txt', 'x');
        await data.storage.delete(context.path);
        await assert.rejects(step().run(context), (err) => isPermanent(err) && /gone and not in quarantine/.test(String(err)));
      });

      // clamd answers ERROR and closes while we still write; which reaches us first, its answer or the reset, is a race.
      test('clamd ERROR (stream over StreamMaxLength) throws', async () => {
        const small = await startClamd({ streamMaxLength: '1M' });
        try {
          const context = await upload('toolarge.bin', randomBytes(3 * 1024 * 1024));
          await assert.rejects(scanStep({ host: small.host, port: small.port, quarantineDir: '.quarantine' }).run(context), (err) => {
            assert.ok(!isPermanent(err));
            assert.match(String(err), /size limit exceeded\. ERROR|over its StreamMaxLength/);
            return true;
          });
          assert.deepEqual(await data.stored(), ['alice/inbox/toolarge.bin'], 'not moved');
        } finally {
          await small.stop();
        }
      });

      test('a clamd that accepts and never answers times out', async () => {
        const silent = await silentServer();
        try {
          const context = await upload('slow.txt', 'hello');
          const started = Date.now();
          await assert.rejects(scanStep({ host: '127.0.0.1', port: silent.port, quarantineDir: '.quarantine', timeoutMs: 300 }).run(context), (err) => {
            assert.ok(!isPermanent(err));
            assert.match(String(err), /no progress for 300 ms/);
            return true;
          });
          assert.ok(Date.now() - started < 3000);
          assert.deepEqual(await data.stored(), ['alice/inbox/slow.txt']);
        } finally {
          silent.close();
        }
      });

      test('a worker shutdown aborts the scan', async () => {
        const silent = await silentServer();
        try {
          const controller = new AbortController();
          const context = { ...(await upload('abort.txt', 'hello')), signal: controller.signal };
          setTimeout(() => controller.abort(new Error('worker closing')), 100);
          await assert.rejects(scanStep({ host: '127.0.0.1', port: silent.port, quarantineDir: '.quarantine' }).run(context), /worker closing/);
          assert.deepEqual(await data.stored(), ['alice/inbox/abort.txt']);
        } finally {
          silent.close();
        }
      });

      test('clamd stopped: the step throws at once, to be retried', async () => {
        const stopped = await startClamd();
        await stopped.stop();
        const context = await upload('later.txt', 'hello');
        const started = Date.now();
        await assert.rejects(
          scanStep({ host: stopped.host, port: stopped.port, quarantineDir: '.quarantine' }).run(context),
          (err) => !isPermanent(err) && /ECONNREFUSED/.test(String(err)),
        );
        assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
        assert.deepEqual(await data.stored(), ['alice/inbox/later.txt']);
      });

      if (backend === 'local') {
        // Symlinks exist on a local disk only; object storage has no name that leads elsewhere.
        test('a quarantine folder that is a symlink leading out of the data root is refused for good, nothing moves', async () => {
          await fsp.symlink(data.outside!, path.join(data.dir!, '.q-link'));
          const context = await upload('eicar-link.com', EICAR);
          const failure = await failureOf(step('.q-link').run(context));
          assert.deepEqual(await names(data.storage, '/alice/inbox'), ['eicar-link.com'], 'not moved');
          assert.deepEqual(await fsp.readdir(data.outside!), []);
          assert.ok(isPermanent(asStepError(failure)), `refused, but to be retried: ${String(failure)}`);
        });
      }
    });
  }
});
