// Path requests through ssh2's client: STAT of partials, SETSTAT, REMOVE, RENAME vs posix-rename, links refused.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { Permission } from '@ftp/identity';
import type { SFTPWrapper } from 'ssh2';
import { STATUS } from './status';
import { ALL, call, connectSftp, startTestServer, statusOf, type TestServer } from './testServer';

async function withSftp(permissions: Record<string, Permission[]> | undefined, run: (sftp: SFTPWrapper, server: TestServer) => Promise<void>) {
  const server = await startTestServer({ permissions });
  const { client, sftp } = await connectSftp(server);
  try {
    await run(sftp, server);
  } finally {
    client.end();
    await server.stop();
  }
}

const put = (server: TestServer, name: string, text: string) => fsp.writeFile(path.join(server.root, name), text);
const get = (server: TestServer, name: string) => fsp.readFile(path.join(server.root, name), 'utf8');
const exists = (server: TestServer, name: string) => fsp.access(path.join(server.root, name)).then(() => true, () => false);

test('STAT/LSTAT: files, folders, a name with only a partial (its size), missing names', async () => {
  await withSftp(undefined, async (sftp, server) => {
    await put(server, 'a.txt', 'hello');
    await put(server, '.b.bin.ftp-partial', '1234567');
    const st = await call<{ size: number; mode: number; mtime: number; uid?: number }>((cb) => sftp.stat('/a.txt', cb));
    assert.equal(st.size, 5);
    assert.equal(st.mode & 0o170000, 0o100000);
    assert.equal(st.uid, undefined, 'no owner is shown');
    assert.equal((await call<{ mode: number }>((cb) => sftp.lstat('/', cb))).mode & 0o170000, 0o040000);
    assert.equal((await call<{ size: number }>((cb) => sftp.lstat('/b.bin', cb))).size, 6, 'partial: where a resume continues (one byte short)');
    assert.equal(await statusOf(call((cb) => sftp.stat('/nope', cb))), STATUS.NO_SUCH_FILE);
    assert.equal(await statusOf(call((cb) => sftp.stat('/.b.bin.ftp-partial', cb))), STATUS.FAILURE, 'partial names are reserved');
  });
});

test('SETSTAT: mtime set (needs overwrite), owner refused, size unsupported, mode ignored but the name must exist', async () => {
  await withSftp({ '/': ALL, '/ro': ['list', 'download'] }, async (sftp, server) => {
    await put(server, 'a.txt', 'x');
    await call((cb) => sftp.utimes('/a.txt', 1_500_000_000, 1_600_000_000, cb));
    assert.equal((await fsp.stat(path.join(server.root, 'a.txt'))).mtime.getTime(), 1_600_000_000_000);
    assert.equal(await statusOf(call((cb) => sftp.setstat('/a.txt', { uid: 1, gid: 1 }, cb))), STATUS.PERMISSION_DENIED);
    assert.equal(await statusOf(call((cb) => sftp.setstat('/a.txt', { size: 0 }, cb))), STATUS.OP_UNSUPPORTED);
    await call((cb) => sftp.chmod('/a.txt', 0o600, cb));
    assert.equal((await fsp.stat(path.join(server.root, 'a.txt'))).mode & 0o777, 0o644);
    assert.equal(await statusOf(call((cb) => sftp.chmod('/nope', 0o600, cb))), STATUS.NO_SUCH_FILE);
    await fsp.mkdir(path.join(server.root, 'ro'));
    await put(server, 'ro/f', 'x');
    assert.equal(await statusOf(call((cb) => sftp.utimes('/ro/f', 1, 1, cb))), STATUS.PERMISSION_DENIED);
  });
});

test('REMOVE: a file and its partial go; folders and missing names fail', async () => {
  await withSftp(undefined, async (sftp, server) => {
    await put(server, 'a.txt', 'x');
    await put(server, '.a.txt.ftp-partial', 'half');
    await call((cb) => sftp.unlink('/a.txt', cb));
    assert.equal(await exists(server, 'a.txt'), false);
    assert.equal(await exists(server, '.a.txt.ftp-partial'), false);
    assert.equal(await statusOf(call((cb) => sftp.unlink('/a.txt', cb))), STATUS.NO_SUCH_FILE);
    await fsp.mkdir(path.join(server.root, 'd'));
    assert.equal(await statusOf(call((cb) => sftp.unlink('/d', cb))), STATUS.FAILURE);
    assert.ok(server.logs.some((l) => l.fields.audit && l.fields.event === 'delete' && l.fields.path === '/a.txt'));
  });
});

test('RENAME refuses an existing target (FAILURE); posix-rename replaces it with overwrite, is PERMISSION_DENIED without', async () => {
  await withSftp({ '/': ALL, '/keep': ['list', 'upload', 'rename', 'download'] }, async (sftp, server) => {
    await put(server, 'a', 'A');
    await put(server, 'b', 'B');
    assert.equal(await statusOf(call((cb) => sftp.rename('/a', '/b', cb))), STATUS.FAILURE);
    await call((cb) => sftp.rename('/a', '/c', cb));
    assert.equal(await get(server, 'c'), 'A');
    await call((cb) => sftp.ext_openssh_rename('/c', '/b', cb));
    assert.equal(await get(server, 'b'), 'A');
    assert.equal(await exists(server, 'c'), false);

    await fsp.mkdir(path.join(server.root, 'keep'));
    await put(server, 'keep/x', 'X');
    await put(server, 'keep/y', 'Y');
    assert.equal(await statusOf(call((cb) => sftp.ext_openssh_rename('/keep/x', '/keep/y', cb))), STATUS.PERMISSION_DENIED);
    assert.equal(await get(server, 'keep/y'), 'Y');
    await call((cb) => sftp.ext_openssh_rename('/keep/x', '/keep/z', cb)); // no target: rename alone suffices
    assert.equal(await statusOf(call((cb) => sftp.rename('/nope', '/n2', cb))), STATUS.NO_SUCH_FILE);
    // A lone partial moves with its name, so a resume under the new name continues it.
    await put(server, '.p.ftp-partial', 'half');
    await call((cb) => sftp.rename('/p', '/q', cb));
    assert.equal(await get(server, '.q.ftp-partial'), 'half');
  });
});

test('renaming or removing a folder needs the permission on every folder with a rule inside it', async () => {
  await withSftp({ '/': ALL, '/top/locked': ['list', 'download'] }, async (sftp, server) => {
    await fsp.mkdir(path.join(server.root, 'top', 'locked'), { recursive: true });
    assert.equal(await statusOf(call((cb) => sftp.rename('/top', '/moved', cb))), STATUS.PERMISSION_DENIED);
    assert.equal(await exists(server, 'top/locked'), true);
    await fsp.rmdir(path.join(server.root, 'top', 'locked'));
    assert.equal(await statusOf(call((cb) => sftp.rmdir('/top', cb))), STATUS.PERMISSION_DENIED);
    assert.equal(await exists(server, 'top'), true);
  });
});

test('SYMLINK, READLINK and hardlink@openssh.com are OP_UNSUPPORTED', async () => {
  await withSftp(undefined, async (sftp, server) => {
    await put(server, 'a', 'A');
    assert.equal(await statusOf(call((cb) => sftp.symlink('/a', '/l', cb))), STATUS.OP_UNSUPPORTED);
    assert.equal(await statusOf(call((cb) => sftp.readlink('/a', cb))), STATUS.OP_UNSUPPORTED);
    // Not advertised, so ssh2's client refuses to send it: see protocol.test.ts for the raw request.
    assert.throws(() => sftp.ext_openssh_hardlink('/a', '/h', () => undefined), /does not support/);
    assert.deepEqual(await fsp.readdir(server.root), ['a']);
  });
});
