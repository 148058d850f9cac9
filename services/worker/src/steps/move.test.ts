import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, test } from 'node:test';
import { createLogger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';
import { checksumStep } from './checksum';
import { PermanentStepError } from './errors';
import { homeOf, moveStep, renderTarget, withSuffix, type MoveIo } from './move';
import type { StepContext, StepResult } from './types';

const run = promisify(execFile);
const log = createLogger({ level: 'silent' });
const COMPLETED = Date.UTC(2024, 1, 9, 23, 59, 30); // 2024-02-09 UTC
let base: string;
let root: string;
let inbox: string;

beforeEach(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'worker-move-'));
  root = path.join(base, 'data');
  inbox = path.join(root, 'org', 'alice', 'inbox');
  await fsp.mkdir(inbox, { recursive: true });
  await fsp.mkdir(path.join(base, 'outside'));
});
afterEach(() => fsp.rm(base, { recursive: true, force: true }));

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

function contextFor(event: UploadEvent, previous: Record<string, StepResult> = {}): StepContext {
  return { event, filePath: path.join(root, event.storageKey), dataRoot: root, previous, log, signal: new AbortController().signal };
}

/** An uploaded file in alice's inbox, with its checksum sidecar. */
async function upload(name: string, content: string, extra: Partial<UploadEvent> = {}): Promise<StepContext> {
  await fsp.writeFile(path.join(inbox, name), content);
  const context = contextFor(eventFor(name, Buffer.byteLength(content), extra));
  const checksum = await checksumStep({ algorithms: ['sha256', 'md5'] }).run(context);
  return { ...context, previous: { checksum } };
}

const home = (...parts: string[]) => path.join(root, 'org', 'alice', ...parts);
const read = (file: string) => fsp.readFile(file, 'utf8');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const list = async (dir: string) => (await fsp.readdir(dir)).sort();

test('moves into a dated folder of the home, with its sidecars, and reports keys under the data root', async () => {
  const context = await upload('report.csv', 'a,b\n');
  const result = await moveStep({ to: 'archive/{yyyy}/{mm}/{dd}/{name}' }).run(context);
  const target = home('archive', '2024', '02', '09', 'report.csv');
  assert.deepEqual(result, {
    filePath: target,
    details: { from: 'org/alice/inbox/report.csv', to: 'org/alice/archive/2024/02/09/report.csv', outcome: 'moved' },
  });
  assert.equal(await read(target), 'a,b\n');
  assert.deepEqual(await list(path.dirname(target)), ['report.csv', 'report.csv.md5', 'report.csv.sha256']);
  assert.deepEqual(await list(inbox), []);
  await run('sha256sum', ['-c', 'report.csv.sha256'], { cwd: path.dirname(target) });
});

test('running again after it finished finds the file where it went', async () => {
  const context = await upload('report.csv', 'a,b\n');
  const step = moveStep({ to: 'archive/{name}' });
  const first = await step.run(context);
  const again = await step.run(context);
  assert.equal(again.filePath, first.filePath);
  assert.equal(again.details?.outcome, 'already-done');
  assert.deepEqual(await list(home('archive')), ['report.csv', 'report.csv.md5', 'report.csv.sha256']);
});

test('a different file at the target is kept: the new one takes "name (1).ext", its sidecars renamed inside', async () => {
  await fsp.mkdir(home('archive'));
  await fsp.writeFile(home('archive', 'report.csv'), 'yesterday\n');
  await fsp.writeFile(home('archive', 'report (1).csv'), 'the day before\n');
  const context = await upload('report.csv', 'today\n');
  const step = moveStep({ to: 'archive/' });
  const result = await step.run(context);
  assert.equal(result.details?.to, 'org/alice/archive/report (2).csv');
  assert.equal(await read(home('archive', 'report.csv')), 'yesterday\n');
  assert.equal(await read(home('archive', 'report (1).csv')), 'the day before\n');
  assert.equal(await read(home('archive', 'report (2).csv')), 'today\n');
  assert.equal(await read(home('archive', 'report (2).csv.sha256')), `${sha256('today\n')}  report (2).csv\n`);
  await run('md5sum', ['-c', 'report (2).csv.md5'], { cwd: home('archive') });
  // A retry finds it by size and sha256, not the same-size file before it.
  await fsp.writeFile(home('archive', 'report.csv'), 'other!\n');
  assert.equal((await step.run(context)).details?.to, 'org/alice/archive/report (2).csv');
});

test('the same bytes already at the target are not a conflict: the source goes, no duplicate is made', async () => {
  await fsp.mkdir(home('archive'));
  await fsp.writeFile(home('archive', 'same.txt'), 'identical');
  const context = await upload('same.txt', 'identical');
  const result = await moveStep({ to: 'archive/{name}' }).run(context);
  assert.equal(result.details?.outcome, 'identical');
  assert.deepEqual(await list(home('archive')), ['same.txt', 'same.txt.md5', 'same.txt.sha256']);
  assert.deepEqual(await list(inbox), []);
});

test('overwrite replaces a different file', async () => {
  await fsp.mkdir(home('out'));
  await fsp.writeFile(home('out', 'r.csv'), 'old and longer');
  const context = await upload('r.csv', 'new');
  const step = moveStep({ to: 'out/{name}', overwrite: true });
  const result = await step.run(context);
  assert.equal(result.details?.to, 'org/alice/out/r.csv');
  assert.equal(await read(home('out', 'r.csv')), 'new');
  assert.equal((await step.run(context)).details?.outcome, 'already-done');
});

test('copy leaves the upload and its sidecars; running again makes no second copy', async () => {
  const context = await upload('c.txt', 'copy me');
  const step = moveStep({ to: 'backup/{path}/{stem}-{uploadId}{ext}', copy: true });
  const result = await step.run(context);
  assert.deepEqual(result.details, { from: 'org/alice/inbox/c.txt', to: 'org/alice/backup/inbox/c-u-42.txt', outcome: 'copied' });
  assert.deepEqual(await list(inbox), ['c.txt', 'c.txt.md5', 'c.txt.sha256']);
  assert.deepEqual(await list(home('backup', 'inbox')), ['c-u-42.txt', 'c-u-42.txt.md5', 'c-u-42.txt.sha256']);
  await run('sha256sum', ['-c', 'c-u-42.txt.sha256'], { cwd: home('backup', 'inbox') });
  const again = await step.run(context);
  assert.equal(again.details?.outcome, 'identical');
  assert.deepEqual(await list(home('backup', 'inbox')), ['c-u-42.txt', 'c-u-42.txt.md5', 'c-u-42.txt.sha256']);
});

test('a crash after linking the target but before removing the source is finished by the retry', async () => {
  const context = await upload('half.bin', 'half');
  await fsp.mkdir(home('done'));
  await fsp.link(path.join(inbox, 'half.bin'), home('done', 'half.bin'));
  const result = await moveStep({ to: 'done/{name}' }).run(context);
  assert.equal(result.details?.to, 'org/alice/done/half.bin');
  assert.deepEqual(await list(inbox), []);
  assert.deepEqual(await list(home('done')), ['half.bin', 'half.bin.md5', 'half.bin.sha256']);
});

test('across filesystems (EXDEV) it copies, fsyncs, publishes and removes the source', async () => {
  const exdev = () => Promise.reject(Object.assign(new Error('cross-device link'), { code: 'EXDEV' }));
  const crossDevice: MoveIo = {
    link: (from, to) => (from.includes('.ftp-partial') ? fsp.link(from, to) : exdev()),
    rename: (from, to) => (from.includes('.ftp-partial') ? fsp.rename(from, to) : exdev()),
  };
  const context = await upload('far.dat', 'x'.repeat(3 * 1024 * 1024));
  const result = await moveStep({ to: 'far/{name}' }, crossDevice).run(context);
  assert.equal(result.details?.outcome, 'moved');
  assert.equal((await fsp.stat(home('far', 'far.dat'))).size, 3 * 1024 * 1024);
  assert.deepEqual(await list(home('far')), ['far.dat', 'far.dat.md5', 'far.dat.sha256']);
  assert.deepEqual(await list(inbox), []);
});

test('without hard links (EPERM) a checked rename is used', async () => {
  const noLinks: MoveIo = { link: () => Promise.reject(Object.assign(new Error('no links'), { code: 'EPERM' })), rename: fsp.rename };
  await fsp.mkdir(home('n'));
  await fsp.writeFile(home('n', 'f.txt'), 'taken');
  const context = await upload('f.txt', 'mine');
  assert.equal((await moveStep({ to: 'n/{name}' }, noLinks).run(context)).details?.to, 'org/alice/n/f (1).txt');
  assert.equal(await read(home('n', 'f.txt')), 'taken');
});

test('the source gone and nothing matching at the target fails for good', async () => {
  const context = contextFor(eventFor('never.txt', 5));
  await assert.rejects(moveStep({ to: 'a/{name}' }).run(context), PermanentStepError);
  assert.deepEqual(await list(home()), ['inbox']);
});

test('targets leading out of the data root are refused and nothing is written there', async () => {
  assert.throws(() => moveStep({ to: '../../elsewhere/{name}' }), /no \.\./);
  assert.throws(() => moveStep({ to: 'a/{nope}' }), /unknown placeholder/);
  assert.throws(() => moveStep({ to: '' }));
  await fsp.symlink(path.join(base, 'outside'), home('escape'));
  const context = await upload('x.txt', 'data');
  await assert.rejects(moveStep({ to: 'escape/{name}' }).run(context), PermanentStepError);
  await assert.rejects(moveStep({ to: 'escape/deeper/{name}' }).run(context), PermanentStepError);
  // A user name that is `..` cannot climb either.
  await assert.rejects(moveStep({ to: '{user}/{name}' }).run({ ...context, event: { ...context.event, user: '..' } }), PermanentStepError);
  assert.deepEqual(await fsp.readdir(path.join(base, 'outside')), []);
  assert.deepEqual(await list(inbox), ['x.txt', 'x.txt.md5', 'x.txt.sha256']);
});

test('moving to where it already is does nothing', async () => {
  const context = await upload('here.txt', 'h');
  const result = await moveStep({ to: '/inbox/{name}' }).run(context);
  assert.equal(result.details?.outcome, 'in-place');
  assert.equal(result.filePath, path.join(inbox, 'here.txt'));
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
  assert.equal(
    renderTarget('/{user}/{yyyy}-{mm}-{dd}/{path}/{stem}.{uploadId}{ext}', event),
    'alice/2024-02-09/in/deep/data.tar.u-42.gz',
  );
  assert.equal(renderTarget('done/', event), 'done/data.tar.gz');
  assert.equal(renderTarget('{path}/x', { ...event, path: '/data.tar.gz' }), 'x');
  assert.equal(renderTarget('{name}', { ...event, completedAt: Date.UTC(2023, 11, 31, 23, 0) }), 'data.tar.gz');
  assert.equal(renderTarget('{yyyy}{mm}{dd}', { ...event, completedAt: Date.UTC(2023, 11, 31, 23, 59, 59) }), '20231231');
  assert.throws(() => renderTarget('{path}', { ...event, path: '/data.tar.gz' }), PermanentStepError);
});

test('withSuffix puts the number before the extension', () => {
  assert.equal(withSuffix('report.csv', 1), 'report (1).csv');
  assert.equal(withSuffix('README', 2), 'README (2)');
  assert.equal(withSuffix('.env', 3), '.env (3)');
});
