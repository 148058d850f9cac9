// The real OpenSSH client (`sftp -b`, key auth) against serveSftp: transfers, trees, reput after a kill, renames,
// permissions. Needs OpenSSH's client: `apt-get install -y openssh-client`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Storage, Upload } from '@ftp/storage';
import { ALL, runOpenSsh, startTestServer, type TestServer } from './testServer';

before(() => {
  try {
    execFileSync('sftp', ['-V'], { stdio: 'ignore' });
  } catch (err) {
    // `sftp -V` is not an option and exits 1 after printing usage; only a missing binary is a problem.
    if ((err as { code?: string }).code === 'ENOENT') throw new Error('OpenSSH client missing: apt-get install -y openssh-client');
  }
});

let local: string;
before(async () => {
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'sftp-openssh-'));
});
after(() => fsp.rm(local, { recursive: true, force: true }));

const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function writeRandom(file: string, size: number): Promise<void> {
  const out = fs.createWriteStream(file);
  for (let left = size; left > 0; left -= 1024 * 1024) out.write(randomBytes(Math.min(left, 1024 * 1024)));
  out.end();
  await new Promise<void>((resolve, reject) => out.on('finish', () => resolve()).on('error', reject));
}

async function expectOk(server: TestServer, lines: string[], cwd = local): Promise<string> {
  const result = await runOpenSsh(server, lines, { cwd });
  assert.equal(result.code, 0, `sftp failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

test('put and get of 0 B, 1 B, 3 MiB and 64 MiB are byte-exact', async () => {
  const server = await startTestServer();
  try {
    const sizes = [0, 1, 3 * 1024 * 1024 + 7, 64 * 1024 * 1024];
    for (const size of sizes) await writeRandom(path.join(local, `up-${size}`), size);
    await expectOk(server, [
      ...sizes.map((size) => `put up-${size} f-${size}`),
      ...sizes.map((size) => `get f-${size} down-${size}`),
    ]);
    for (const size of sizes) {
      assert.equal(sha(path.join(server.root, `f-${size}`)), sha(path.join(local, `up-${size}`)), `${size} B up`);
      assert.equal(sha(path.join(local, `down-${size}`)), sha(path.join(local, `up-${size}`)), `${size} B down`);
    }
    const uploads = server.transfers.filter((t) => t.direction === 'upload' && t.result === 'ok');
    assert.deepEqual(uploads.map((t) => t.size), sizes);
  } finally {
    await server.stop();
  }
});

test('a 200-file tree goes up with put -r and comes back with get -r', async () => {
  const server = await startTestServer();
  try {
    const tree = path.join(local, 'tree');
    for (let i = 0; i < 200; i++) {
      const dir = path.join(tree, `d${i % 7}`, `e${i % 3}`);
      await fsp.mkdir(dir, { recursive: true });
      await fsp.writeFile(path.join(dir, `file-${i}.bin`), randomBytes(i * 37));
    }
    await expectOk(server, ['put -r tree up', 'get -r up back']);
    const files = (root: string) =>
      fs.readdirSync(root, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
        .sort();
    const sent = files(tree);
    assert.equal(sent.length, 200);
    assert.deepEqual(files(path.join(server.root, 'up')), sent);
    assert.deepEqual(files(path.join(local, 'back')), sent);
    for (const f of sent) assert.equal(sha(path.join(local, 'back', f)), sha(path.join(tree, f)), f);
  } finally {
    await server.stop();
  }
});

/** Uploads written at `rate` bytes per second while `slow.on` (so that a client can be killed mid-way). */
function throttled(slow: { on: boolean }, rate: number) {
  return (storage: Storage): Storage => ({
    ...storage,
    async openUpload(p, start) {
      const upload = await storage.openUpload(p, start);
      const writeAt: Upload['writeAt'] = async (offset, data) => {
        const bytes = Array.isArray(data) ? data.reduce((n: number, d: Uint8Array) => n + d.length, 0) : (data as Uint8Array).length;
        if (slow.on) await new Promise((resolve) => setTimeout(resolve, (bytes / rate) * 1000));
        return upload.writeAt(offset, data);
      };
      return { ...upload, writeAt };
    },
  });
}

test('reput after the client was killed mid-put continues the partial byte-exact', async () => {
  const slow = { on: true };
  const server = await startTestServer({ wrapStorage: throttled(slow, 8 * 1024 * 1024) });
  try {
    const file = path.join(local, 'resume.bin');
    await writeRandom(file, 32 * 1024 * 1024);
    const partial = path.join(server.root, '.resume.bin.ftp-partial');
    // Kill the whole client (sftp and its ssh) once some megabytes reached the partial.
    const killed = runOpenSsh(server, ['put resume.bin'], { cwd: local, killWhen: () => (fs.statSync(partial, { throwIfNoEntry: false })?.size ?? 0) >= 6 * 1024 * 1024 });
    const first = await killed;
    assert.notEqual(first.code, 0, 'the first put was killed');
    while (server.transfers.length === 0) await new Promise((r) => setTimeout(r, 10));
    const aborted = server.transfers[0];
    assert.equal(aborted.result, 'aborted');
    const kept = fs.statSync(partial).size;
    assert.ok(kept >= 6 * 1024 * 1024 && kept < 32 * 1024 * 1024, `partial of ${kept} bytes`);
    assert.equal(fs.existsSync(path.join(server.root, 'resume.bin')), false, 'nothing published');

    slow.on = false;
    await expectOk(server, ['reput resume.bin']);
    assert.equal(sha(path.join(server.root, 'resume.bin')), sha(file));
    const resumed = server.transfers.at(-1)!;
    // OpenSSH's reput continues where STAT said: one byte short of what was kept, so it always ends with a commit.
    assert.deepEqual([resumed.result, resumed.startOffset, resumed.size], ['ok', kept - 1, 32 * 1024 * 1024]);
  } finally {
    await server.stop();
  }
});

test('ls -l, mkdir, rename (posix-rename) with and without overwrite, put -p, df, rm, rmdir; denials are reported', async () => {
  const server = await startTestServer({ permissions: { '/': ALL, '/keep': ['list', 'upload', 'rename', 'download'] } });
  try {
    await fsp.writeFile(path.join(local, 'a.txt'), 'A');
    await fsp.utimes(path.join(local, 'a.txt'), 1_000_000, 1_000_000);
    await fsp.mkdir(path.join(server.root, 'keep'));
    const out = await expectOk(server, [
      'mkdir d', 'put -p a.txt d/a.txt', 'put a.txt d/b.txt', 'put a.txt keep/x', 'put a.txt keep/y',
      'rename d/a.txt d/b.txt', 'ls -l d', 'df', 'rm d/b.txt', 'rmdir d',
    ]);
    assert.match(out, /^-rw-r--r--\s+1 partner\s+partner\s+1 Jan 12 {2}1970 b\.txt$/m, 'put -p kept the mtime; rename replaced b.txt');
    assert.match(out, /Size\s+Used\s+Avail/);
    assert.deepEqual(await fsp.readdir(server.root), ['keep']);

    const denied = await runOpenSsh(server, ['rename keep/x keep/y'], { cwd: local });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Permission denied/);
    const refused = await runOpenSsh(server, ['put a.txt keep/x'], { cwd: local });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Permission denied/);
    assert.deepEqual((await fsp.readdir(path.join(server.root, 'keep'))).sort(), ['x', 'y']);
    assert.ok(server.logs.some((l) => l.fields.event === 'denied' && l.fields.perm === 'overwrite'));
  } finally {
    await server.stop();
  }
});
