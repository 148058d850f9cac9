import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { UnrecoverableError } from 'bullmq';
import { createLogger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';
import { runPipeline, type Pipeline } from '../pipeline';
import { checksumStep } from './checksum';
import { isPermanent, PermanentStepError } from './errors';
import { asStepError, pathOfKey } from './files';
import { homeOf, moveStep, renderTarget, withSuffix } from './move';
import {
  backends,
  checkSidecar,
  dataRootPerTest,
  failureOf,
  makeDirs,
  names,
  putFile,
  readBytes,
  readText,
  startUpload,
  stepContext,
} from './testStorage';
import type { Step, StepContext } from './types';

const COMPLETED = Date.UTC(2024, 1, 9, 23, 59, 30); // 2024-02-09 UTC
const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

function eventFor(name: string, size: number, extra: Partial<UploadEvent> = {}): UploadEvent {
  return {
    uploadId: 'u-42',
    user: 'alice',
    groups: [],
    path: `/inbox/${name}`,
    storageKey: `org/alice/inbox/${name}`,
    size,
    clientAddress: '127.0.0.1',
    protocol: 'ftps',
    startedAt: COMPLETED - 1000,
    completedAt: COMPLETED,
    replicaId: 'r1',
    ...extra,
  };
}

const INBOX = '/org/alice/inbox';
/** A storage path in alice's home. */
const home = (...parts: string[]) => ['/org/alice', ...parts].join('/');

for (const backend of backends) {
  describe(`move on ${backend} storage`, () => {
    const data = dataRootPerTest(backend);

    /** An uploaded file in alice's inbox, with its checksum sidecars: the context a move step after `checksum` gets. */
    async function upload(name: string, content: string | Buffer, extra: Partial<UploadEvent> = {}): Promise<StepContext> {
      const context = stepContext(data.storage, eventFor(name, Buffer.byteLength(content), extra));
      await putFile(data.storage, context.path, content);
      const checksum = await checksumStep({ algorithms: ['sha256', 'md5'] }).run(context);
      return { ...context, previous: { checksum } };
    }

    test('moves into a dated folder of the home, with its sidecars, and reports keys under the data root', async () => {
      const context = await upload('report.csv', 'a,b\n');
      const result = await moveStep({ to: 'archive/{yyyy}/{mm}/{dd}/{name}' }).run(context);
      const target = home('archive/2024/02/09/report.csv');
      assert.deepEqual(result, {
        path: target,
        details: { from: 'org/alice/inbox/report.csv', to: 'org/alice/archive/2024/02/09/report.csv', outcome: 'moved' },
      });
      assert.equal(await readText(data.storage, target), 'a,b\n');
      assert.deepEqual(await names(data.storage, home('archive/2024/02/09')), ['report.csv', 'report.csv.md5', 'report.csv.sha256']);
      assert.deepEqual(await names(data.storage, INBOX), []);
      await checkSidecar(data, `${target}.sha256`);
      await checkSidecar(data, `${target}.md5`);
      assert.deepEqual(await data.stored(), [
        'org/alice/archive/2024/02/09/report.csv',
        'org/alice/archive/2024/02/09/report.csv.md5',
        'org/alice/archive/2024/02/09/report.csv.sha256',
      ]);
    });

    test('running again after it finished finds the file where it went', async () => {
      const context = await upload('report.csv', 'a,b\n');
      const step = moveStep({ to: 'archive/{name}' });
      const first = await step.run(context);
      const again = await step.run(context);
      assert.equal(again.path, first.path);
      assert.equal(again.details?.outcome, 'already-done');
      assert.deepEqual(await names(data.storage, home('archive')), ['report.csv', 'report.csv.md5', 'report.csv.sha256']);
      assert.deepEqual(await names(data.storage, INBOX), []);
    });

    test('a different file at the target is kept: the new one takes "name (1).ext", its sidecars renamed inside', async () => {
      await putFile(data.storage, home('archive/report.csv'), 'yesterday\n');
      await putFile(data.storage, home('archive/report (1).csv'), 'the day before\n');
      const context = await upload('report.csv', 'today\n');
      const step = moveStep({ to: 'archive/' });
      const result = await step.run(context);
      assert.equal(result.details?.to, 'org/alice/archive/report (2).csv');
      assert.equal(result.path, home('archive/report (2).csv'));
      assert.equal(await readText(data.storage, home('archive/report.csv')), 'yesterday\n');
      assert.equal(await readText(data.storage, home('archive/report (1).csv')), 'the day before\n');
      assert.equal(await readText(data.storage, home('archive/report (2).csv')), 'today\n');
      assert.equal(await readText(data.storage, home('archive/report (2).csv.sha256')), `${sha256('today\n')}  report (2).csv\n`);
      await checkSidecar(data, home('archive/report (2).csv.sha256'));
      await checkSidecar(data, home('archive/report (2).csv.md5'));
      // A retry finds it by size and sha256, not the same-size file before it.
      await putFile(data.storage, home('archive/report.csv'), 'other!\n');
      const again = await step.run(context);
      assert.deepEqual([again.details?.to, again.details?.outcome], ['org/alice/archive/report (2).csv', 'already-done']);
      assert.deepEqual(await names(data.storage, home('archive')), ['report (1).csv', 'report (2).csv', 'report (2).csv.md5', 'report (2).csv.sha256', 'report.csv']);
    });

    test('the same bytes already at the target are not a conflict: the source goes, no duplicate is made', async () => {
      await putFile(data.storage, home('archive/same.txt'), 'identical');
      const context = await upload('same.txt', 'identical');
      const result = await moveStep({ to: 'archive/{name}' }).run(context);
      assert.deepEqual([result.details?.outcome, result.path], ['identical', home('archive/same.txt')]);
      assert.deepEqual(await names(data.storage, home('archive')), ['same.txt', 'same.txt.md5', 'same.txt.sha256']);
      assert.deepEqual(await names(data.storage, INBOX), []);
      await checkSidecar(data, home('archive/same.txt.sha256'));
    });

    test('overwrite replaces a different file', async () => {
      await putFile(data.storage, home('out/r.csv'), 'old and longer');
      const context = await upload('r.csv', 'new');
      const step = moveStep({ to: 'out/{name}', overwrite: true });
      const result = await step.run(context);
      assert.deepEqual([result.details?.to, result.details?.outcome], ['org/alice/out/r.csv', 'moved']);
      assert.equal(await readText(data.storage, home('out/r.csv')), 'new');
      assert.equal((await step.run(context)).details?.outcome, 'already-done');
      assert.deepEqual(await names(data.storage, home('out')), ['r.csv', 'r.csv.md5', 'r.csv.sha256']);
      await checkSidecar(data, home('out/r.csv.sha256'));
    });

    test('copy leaves the upload and its sidecars; running again makes no second copy', async () => {
      const context = await upload('c.txt', 'copy me');
      const step = moveStep({ to: 'backup/{path}/{stem}-{uploadId}{ext}', copy: true });
      const result = await step.run(context);
      assert.deepEqual(result, {
        path: home('backup/inbox/c-u-42.txt'),
        details: { from: 'org/alice/inbox/c.txt', to: 'org/alice/backup/inbox/c-u-42.txt', outcome: 'copied' },
      });
      assert.equal(step.name, 'copy');
      assert.deepEqual(await names(data.storage, INBOX), ['c.txt', 'c.txt.md5', 'c.txt.sha256']);
      assert.deepEqual(await names(data.storage, home('backup/inbox')), ['c-u-42.txt', 'c-u-42.txt.md5', 'c-u-42.txt.sha256']);
      assert.equal(await readText(data.storage, home('backup/inbox/c-u-42.txt')), 'copy me');
      await checkSidecar(data, home('backup/inbox/c-u-42.txt.sha256'));
      await checkSidecar(data, INBOX + '/c.txt.sha256');
      const again = await step.run(context);
      assert.equal(again.details?.outcome, 'identical');
      assert.deepEqual(await names(data.storage, home('backup/inbox')), ['c-u-42.txt', 'c-u-42.txt.md5', 'c-u-42.txt.sha256']);
      assert.deepEqual(await names(data.storage, INBOX), ['c.txt', 'c.txt.md5', 'c.txt.sha256']);
    });

    test('a copy onto a different file takes the next free name, never replacing it', async () => {
      await putFile(data.storage, home('backup/c.txt'), 'someone else');
      const context = await upload('c.txt', 'mine');
      const result = await moveStep({ to: 'backup/', copy: true }).run(context);
      assert.deepEqual([result.details?.to, result.details?.outcome], ['org/alice/backup/c (1).txt', 'copied']);
      assert.equal(await readText(data.storage, home('backup/c.txt')), 'someone else');
      assert.equal(await readText(data.storage, home('backup/c (1).txt')), 'mine');
      await checkSidecar(data, home('backup/c (1).txt.sha256'));
    });

    test('a crash after placing the target but before removing the source is finished by the retry', async () => {
      const context = await upload('half.bin', 'half');
      await makeDirs(data.storage, home('done'));
      // Where the crash leaves things: locally the link(2) of a rename that never replaces, on object storage the copy.
      if (data.dir) await fsp.link(path.join(data.dir, context.path), path.join(data.dir, home('done/half.bin')));
      else await data.storage.copy(context.path, home('done/half.bin'));
      const result = await moveStep({ to: 'done/{name}' }).run(context);
      assert.deepEqual([result.details?.to, result.details?.outcome], ['org/alice/done/half.bin', 'identical']);
      assert.deepEqual(await names(data.storage, INBOX), []);
      assert.deepEqual(await names(data.storage, home('done')), ['half.bin', 'half.bin.md5', 'half.bin.sha256']);
      await checkSidecar(data, home('done/half.bin.sha256'));
    });

    test('a crash after placing the file but before carrying its sidecars is finished by the retry', async () => {
      const context = await upload('side.txt', 'sidecars');
      await makeDirs(data.storage, home('done'));
      await data.storage.rename(context.path, home('done/side.txt'), { replace: false });
      const result = await moveStep({ to: 'done/{name}' }).run(context);
      assert.deepEqual([result.details?.to, result.details?.outcome], ['org/alice/done/side.txt', 'already-done']);
      assert.deepEqual(await names(data.storage, INBOX), []);
      assert.deepEqual(await names(data.storage, home('done')), ['side.txt', 'side.txt.md5', 'side.txt.sha256']);
      await checkSidecar(data, home('done/side.txt.md5'));
    });

    for (const copy of [false, true]) {
      const verb = copy ? 'copies' : 'moves';
      test(`${verb} racing for one target name all land, under distinct names: nothing is clobbered`, async () => {
        // Three uploads of report.csv (from three folders of the home), filed into one new folder at the same moment.
        const contents = ['first upload\n', 'second upload, longer\n', 'third\n'];
        for (let round = 0; round < 3; round++) {
          const contexts = await Promise.all(
            contents.map((content, i) =>
              upload('report.csv', content, { path: `/in${i}/report.csv`, storageKey: `org/alice/in${i}/report.csv`, uploadId: `u-${i}` }),
            ),
          );
          const step = moveStep({ to: `archive/${round}/{name}`, copy });
          const results = await Promise.all(contexts.map((context) => step.run(context)));
          const targets = results.map((r) => r.path!);
          assert.equal(new Set(targets).size, contents.length, `round ${round}: distinct targets: ${targets.join(', ')}`);
          for (const [i, target] of targets.entries()) {
            assert.equal(await readText(data.storage, target), contents[i], `${target} holds upload ${i}`);
            await checkSidecar(data, `${target}.sha256`);
            await checkSidecar(data, `${target}.md5`);
          }
          assert.deepEqual(
            (await names(data.storage, home(`archive/${round}`))).filter((n) => !/\.(md5|sha256)$/.test(n)),
            ['report (1).csv', 'report (2).csv', 'report.csv'],
          );
          assert.deepEqual(await names(data.storage, home('in0')), copy ? ['report.csv', 'report.csv.md5', 'report.csv.sha256'] : []);
        }
      });
    }

    test('many moves into one new dated folder at once all succeed', async () => {
      const contexts = await Promise.all(Array.from({ length: 8 }, (_, i) => upload(`f${i}.txt`, `file ${i}`)));
      const step = moveStep({ to: 'archive/{yyyy}/{mm}/{dd}/' });
      const results = await Promise.all(contexts.map((context) => step.run(context)));
      assert.deepEqual(results.map((r) => r.details?.outcome), Array(8).fill('moved'));
      assert.equal((await names(data.storage, home('archive/2024/02/09'))).length, 8 * 3);
      assert.deepEqual(await names(data.storage, INBOX), []);
    });

    test('an upload in progress under the same name does not stop the move of the published file, and is left alone', async () => {
      const context = await upload('busy.csv', 'published\n');
      const partial = randomBytes(6 * 1024 * 1024); // more than a part: object storage keeps it
      await startUpload(data.storage, context.path, partial);
      const result = await moveStep({ to: 'archive/{name}' }).run(context);
      assert.deepEqual([result.details?.to, result.details?.outcome], ['org/alice/archive/busy.csv', 'moved']);
      assert.equal(await readText(data.storage, home('archive/busy.csv')), 'published\n');
      await checkSidecar(data, home('archive/busy.csv.sha256'));
      // The other client's upload is still there, whole, to be resumed.
      const stat = await data.storage.stat(context.path);
      assert.equal(stat.partial, true);
      assert.deepEqual(await data.stored(), [
        'org/alice/archive/busy.csv',
        'org/alice/archive/busy.csv.md5',
        'org/alice/archive/busy.csv.sha256',
        'org/alice/inbox/busy.csv (partial)',
      ]);
      // The retry finds its file where it went and still leaves the upload alone.
      assert.equal((await moveStep({ to: 'archive/{name}' }).run(context)).details?.outcome, 'already-done');
      assert.equal((await data.storage.stat(context.path)).partial, true);
    });

    test('an upload in progress under the same name survives a move whose target already holds the bytes', async () => {
      await putFile(data.storage, home('archive/busy.csv'), 'published\n');
      const context = await upload('busy.csv', 'published\n');
      await startUpload(data.storage, context.path, randomBytes(6 * 1024 * 1024));
      const result = await moveStep({ to: 'archive/{name}' }).run(context);
      assert.equal(result.details?.outcome, 'identical');
      assert.deepEqual(await names(data.storage, home('archive')), ['busy.csv', 'busy.csv.md5', 'busy.csv.sha256']);
      assert.ok(
        (await data.stored()).includes('org/alice/inbox/busy.csv (partial)'),
        `the other client's upload was dropped: ${(await data.stored()).join(', ')}`,
      );
    });

    test('the source gone and nothing matching at the target fails for good', async () => {
      await makeDirs(data.storage, INBOX);
      const context = stepContext(data.storage, eventFor('never.txt', 5));
      await assert.rejects(moveStep({ to: 'a/{name}' }).run(context), PermanentStepError);
      assert.deepEqual(await names(data.storage, home()), ['inbox/']);
    });

    test('a folder in the way of the target fails for good', async () => {
      await putFile(data.storage, home('archive'), 'a file where a folder should be');
      const context = await upload('x.txt', 'data');
      await assert.rejects(moveStep({ to: 'archive/{name}' }).run(context), (err) => isPermanent(err) && /in the way/.test(String(err)));
      assert.deepEqual(await names(data.storage, INBOX), ['x.txt', 'x.txt.md5', 'x.txt.sha256']);
    });

    test('targets leading out of the home are refused for good and nothing moves', async () => {
      const context = await upload('x.txt', 'data');
      // A user name that is `..` cannot climb.
      await assert.rejects(moveStep({ to: '{user}/{name}' }).run({ ...context, event: { ...context.event, user: '..' } }), PermanentStepError);
      await assert.rejects(moveStep({ to: '{uploadId}/{name}' }).run({ ...context, event: { ...context.event, uploadId: '..' } }), PermanentStepError);
      assert.deepEqual(await names(data.storage, INBOX), ['x.txt', 'x.txt.md5', 'x.txt.sha256']);
      assert.deepEqual(await data.stored(), ['org/alice/inbox/x.txt', 'org/alice/inbox/x.txt.md5', 'org/alice/inbox/x.txt.sha256']);
    });

    test('moving to where it already is does nothing', async () => {
      const context = await upload('here.txt', 'h');
      const result = await moveStep({ to: '/inbox/{name}' }).run(context);
      assert.deepEqual(result, { path: `${INBOX}/here.txt`, details: { from: 'org/alice/inbox/here.txt', to: 'org/alice/inbox/here.txt', outcome: 'in-place' } });
      assert.deepEqual(await names(data.storage, INBOX), ['here.txt', 'here.txt.md5', 'here.txt.sha256']);
    });

    test('a file larger than a read buffer and than a part is moved whole', async () => {
      const content = randomBytes(7 * 1024 * 1024 + 3);
      const context = await upload('big.bin', content);
      const result = await moveStep({ to: 'big/{name}' }).run(context);
      assert.ok((await readBytes(data.storage, result.path!)).equals(content));
      await checkSidecar(data, `${result.path}.sha256`);
    });

    test('a job whose storage key has `..` fails for good before any step runs', async () => {
      await putFile(data.storage, '/outside.txt', 'not alice\'s');
      const context = await upload('x.txt', 'data');
      let ran = 0;
      const counting: Step = {
        name: 'count',
        async run() {
          ran++;
          return {};
        },
      };
      const pipeline: Pipeline = { name: 'p', match: {}, steps: [counting, checksumStep(), moveStep({ to: 'archive/{name}' })] };
      const options = { storage: data.storage, log: createLogger({ level: 'silent' }), signal: new AbortController().signal, done: {}, onStepDone: async () => {}, observe: () => {} };
      for (const storageKey of ['../outside.txt', 'org/alice/../../outside.txt', 'org/../outside.txt', '/outside.txt', 'org/alice/inbox/..', 'a\0b']) {
        const event = { ...context.event, storageKey };
        const failure = await failureOf(runPipeline(pipeline, event, options));
        assert.ok(failure instanceof PermanentStepError && failure instanceof UnrecoverableError, `${storageKey}: ${String(failure)}`);
        assert.match(String(failure), /outside the data root/);
      }
      assert.equal(ran, 0);
      assert.deepEqual(await data.stored(), ['org/alice/inbox/x.txt', 'org/alice/inbox/x.txt.md5', 'org/alice/inbox/x.txt.sha256', 'outside.txt']);
      // The same pipeline on the upload's own key runs through.
      const results = await runPipeline(pipeline, context.event, options);
      assert.equal(results.move.details?.to, 'org/alice/archive/x.txt');
      assert.equal(ran, 1);
    });

    if (backend === 'local') {
      // Symlinks exist on a local disk only; object storage has no name that leads elsewhere.
      test('a target folder that is a symlink leading out of the data root is refused for good, nothing written there', async () => {
        await fsp.mkdir(path.join(data.dir!, 'org', 'alice'), { recursive: true });
        await fsp.symlink(data.outside!, path.join(data.dir!, 'org', 'alice', 'escape'));
        const context = await upload('x.txt', 'data');
        for (const to of ['escape/{name}', 'escape/deeper/{name}']) {
          const failure = await failureOf(moveStep({ to }).run(context));
          assert.deepEqual(await fsp.readdir(data.outside!), [], to);
          assert.deepEqual(await names(data.storage, INBOX), ['x.txt', 'x.txt.md5', 'x.txt.sha256'], to);
          assert.ok(isPermanent(asStepError(failure)), `${to}: refused, but to be retried: ${String(failure)}`);
        }
      });
    }
  });
}

test('targets that could leave the home fail at construction', () => {
  assert.throws(() => moveStep({ to: '../../elsewhere/{name}' }), /no \.\./);
  assert.throws(() => moveStep({ to: 'a/{nope}' }), /unknown placeholder/);
  assert.throws(() => moveStep({ to: '' }));
  assert.equal(moveStep({ to: 'a/' }).name, 'move');
});

test('pathOfKey: a data-root key as a storage path; `..`, absolute keys and NUL are refused for good', () => {
  assert.equal(pathOfKey('alice/inbox/r.csv'), '/alice/inbox/r.csv');
  assert.equal(pathOfKey('alice//inbox/./r.csv'), '/alice/inbox/r.csv');
  assert.equal(pathOfKey(''), '/');
  for (const key of ['..', '../x', 'alice/../../x', 'alice/../alice/x', 'a/..', '/etc/passwd', 'a\0b']) {
    assert.throws(() => pathOfKey(key), PermanentStepError, key);
  }
});

test('homeOf is the storage key without the virtual path', () => {
  assert.equal(homeOf(eventFor('r.csv', 1)), 'org/alice');
  assert.equal(homeOf({ ...eventFor('r.csv', 1), storageKey: 'bob/r.csv', path: '/r.csv' }), 'bob');
  assert.equal(homeOf({ ...eventFor('r.csv', 1), storageKey: 'r.csv', path: '/r.csv' }), '');
  assert.equal(homeOf({ ...eventFor('r.csv', 1), storageKey: 'alice//inbox/./r.csv', path: 'inbox/r.csv' }), 'alice');
  assert.throws(() => homeOf({ ...eventFor('r.csv', 1), storageKey: 'alice/outbox/r.csv' }), PermanentStepError);
  assert.throws(() => homeOf({ ...eventFor('r.csv', 1), storageKey: 'inbox/r.csv', path: '/x/inbox/r.csv' }), PermanentStepError);
  assert.throws(() => homeOf({ ...eventFor('r.csv', 1), storageKey: '../alice/inbox/r.csv' }), PermanentStepError);
});

test('renderTarget fills every placeholder (UTC) and normalises slashes', () => {
  const event = eventFor('data.tar.gz', 1, { path: '/in/deep/data.tar.gz', storageKey: 'alice/in/deep/data.tar.gz' });
  assert.equal(renderTarget('/{user}/{yyyy}-{mm}-{dd}/{path}/{stem}.{uploadId}{ext}', event), 'alice/2024-02-09/in/deep/data.tar.u-42.gz');
  assert.equal(renderTarget('done/', event), 'done/data.tar.gz');
  assert.equal(renderTarget('{path}/x', { ...event, path: '/data.tar.gz' }), 'x');
  assert.equal(renderTarget('{name}', { ...event, completedAt: Date.UTC(2023, 11, 31, 23, 0) }), 'data.tar.gz');
  assert.equal(renderTarget('{yyyy}{mm}{dd}', { ...event, completedAt: Date.UTC(2023, 11, 31, 23, 59, 59) }), '20231231');
  assert.throws(() => renderTarget('{path}', { ...event, path: '/data.tar.gz' }), PermanentStepError);
  assert.throws(() => renderTarget('{user}/x', { ...event, user: '..' }), PermanentStepError);
});

test('withSuffix puts the number before the extension', () => {
  assert.equal(withSuffix('report.csv', 1), 'report (1).csv');
  assert.equal(withSuffix('README', 2), 'README (2)');
  assert.equal(withSuffix('.env', 3), '.env (3)');
});
