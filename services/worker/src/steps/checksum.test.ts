import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { UploadEvent } from '@ftp/upload-events';
import { checksumStep, knownSha256, renameInSidecar, sidecarLine } from './checksum';
import { isPermanent, PermanentStepError } from './errors';
import { asStepError, digestFile } from './files';
import { backends, checkSidecar, dataRootPerTest, failureOf, names, putFile, readText, startUpload, stepContext } from './testStorage';
import type { StepContext } from './types';

const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex');

function eventFor(name: string, size: number, extra: Partial<UploadEvent> = {}): UploadEvent {
  return {
    uploadId: 'u-1',
    user: 'alice',
    groups: [],
    path: `/inbox/${name}`,
    storageKey: `alice/inbox/${name}`,
    size,
    clientAddress: '127.0.0.1',
    protocol: 'ftp',
    startedAt: 0,
    completedAt: Date.UTC(2024, 1, 29, 23, 59),
    replicaId: 'r1',
    ...extra,
  };
}

for (const backend of backends) {
  describe(`checksum on ${backend} storage`, () => {
    const data = dataRootPerTest(backend);

    /** Uploads `content` as alice's `/inbox/<name>` and returns the step's context for it. */
    async function upload(name: string, content: Buffer, event: Partial<UploadEvent> = {}): Promise<StepContext> {
      const context = stepContext(data.storage, eventFor(name, content.length, event));
      await putFile(data.storage, context.path, content);
      return context;
    }

    test('streams a multi-chunk file once into every digest and writes sidecars sha256sum -c accepts', async () => {
      const content = randomBytes(3 * 1024 * 1024 + 17);
      const context = await upload('report.csv', content);
      const result = await checksumStep({ algorithms: ['sha256', 'md5'] }).run(context);
      assert.deepEqual(result, {
        details: {
          bytes: content.length,
          sha256: hex('sha256', content),
          md5: hex('md5', content),
          sidecars: ['alice/inbox/report.csv.sha256', 'alice/inbox/report.csv.md5'],
        },
      });
      assert.equal(await readText(data.storage, '/alice/inbox/report.csv.sha256'), `${hex('sha256', content)}  report.csv\n`);
      assert.equal(await readText(data.storage, '/alice/inbox/report.csv.md5'), `${hex('md5', content)}  report.csv\n`);
      assert.match(await checkSidecar(data, '/alice/inbox/report.csv.sha256'), /^report\.csv: OK$/m);
      assert.match(await checkSidecar(data, '/alice/inbox/report.csv.md5'), /^report\.csv: OK$/m);
    });

    test('running again rewrites identical sidecars and leaves no temporary file or upload behind', async () => {
      const content = Buffer.from('hello\n');
      const context = await upload('a.txt', content);
      const step = checksumStep({});
      const first = await step.run(context);
      const before = await readText(data.storage, '/alice/inbox/a.txt.sha256');
      const second = await step.run(context);
      assert.deepEqual(second, first);
      assert.equal(await readText(data.storage, '/alice/inbox/a.txt.sha256'), before);
      assert.deepEqual(await data.stored(), ['alice/inbox/a.txt', 'alice/inbox/a.txt.sha256']);
    });

    test("the edge's sha256 is checked: equal passes, different fails for good and writes nothing", async () => {
      const content = Buffer.from('payload');
      const context = await upload('p.bin', content, { sha256: hex('sha256', content).toUpperCase() });
      await checksumStep().run(context);
      await data.storage.delete('/alice/inbox/p.bin.sha256');
      const wrong = { ...context, event: { ...context.event, sha256: hex('sha256', Buffer.from('other')) } };
      await assert.rejects(checksumStep().run(wrong), (err: Error) => err instanceof PermanentStepError && /corrupt/.test(err.message));
      assert.deepEqual(await data.stored(), ['alice/inbox/p.bin']);
    });

    test('md5 only: the md5 sidecar alone, sha256 still in the details; sidecar: false writes none', async () => {
      const content = Buffer.from('x'.repeat(1000));
      const context = await upload('x.txt', content);
      const md5Only = await checksumStep({ algorithms: ['md5'] }).run(context);
      assert.equal(md5Only.details?.sha256, hex('sha256', content));
      assert.deepEqual(await names(data.storage, '/alice/inbox'), ['x.txt', 'x.txt.md5']);
      await data.storage.delete('/alice/inbox/x.txt.md5');
      const none = await checksumStep({ algorithms: ['sha256', 'md5'], sidecar: false }).run(context);
      assert.equal(none.details?.md5, hex('md5', content));
      assert.deepEqual(none.details?.sidecars, []);
      assert.deepEqual(await data.stored(), ['alice/inbox/x.txt']);
    });

    test('a missing file, or a folder in its place, fails for good', async () => {
      await putFile(data.storage, '/alice/inbox/other.txt', 'x');
      await assert.rejects(checksumStep().run(stepContext(data.storage, eventFor('gone', 0))), PermanentStepError);
      await data.storage.mkdir('/alice/inbox/folder');
      await assert.rejects(checksumStep().run(stepContext(data.storage, eventFor('folder', 0))), /not a regular file/);
      assert.deepEqual(await data.stored(), ['alice/inbox/other.txt']);
    });

    test('an upload in progress under the same name is not read: the published file is digested', async () => {
      const content = Buffer.from('published\n');
      const context = await upload('busy.csv', content, { sha256: hex('sha256', content) });
      const partial = randomBytes(6 * 1024 * 1024); // more than a part: object storage keeps it
      await startUpload(data.storage, context.path, partial);
      assert.equal((await data.storage.stat(context.path)).partial, true);
      const result = await checksumStep().run(context);
      assert.deepEqual([result.details?.sha256, result.details?.bytes], [hex('sha256', content), content.length]);
      assert.equal(await readText(data.storage, '/alice/inbox/busy.csv.sha256'), `${hex('sha256', content)}  busy.csv\n`);
      assert.deepEqual(await data.stored(), ['alice/inbox/busy.csv', 'alice/inbox/busy.csv (partial)', 'alice/inbox/busy.csv.sha256']);
    });

    test('a name with a backslash is escaped as coreutils does and checks', async () => {
      const context = await upload('odd\\name.txt', Buffer.from('odd'));
      await checksumStep().run(context);
      assert.equal((await readText(data.storage, '/alice/inbox/odd\\name.txt.sha256'))[0], '\\');
      await checkSidecar(data, '/alice/inbox/odd\\name.txt.sha256');
    });

    test('digestFile of an empty file', async () => {
      await putFile(data.storage, '/alice/empty', '');
      assert.deepEqual(await digestFile(data.storage, '/alice/empty', ['sha256']), { bytes: 0, sha256: hex('sha256', Buffer.alloc(0)) });
    });

    if (backend === 'local') {
      // Symlinks exist on a local disk only; object storage has no name that leads elsewhere.
      test('a file in a folder that is a symlink leading out of the data root is refused for good', async () => {
        const content = Buffer.from('secret');
        await fsp.mkdir(path.join(data.dir!, 'alice'));
        await fsp.writeFile(path.join(data.outside!, 'f.txt'), content);
        await fsp.symlink(data.outside!, path.join(data.dir!, 'alice', 'linked'));
        const linked = stepContext(data.storage, eventFor('f.txt', content.length, { path: '/linked/f.txt', storageKey: 'alice/linked/f.txt' }));
        const failure = await failureOf(checksumStep().run(linked));
        assert.deepEqual(await fsp.readdir(data.outside!), ['f.txt']);
        assert.ok(isPermanent(asStepError(failure)), `refused, but to be retried: ${String(failure)}`);
      });

      test('a sidecar name that is a symlink leading out of the data root is not written through, for good', async () => {
        await fsp.writeFile(path.join(data.outside!, 'target.sha256'), 'keep\n');
        const context = await upload('s.txt', Buffer.from('secret'));
        await fsp.symlink(path.join(data.outside!, 'target.sha256'), path.join(data.dir!, 'alice', 'inbox', 's.txt.sha256'));
        const failure = await failureOf(checksumStep().run(context));
        assert.equal(await fsp.readFile(path.join(data.outside!, 'target.sha256'), 'utf8'), 'keep\n');
        assert.deepEqual(await fsp.readdir(data.outside!), ['target.sha256']);
        assert.ok(isPermanent(asStepError(failure)), `refused, but to be retried: ${String(failure)}`);
      });
    }
  });
}

test('bad options fail at construction', () => {
  assert.throws(() => checksumStep({ algorithms: [] }));
  assert.throws(() => checksumStep({ algorithms: ['sha1' as 'md5'] }));
});

test('names with a line break or backslash are escaped as coreutils does', () => {
  assert.equal(sidecarLine('ab', 'plain name.txt'), 'ab  plain name.txt\n');
  assert.equal(sidecarLine('ab', 'a\\b\nc'), '\\ab  a\\\\b\\nc\n');
});

test('renameInSidecar rewrites only the line naming the file', () => {
  const text = `${'a'.repeat(64)}  old.csv\n${'b'.repeat(64)}  other.csv\n`;
  assert.equal(renameInSidecar(text, 'old.csv', 'new (1).csv'), `${'a'.repeat(64)}  new (1).csv\n${'b'.repeat(64)}  other.csv\n`);
  assert.equal(renameInSidecar(`${'a'.repeat(64)} *old.csv\n`, 'old.csv', 'n\\x'), `\\${'a'.repeat(64)} *n\\\\x\n`);
  assert.equal(renameInSidecar(`\\${'a'.repeat(64)}  a\\\\b\\nc\n`, 'a\\b\nc', 'plain'), `${'a'.repeat(64)}  plain\n`);
});

test('knownSha256 prefers the latest step result over the edge', () => {
  const event = { sha256: 'E'.repeat(64) } as UploadEvent;
  assert.equal(knownSha256({}, event), 'e'.repeat(64));
  assert.equal(knownSha256({ checksum: { details: { sha256: 'a'.repeat(64) } }, other: { details: { sha256: 'nope' } } }, event), 'a'.repeat(64));
  assert.equal(knownSha256({}, {} as UploadEvent), undefined);
});
