import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, test } from 'node:test';
import { createLogger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';
import { checksumStep, digestFile, knownSha256, renameInSidecar, sidecarLine } from './checksum';
import { PermanentStepError } from './errors';
import type { StepContext } from './types';

const run = promisify(execFile);
const log = createLogger({ level: 'silent' });
let base: string;
let root: string;

beforeEach(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'worker-checksum-'));
  root = path.join(base, 'data');
  await fsp.mkdir(path.join(root, 'alice', 'inbox'), { recursive: true });
});
afterEach(() => fsp.rm(base, { recursive: true, force: true }));

function contextFor(file: string, content: Buffer, event: Partial<UploadEvent> = {}): StepContext {
  return {
    event: {
      uploadId: 'u-1',
      user: 'alice',
      groups: [],
      path: `/inbox/${path.basename(file)}`,
      storageKey: `alice/inbox/${path.basename(file)}`,
      size: content.length,
      clientAddress: '127.0.0.1',
      protocol: 'ftp',
      startedAt: 0,
      completedAt: Date.UTC(2024, 1, 29, 23, 59),
      replicaId: 'r1',
      ...event,
    },
    filePath: file,
    dataRoot: root,
    previous: {},
    log,
    signal: new AbortController().signal,
  };
}

async function upload(name: string, content: Buffer): Promise<string> {
  const file = path.join(root, 'alice', 'inbox', name);
  await fsp.writeFile(file, content);
  return file;
}

const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex');

test('streams a multi-chunk file once into every digest and writes sidecars sha256sum -c accepts', async () => {
  const content = randomBytes(3 * 1024 * 1024 + 17);
  const file = await upload('report.csv', content);
  const result = await checksumStep({ algorithms: ['sha256', 'md5'] }).run(contextFor(file, content));
  assert.deepEqual(result.details, {
    bytes: content.length,
    sha256: hex('sha256', content),
    md5: hex('md5', content),
    sidecars: ['alice/inbox/report.csv.sha256', 'alice/inbox/report.csv.md5'],
  });
  assert.equal(result.filePath, undefined);
  assert.equal(await fsp.readFile(`${file}.sha256`, 'utf8'), `${hex('sha256', content)}  report.csv\n`);
  assert.equal(await fsp.readFile(`${file}.md5`, 'utf8'), `${hex('md5', content)}  report.csv\n`);
  const dir = path.dirname(file);
  await run('sha256sum', ['-c', 'report.csv.sha256'], { cwd: dir });
  await run('md5sum', ['-c', 'report.csv.md5'], { cwd: dir });
});

test('running again rewrites identical sidecars and leaves no temporary file', async () => {
  const content = Buffer.from('hello\n');
  const file = await upload('a.txt', content);
  const step = checksumStep({});
  const first = await step.run(contextFor(file, content));
  const before = await fsp.readFile(`${file}.sha256`, 'utf8');
  const second = await step.run(contextFor(file, content));
  assert.deepEqual(second, first);
  assert.equal(await fsp.readFile(`${file}.sha256`, 'utf8'), before);
  assert.deepEqual((await fsp.readdir(path.dirname(file))).sort(), ['a.txt', 'a.txt.sha256']);
});

test("the edge's sha256 is checked: equal passes, different fails for good and writes nothing", async () => {
  const content = Buffer.from('payload');
  const file = await upload('p.bin', content);
  await checksumStep().run(contextFor(file, content, { sha256: hex('sha256', content).toUpperCase() }));
  await fsp.rm(`${file}.sha256`);
  await assert.rejects(
    checksumStep().run(contextFor(file, content, { sha256: hex('sha256', Buffer.from('other')) })),
    (err: Error) => err instanceof PermanentStepError && /corrupt/.test(err.message),
  );
  assert.deepEqual(await fsp.readdir(path.dirname(file)), ['p.bin']);
});

test('md5 only: the md5 sidecar alone, sha256 still in the details; sidecar: false writes none', async () => {
  const content = Buffer.from('x'.repeat(1000));
  const file = await upload('x.txt', content);
  const md5Only = await checksumStep({ algorithms: ['md5'] }).run(contextFor(file, content));
  assert.equal(md5Only.details?.sha256, hex('sha256', content));
  assert.deepEqual((await fsp.readdir(path.dirname(file))).sort(), ['x.txt', 'x.txt.md5']);
  await fsp.rm(`${file}.md5`);
  const none = await checksumStep({ algorithms: ['sha256', 'md5'], sidecar: false }).run(contextFor(file, content));
  assert.equal(none.details?.md5, hex('md5', content));
  assert.deepEqual(none.details?.sidecars, []);
  assert.deepEqual(await fsp.readdir(path.dirname(file)), ['x.txt']);
});

test('bad options fail at construction', () => {
  assert.throws(() => checksumStep({ algorithms: [] }));
  assert.throws(() => checksumStep({ algorithms: ['sha1' as 'md5'] }));
});

test('a file outside the data root, or whose sidecar would land outside, is refused for good', async () => {
  const content = Buffer.from('secret');
  const outside = path.join(base, 'outside.txt');
  await fsp.writeFile(outside, content);
  await assert.rejects(checksumStep().run(contextFor(outside, content)), PermanentStepError);
  // The inbox is a symlink leading out: the file "in" it is outside.
  await fsp.mkdir(path.join(base, 'elsewhere'));
  await fsp.writeFile(path.join(base, 'elsewhere', 'f.txt'), content);
  await fsp.symlink(path.join(base, 'elsewhere'), path.join(root, 'alice', 'linked'));
  await assert.rejects(checksumStep().run(contextFor(path.join(root, 'alice', 'linked', 'f.txt'), content)), PermanentStepError);
  assert.deepEqual(await fsp.readdir(path.join(base, 'elsewhere')), ['f.txt']);
  // The sidecar name is a symlink leading out: not written through.
  const file = await upload('s.txt', content);
  await fsp.symlink(outside, `${file}.sha256`);
  await assert.rejects(checksumStep().run(contextFor(file, content)), PermanentStepError);
  assert.equal(await fsp.readFile(outside, 'utf8'), 'secret');
});

test('a missing file fails for good', async () => {
  await assert.rejects(checksumStep().run(contextFor(path.join(root, 'alice', 'inbox', 'gone'), Buffer.alloc(0))), PermanentStepError);
});

test('names with a line break or backslash are escaped as coreutils does', async () => {
  assert.equal(sidecarLine('ab', 'plain name.txt'), 'ab  plain name.txt\n');
  assert.equal(sidecarLine('ab', 'a\\b\nc'), '\\ab  a\\\\b\\nc\n');
  const content = Buffer.from('odd');
  const file = await upload('odd\\name\n.txt', content);
  await checksumStep().run(contextFor(file, content));
  await run('sha256sum', ['-c', path.basename(`${file}.sha256`)], { cwd: path.dirname(file) });
});

test('renameInSidecar rewrites only the line naming the file', () => {
  const text = `${'a'.repeat(64)}  old.csv\n${'b'.repeat(64)}  other.csv\n`;
  assert.equal(renameInSidecar(text, 'old.csv', 'new (1).csv'), `${'a'.repeat(64)}  new (1).csv\n${'b'.repeat(64)}  other.csv\n`);
  assert.equal(renameInSidecar(`${'a'.repeat(64)} *old.csv\n`, 'old.csv', 'n\\x'), `\\${'a'.repeat(64)} *n\\\\x\n`);
});

test('knownSha256 prefers the latest step result over the edge', () => {
  const event = { sha256: 'E'.repeat(64) } as UploadEvent;
  assert.equal(knownSha256({}, event), 'e'.repeat(64));
  assert.equal(knownSha256({ checksum: { details: { sha256: 'a'.repeat(64) } }, other: { details: { sha256: 'nope' } } }, event), 'a'.repeat(64));
  assert.equal(knownSha256({}, {} as UploadEvent), undefined);
});

test('digestFile of an empty file', async () => {
  const file = await upload('empty', Buffer.alloc(0));
  assert.deepEqual(await digestFile(file, ['sha256']), { bytes: 0, sha256: hex('sha256', Buffer.alloc(0)) });
});
