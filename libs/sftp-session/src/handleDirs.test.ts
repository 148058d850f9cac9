// Directories through ssh2's client: READDIR batches and long names, MKDIR/RMDIR, REALPATH and expand-path.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { LIMITS } from './limits';
import { STATUS } from './status';
import { call, connectSftp, startTestServer, statusOf } from './testServer';

interface Entry {
  filename: string;
  longname: string;
  attrs: { size: number; mode: number; mtime: number };
}

test('READDIR: batches of 100 with ls -l long names, then EOF; partial uploads and links leading out are not listed', async () => {
  const server = await startTestServer();
  const { client, sftp } = await connectSftp(server);
  try {
    for (let i = 0; i < 250; i++) await fsp.writeFile(path.join(server.root, `f${String(i).padStart(3, '0')}.txt`), 'x'.repeat(i));
    await fsp.mkdir(path.join(server.root, 'sub'));
    await fsp.writeFile(path.join(server.root, '.half.bin.ftp-partial'), 'half');
    await fsp.symlink(server.outside, path.join(server.root, 'out'));

    const handle = await call<Buffer>((cb) => sftp.opendir('/', cb));
    const sizes: number[] = [];
    const all: Entry[] = [];
    for (;;) {
      const batch = await call<Entry[]>((cb) => sftp.readdir(handle, cb)).catch((err: { code?: number }) =>
        err.code === STATUS.EOF ? false : Promise.reject(err),
      );
      if (!batch) break;
      sizes.push(batch.length);
      all.push(...batch);
    }
    await call((cb) => sftp.close(handle, cb));
    assert.deepEqual(sizes, [LIMITS.readdirBatch, LIMITS.readdirBatch, 51]);
    assert.equal(all.length, 251);
    assert.ok(!all.some((e) => e.filename.includes('ftp-partial') || e.filename === 'out'));

    const f7 = all.find((e) => e.filename === 'f007.txt')!;
    assert.match(f7.longname, /^-rw-r--r-- {4}1 partner {2}partner {9}7 [A-Z][a-z]{2} [ 123]\d \d\d:\d\d f007\.txt$/);
    assert.equal(f7.attrs.size, 7);
    assert.equal(f7.attrs.mode & 0o170000, 0o100000);
    const sub = all.find((e) => e.filename === 'sub')!;
    assert.match(sub.longname, /^drwxr-xr-x {4}1 partner {2}partner  +\d+ .* sub$/);
    assert.equal(sub.attrs.mode & 0o170000, 0o040000);

    assert.equal(await statusOf(call((cb) => sftp.opendir('/f001.txt', cb))), STATUS.NO_SUCH_FILE);
    assert.equal(await statusOf(call((cb) => sftp.opendir('/nope', cb))), STATUS.NO_SUCH_FILE);
  } finally {
    client.end();
    await server.stop();
  }
});

test('MKDIR and RMDIR: existing, non-empty and root are refused; a folder holding only partials is removed', async () => {
  const server = await startTestServer();
  const { client, sftp } = await connectSftp(server);
  try {
    await call((cb) => sftp.mkdir('/a', cb));
    assert.equal(await statusOf(call((cb) => sftp.mkdir('/a', cb))), STATUS.FAILURE);
    assert.equal(await statusOf(call((cb) => sftp.mkdir('/none/a', cb))), STATUS.NO_SUCH_FILE);
    await fsp.writeFile(path.join(server.root, 'a', 'f'), '');
    assert.equal(await statusOf(call((cb) => sftp.rmdir('/a', cb))), STATUS.FAILURE);
    await fsp.rm(path.join(server.root, 'a', 'f'));
    await fsp.writeFile(path.join(server.root, 'a', '.f.ftp-partial'), 'abandoned');
    await call((cb) => sftp.rmdir('/a', cb));
    assert.equal(await statusOf(call((cb) => sftp.rmdir('/', cb))), STATUS.PERMISSION_DENIED);
    assert.equal(await statusOf(call((cb) => sftp.rmdir('/a', cb))), STATUS.NO_SUCH_FILE);
    assert.ok(server.logs.some((l) => l.fields.audit && l.fields.event === 'rmdir' && l.fields.path === '/a'));
  } finally {
    client.end();
    await server.stop();
  }
});

// expand-path@openssh.com is tested with raw packets (protocol.test.ts): ssh2's client misencodes its name.
test('REALPATH: canonical paths inside the home, which is /', async () => {
  const server = await startTestServer();
  const { client, sftp } = await connectSftp(server);
  try {
    const real = (p: string) => call<string>((cb) => sftp.realpath(p, cb));
    assert.equal(await real('.'), '/');
    assert.equal(await real(''), '/');
    assert.equal(await real('a/b/../c/'), '/a/c');
    assert.equal(await real('../../..'), '/');
  } finally {
    client.end();
    await server.stop();
  }
});
