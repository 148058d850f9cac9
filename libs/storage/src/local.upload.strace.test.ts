// Durable commits on real syscalls: a child process uploads through createLocalStorage under `strace -f`, and the
// trace of its fdatasync/fsync/rename calls on the real files must show, for every upload, fdatasync of the partial,
// then the rename, then an fsync of the directory that entered the kernel after the rename returned, all before the
// upload's commit() resolved (marked by an access() call the child makes right then). With fsync off: no flush at all.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const STRACE = '/usr/bin/strace';
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');
const CHILD = path.join(here, 'testCommitChild.ts');
const TRACED = 'fsync,fdatasync,rename,renameat,renameat2,access,faccessat,faccessat2';

/** One syscall's entry or exit, in the order strace saw them (a call interrupted by another thread's is split in two lines). */
interface Event {
  seq: number;
  /** Shared by the entry and the exit of one call. */
  call: number;
  name: string;
  phase: 'start' | 'end';
  /** Paths in the arguments: quoted strings, and fds decoded by -y (`12</path>`). */
  paths: string[];
}

const canTrace = fs.existsSync(STRACE)
  ? await promisify(execFile)(STRACE, ['-qq', '-e', 'trace=none', 'true']).then(() => true, () => false)
  : false;
const skip = canTrace ? false : `needs a working ${STRACE} (apt-get install strace; ptrace must be allowed)`;

/** Runs the child under strace, returns the events on files below `root`. */
async function traceCommits(root: string, count: number, fsync: boolean, metadataIo: 'sync' | 'async'): Promise<Event[]> {
  const out = path.join(path.dirname(root), 'strace.out');
  const args = ['-f', '-qq', '-y', '-e', `trace=${TRACED}`, '-e', 'signal=none', '-o', out];
  const child = [process.execPath, '--import', 'tsx', CHILD, root, String(count), fsync ? 'fsync' : 'nofsync', metadataIo];
  await promisify(execFile)(STRACE, [...args, ...child], { cwd: repoRoot, timeout: 60_000 });
  return parseTrace(await fsp.readFile(out, 'utf8')).filter((e) => e.paths.some((p) => p.startsWith(root + '/')));
}

function parseTrace(text: string): Event[] {
  const events: Event[] = [];
  const pending = new Map<string, Event>(); // pid → call entered, not yet returned
  const pathsOf = (args: string) => [...args.matchAll(/"([^"]*)"|<([^>]*)>/g)].map((m) => m[1] ?? m[2]);
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, rest] = m;
    const resumed = /^<\.\.\. (\w+) resumed>/.exec(rest);
    if (resumed) {
      const entered = pending.get(pid);
      pending.delete(pid);
      if (entered) events.push({ ...entered, seq: events.length, phase: 'end' });
      continue;
    }
    const call = /^(\w+)\((.*)$/.exec(rest);
    if (!call) continue;
    const event: Event = { seq: events.length, call: events.length, name: call[1], phase: 'start', paths: pathsOf(call[2]) };
    events.push(event);
    if (rest.endsWith('<unfinished ...>')) pending.set(pid, event);
    else events.push({ ...event, seq: events.length, phase: 'end' });
  }
  return events;
}

const isRename = (e: Event) => e.name === 'rename' || e.name === 'renameat' || e.name === 'renameat2';
const isAccess = (e: Event) => e.name === 'access' || e.name === 'faccessat' || e.name === 'faccessat2';
const COUNT = 24;

async function tempRoot(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'ftp-storage-strace-'));
  const root = path.join(base, 'root');
  await fsp.mkdir(root);
  return { root, cleanup: () => fsp.rm(base, { recursive: true, force: true }) };
}

for (const metadataIo of ['sync', 'async'] as const) {
  test(`strace (${metadataIo} metadata io): fdatasync, rename, then a directory fsync that started after it, before commit resolves`, { skip }, async (t) => {
    const { root, cleanup } = await tempRoot();
    try {
      const events = await traceCommits(root, COUNT, true, metadataIo);
      const dir = path.join(root, 'd');
      const dirSyncs = events.filter((e) => e.name === 'fsync' && e.paths[0] === dir);
      const starts = dirSyncs.filter((e) => e.phase === 'start');
      const endOf = (start: Event) => dirSyncs.find((e) => e.phase === 'end' && e.call === start.call);
      assert.ok(starts.every((s) => endOf(s)), 'every directory fsync returned');
      assert.deepEqual(
        events.filter((e) => e.name === 'fsync' && e.paths[0] !== dir),
        [],
        'the files get fdatasync, never fsync; no other directory is flushed',
      );
      for (let i = 0; i < COUNT; i++) {
        const [partial, file] = [path.join(dir, `.f-${i}.ftp-partial`), path.join(dir, `f-${i}`)];
        const one = (what: string, pred: (e: Event) => boolean) => {
          const found = events.filter(pred);
          assert.equal(found.length, 1, `f-${i}: one ${what} (${found.length})`);
          return found[0];
        };
        const datasyncEnd = one('fdatasync', (e) => e.name === 'fdatasync' && e.phase === 'end' && e.paths[0] === partial);
        const renameStart = one('rename', (e) => isRename(e) && e.phase === 'start' && e.paths.includes(file));
        const renameEnd = one('rename', (e) => isRename(e) && e.phase === 'end' && e.paths.includes(file));
        const committed = one('commit marker', (e) => isAccess(e) && e.phase === 'start' && e.paths.includes(path.join(dir, `committed-f-${i}`)));
        assert.ok(datasyncEnd.seq < renameStart.seq, `f-${i}: data flushed before the rename`);
        // Some directory fsync entered the kernel after this rename returned and returned before the commit resolved.
        const covered = starts.some((s) => s.seq > renameEnd.seq && endOf(s)!.seq < committed.seq);
        assert.ok(covered, `f-${i}: no directory fsync between its rename and its commit`);
      }
      // Group commit: the concurrent commits share directory flushes (typically 1–3 for the 24 here).
      assert.ok(starts.length >= 1 && starts.length < COUNT, `${starts.length} directory fsyncs for ${COUNT} commits`);
      t.diagnostic(`${starts.length} directory fsyncs for ${COUNT} concurrent commits`);
    } finally {
      await cleanup();
    }
  });
}

test('strace: with fsync off no fsync or fdatasync is made, and every upload is renamed into place', { skip }, async () => {
  const { root, cleanup } = await tempRoot();
  try {
    const events = await traceCommits(root, 8, false, 'sync');
    assert.deepEqual(events.filter((e) => e.name === 'fsync' || e.name === 'fdatasync'), []);
    assert.equal(events.filter((e) => isRename(e) && e.phase === 'end').length, 8);
    assert.equal(events.filter((e) => isAccess(e) && e.phase === 'start').length, 8);
  } finally {
    await cleanup();
  }
});
