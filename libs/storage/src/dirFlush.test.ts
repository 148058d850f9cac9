// Durable commits, seen through an instrumented FileOps that records the order of the calls: fdatasync of the file,
// rename, then an fsync of its directory that started after the rename, all before commit() resolves; directory
// flushes shared by concurrent commits (group commit), never joined once started; nothing flushed with fsync off.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createDirectoryFlusher } from './dirFlush';
import { asyncFileOps, syncFileOps, type FileOps } from './fileOps';
import { storageCode } from './testFixture';
import { openLocalUpload } from './upload';

interface Call {
  seq: number;
  op: string;
  phase: 'start' | 'end';
  /** Host path the call acts on (for fd calls: the path the fd was opened with). */
  target: string;
  dir: boolean;
}

interface RecordingOptions {
  /** Hold every directory fsync this long (ms), so that renames pile up behind it. */
  dirFsyncDelay?: number;
  /** Make directory fsyncs fail with this errno. */
  dirFsyncError?: string;
}

/** `base` with every call that matters for durability logged in order; `mark` adds the test's own events. */
function recordingIo(base: FileOps, options: RecordingOptions = {}) {
  const calls: Call[] = [];
  const opened = new Map<number, { target: string; dir: boolean }>();
  let seq = 0;
  const log = (op: string, phase: Call['phase'], target: string, dir = false) => calls.push({ seq: seq++, op, phase, target, dir });
  const logged = async <T>(op: string, of: { target: string; dir: boolean }, run: () => Promise<T>): Promise<T> => {
    log(op, 'start', of.target, of.dir);
    try {
      return await run();
    } finally {
      log(op, 'end', of.target, of.dir);
    }
  };
  const fdInfo = (fd: number) => opened.get(fd) ?? { target: `fd ${fd}`, dir: false };
  const io: FileOps = {
    ...base,
    open: (p, flags, mode) =>
      logged('open', { target: p, dir: false }, async () => {
        const fd = await base.open(p, flags, mode);
        opened.set(fd, { target: p, dir: fs.fstatSync(fd).isDirectory() });
        return fd;
      }),
    close: (fd) => logged('close', fdInfo(fd), () => base.close(fd)),
    fsync: (fd) =>
      logged('fsync', fdInfo(fd), async () => {
        if (fdInfo(fd).dir && options.dirFsyncDelay) await new Promise((resolve) => setTimeout(resolve, options.dirFsyncDelay));
        if (fdInfo(fd).dir && options.dirFsyncError) throw Object.assign(new Error(options.dirFsyncError), { code: options.dirFsyncError });
        return base.fsync(fd);
      }),
    fdatasync: (fd) => logged('fdatasync', fdInfo(fd), () => base.fdatasync(fd)),
    rename: (from, to) => logged('rename', { target: to, dir: false }, () => base.rename(from, to)),
  };
  return { io, calls, mark: (op: string, target: string) => log(op, 'end', target) };
}

/** Upload `data` to host file `file` through openLocalUpload, as a session does, and log when commit() resolved. */
async function commitOne(rec: ReturnType<typeof recordingIo>, options: { fsync: boolean; directories: ReturnType<typeof createDirectoryFlusher> }, file: string, data: string) {
  const upload = await openLocalUpload(file, { kind: 'replace' }, { ...options, io: rec.io });
  upload.stream.end(data);
  await upload.commit();
  rec.mark('committed', file);
}

const find = (calls: Call[], op: string, phase: Call['phase'], target: string) => calls.filter((c) => c.op === op && c.phase === phase && c.target === target);

/**
 * For every file: its fdatasync ended before its rename started, and a directory fsync STARTED after its rename
 * ended and ENDED before its commit resolved. Returns the directory fsyncs (start events).
 */
function checkDurableOrder(calls: Call[], dir: string, files: string[]): Call[] {
  const dirSyncs = calls.filter((c) => c.op === 'fsync' && c.dir && c.target === dir);
  const starts = dirSyncs.filter((c) => c.phase === 'start');
  const ends = dirSyncs.filter((c) => c.phase === 'end');
  assert.equal(starts.length, ends.length, 'every directory fsync finished');
  for (const file of files) {
    const [renameEnd] = find(calls, 'rename', 'end', file);
    const [renameStart] = find(calls, 'rename', 'start', file);
    const [committed] = find(calls, 'committed', 'end', file);
    assert.ok(renameStart && renameEnd && committed, `${path.basename(file)}: renamed and committed`);
    const partial = path.join(dir, `.${path.basename(file)}.ftp-partial`);
    const [datasync] = find(calls, 'fdatasync', 'end', partial);
    assert.ok(datasync, `${path.basename(file)}: its data was flushed`);
    assert.ok(datasync.seq < renameStart.seq, `${path.basename(file)}: data flushed before the rename`);
    // Pair the i-th start with the i-th end: the flusher never runs two fsyncs of one directory at a time (checked below).
    const covering = starts.findIndex((s, i) => s.seq > renameEnd.seq && ends[i].seq < committed.seq);
    assert.ok(covering >= 0, `${path.basename(file)}: a directory fsync started after its rename and ended before its commit resolved`);
  }
  for (let i = 0; i + 1 < starts.length; i++) assert.ok(ends[i].seq < starts[i + 1].seq, 'one directory fsync at a time per directory');
  return starts;
}

let base: string;
before(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'ftp-storage-dirflush-'));
});
after(() => fsp.rm(base, { recursive: true, force: true }));
const freshDir = async (name: string) => {
  const dir = path.join(base, name);
  await fsp.mkdir(dir);
  return dir;
};

for (const [flavour, ioBase] of [['async', asyncFileOps], ['sync', syncFileOps]] as const) {
  describe(`metadata io ${flavour}`, () => {
    test('commit: fdatasync of the file, rename, then an fsync of the directory, before commit resolves', async () => {
      const dir = await freshDir(`order-${flavour}`);
      const rec = recordingIo(ioBase);
      const file = path.join(dir, 'a.txt');
      await commitOne(rec, { fsync: true, directories: createDirectoryFlusher(rec.io) }, file, 'hello');
      assert.equal(await fsp.readFile(file, 'utf8'), 'hello');
      assert.equal(checkDurableOrder(rec.calls, dir, [file]).length, 1);
      // fdatasync, not fsync, for the file; nothing flushes the partial's own name (its directory) before the rename.
      assert.deepEqual(rec.calls.filter((c) => c.op === 'fsync' && !c.dir), [], 'no fsync of the file itself');
      const [renameStart] = find(rec.calls, 'rename', 'start', file);
      assert.ok(!rec.calls.some((c) => c.op === 'fsync' && c.dir && c.seq < renameStart.seq), 'no directory flush while writing');
      // The directory's fd is closed again.
      assert.equal(find(rec.calls, 'open', 'end', dir).length, find(rec.calls, 'close', 'end', dir).length);
    });

    test('concurrent commits into one directory share directory flushes, each after its own rename', async () => {
      const dir = await freshDir(`group-${flavour}`);
      const rec = recordingIo(ioBase, { dirFsyncDelay: 20 });
      const directories = createDirectoryFlusher(rec.io);
      const files = Array.from({ length: 16 }, (_, i) => path.join(dir, `f-${i}`));
      await Promise.all(files.map((file, i) => commitOne(rec, { fsync: true, directories }, file, `data ${i}`)));
      const flushes = checkDurableOrder(rec.calls, dir, files);
      assert.ok(flushes.length >= 1 && flushes.length < files.length, `${flushes.length} directory flushes for ${files.length} commits`);
      for (const [i, file] of files.entries()) assert.equal(await fsp.readFile(file, 'utf8'), `data ${i}`);
    });

    test('with fsync off nothing is flushed: no fsync, no fdatasync, no directory opened', async () => {
      const dir = await freshDir(`off-${flavour}`);
      const rec = recordingIo(ioBase);
      const file = path.join(dir, 'b.txt');
      await commitOne(rec, { fsync: false, directories: createDirectoryFlusher(rec.io) }, file, 'x');
      assert.equal(await fsp.readFile(file, 'utf8'), 'x');
      assert.deepEqual(rec.calls.filter((c) => c.op === 'fsync' || c.op === 'fdatasync' || c.dir), []);
    });
  });
}

test('a flush already running is not joined: a later call waits for one that starts after it', async () => {
  const dir = await freshDir('no-join');
  const rec = recordingIo(asyncFileOps, { dirFsyncDelay: 30 });
  const flusher = createDirectoryFlusher(rec.io);
  const first = flusher.flush(dir);
  // Let the first flush issue its fsync, then ask again while it is held.
  while (!rec.calls.some((c) => c.op === 'fsync' && c.phase === 'start')) await new Promise((resolve) => setImmediate(resolve));
  rec.mark('asked', dir);
  const second = flusher.flush(dir);
  const third = flusher.flush(dir); // joins the second: it has not started
  await Promise.all([first, second, third]);
  const starts = rec.calls.filter((c) => c.op === 'fsync' && c.phase === 'start');
  const asked = find(rec.calls, 'asked', 'end', dir)[0];
  assert.equal(starts.length, 2, 'the first flush, and one more for the calls made while it ran');
  assert.ok(starts[1].seq > asked.seq);
});

test('directories are flushed separately, and calls in one turn of the event loop share a flush', async () => {
  const [a, b] = [await freshDir('sep-a'), await freshDir('sep-b')];
  const rec = recordingIo(asyncFileOps);
  const flusher = createDirectoryFlusher(rec.io);
  await Promise.all([flusher.flush(a), flusher.flush(a), flusher.flush(b), flusher.flush(a)]);
  const starts = rec.calls.filter((c) => c.op === 'fsync' && c.phase === 'start');
  assert.deepEqual(starts.map((c) => c.target).sort(), [a, b]);
});

test('a failing directory fsync fails the commit (the name may not survive a crash); an unsupported one does not', async () => {
  const dir = await freshDir('failing');
  const failing = recordingIo(asyncFileOps, { dirFsyncError: 'EIO' });
  const upload = await openLocalUpload(path.join(dir, 'c.txt'), { kind: 'replace' }, { fsync: true, io: failing.io, directories: createDirectoryFlusher(failing.io) });
  upload.stream.end('c');
  await assert.rejects(upload.commit(), storageCode('io'));
  await upload.abort(); // harmless after a failed commit

  const unsupported = recordingIo(asyncFileOps, { dirFsyncError: 'EINVAL' });
  await commitOne(unsupported, { fsync: true, directories: createDirectoryFlusher(unsupported.io) }, path.join(dir, 'd.txt'), 'd');
  assert.equal(await fsp.readFile(path.join(dir, 'd.txt'), 'utf8'), 'd');
  assert.equal(find(unsupported.calls, 'close', 'end', dir).length, 1, 'the directory fd is closed on failure too');
});
