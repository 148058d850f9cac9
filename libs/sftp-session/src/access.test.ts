// Permissions and path safety through ssh2's client: every denial is PERMISSION_DENIED with a log line; no path-taking
// request reaches outside the user's root.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { Permission } from '@ftp/identity';
import { STATUS } from './status';
import { ALL, call, connectSftp, SECRET, startTestServer, statusOf } from './testServer';

const F = { READ: 0x01, WRITE: 0x02, APPEND: 0x04, CREAT: 0x08, TRUNC: 0x10 };
const without = (perm: Permission) => ALL.filter((p) => p !== perm);

test('each missing permission gives PERMISSION_DENIED, a log line, and no change', async () => {
  const permissions: Record<string, Permission[]> = { '/': ALL };
  for (const perm of ALL) permissions[`/no-${perm}`] = without(perm);
  const server = await startTestServer({ permissions });
  const { client, sftp } = await connectSftp(server);
  try {
    for (const perm of ALL) {
      await fsp.mkdir(path.join(server.root, `no-${perm}`, 'd'), { recursive: true });
      await fsp.writeFile(path.join(server.root, `no-${perm}`, 'f'), 'original');
    }
    await fsp.writeFile(path.join(server.root, 'free'), 'free');
    const open = (p: string, flags: number) => call<Buffer>((cb) => sftp.open(p, flags, cb));
    const cases: Array<[Permission, string, () => Promise<unknown>]> = [
      ['list', 'OPENDIR', () => call((cb) => sftp.opendir('/no-list', cb))],
      ['list', 'STAT', () => call((cb) => sftp.stat('/no-list/f', cb))],
      ['list', 'LSTAT', () => call((cb) => sftp.lstat('/no-list/f', cb))],
      ['list', 'statvfs', () => call((cb) => sftp.ext_openssh_statvfs('/no-list', cb))],
      ['download', 'OPEN read', () => open('/no-download/f', F.READ)],
      ['upload', 'OPEN new', () => open('/no-upload/new', F.WRITE | F.CREAT | F.TRUNC)],
      ['overwrite', 'OPEN existing', () => open('/no-overwrite/f', F.WRITE | F.CREAT | F.TRUNC)],
      ['overwrite', 'OPEN append', () => open('/no-overwrite/f', F.WRITE | F.CREAT | F.APPEND)],
      ['overwrite', 'SETSTAT mtime', () => call((cb) => sftp.utimes('/no-overwrite/f', 1, 1, cb))],
      ['overwrite', 'posix-rename over', () => call((cb) => sftp.ext_openssh_rename('/free', '/no-overwrite/f', cb))],
      ['delete', 'REMOVE', () => call((cb) => sftp.unlink('/no-delete/f', cb))],
      ['rename', 'RENAME from', () => call((cb) => sftp.rename('/no-rename/f', '/g', cb))],
      ['rename', 'RENAME to', () => call((cb) => sftp.rename('/free', '/no-rename/g', cb))],
      ['mkdir', 'MKDIR', () => call((cb) => sftp.mkdir('/no-mkdir/new', cb))],
      ['rmdir', 'RMDIR', () => call((cb) => sftp.rmdir('/no-rmdir/d', cb))],
    ];
    for (const [perm, what, run] of cases) {
      const logged = server.logs.length;
      assert.equal(await statusOf(run()), STATUS.PERMISSION_DENIED, `${what} without ${perm}`);
      const line = server.logs.slice(logged).find((l) => l.fields.event === 'denied');
      assert.equal(line?.fields.perm, perm, `${what}: a denial log line naming ${perm}`);
    }
    for (const perm of ALL) {
      assert.deepEqual((await fsp.readdir(path.join(server.root, `no-${perm}`))).sort(), ['d', 'f'], `no-${perm} untouched`);
      assert.equal(await fsp.readFile(path.join(server.root, `no-${perm}`, 'f'), 'utf8'), 'original');
    }
    assert.equal(await fsp.readFile(path.join(server.root, 'free'), 'utf8'), 'free');
  } finally {
    client.end();
    await server.stop();
  }
});

test('no path-taking request reaches outside the root: .., absolute paths, symlinks leading out', async () => {
  const server = await startTestServer();
  const { client, sftp } = await connectSftp(server);
  try {
    await fsp.symlink(server.outside, path.join(server.root, 'out')); // a link someone planted, leading out
    await fsp.writeFile(path.join(server.root, 'mine'), 'mine');
    const open = (p: string, flags: number) => call<Buffer>((cb) => sftp.open(p, flags, cb));
    const up = '../../../../outside';
    const escapes: Array<[string, () => Promise<unknown>, number]> = [
      ['OPEN read ..', () => open(`${up}/secret.txt`, F.READ), STATUS.NO_SUCH_FILE],
      ['OPEN read /etc/passwd', () => open('/etc/passwd', F.READ), STATUS.NO_SUCH_FILE],
      ['OPEN read via link', () => open('/out/secret.txt', F.READ), STATUS.PERMISSION_DENIED],
      ['OPEN write ..', () => open(`${up}/new.txt`, F.WRITE | F.CREAT | F.TRUNC), STATUS.NO_SUCH_FILE],
      ['OPEN write via link', () => open('/out/secret.txt', F.WRITE | F.CREAT | F.TRUNC), STATUS.PERMISSION_DENIED],
      ['OPEN append via link', () => open('out/new.txt', F.WRITE | F.CREAT | F.APPEND), STATUS.PERMISSION_DENIED],
      ['STAT ..', () => call((cb) => sftp.stat(`${up}/secret.txt`, cb)), STATUS.NO_SUCH_FILE],
      ['LSTAT via link', () => call((cb) => sftp.lstat('/out/secret.txt', cb)), STATUS.PERMISSION_DENIED],
      ['SETSTAT ..', () => call((cb) => sftp.utimes(`${up}/secret.txt`, 1, 1, cb)), STATUS.NO_SUCH_FILE],
      ['SETSTAT via link', () => call((cb) => sftp.utimes('/out/secret.txt', 1, 1, cb)), STATUS.PERMISSION_DENIED],
      ['REMOVE ..', () => call((cb) => sftp.unlink(`${up}/secret.txt`, cb)), STATUS.NO_SUCH_FILE],
      ['REMOVE via link', () => call((cb) => sftp.unlink('/out/secret.txt', cb)), STATUS.PERMISSION_DENIED],
      ['RENAME from ..', () => call((cb) => sftp.rename(`${up}/secret.txt`, '/stolen', cb)), STATUS.NO_SUCH_FILE],
      ['RENAME from via link', () => call((cb) => sftp.rename('/out/secret.txt', '/stolen', cb)), STATUS.PERMISSION_DENIED],
      ['RENAME to via link', () => call((cb) => sftp.rename('/mine', '/out/planted', cb)), STATUS.PERMISSION_DENIED],
      ['posix-rename to via link', () => call((cb) => sftp.ext_openssh_rename('/mine', '/out/secret.txt', cb)), STATUS.PERMISSION_DENIED],
      ['MKDIR ..', () => call((cb) => sftp.mkdir(`${up}/d`, cb)), STATUS.NO_SUCH_FILE],
      ['MKDIR via link', () => call((cb) => sftp.mkdir('/out/d', cb)), STATUS.PERMISSION_DENIED],
      ['RMDIR via link', () => call((cb) => sftp.rmdir('/out', cb)), STATUS.PERMISSION_DENIED],
      ['OPENDIR via link', () => call((cb) => sftp.opendir('/out', cb)), STATUS.PERMISSION_DENIED],
      ['statvfs via link', () => call((cb) => sftp.ext_openssh_statvfs('/out', cb)), STATUS.PERMISSION_DENIED],
      ['READLINK', () => call((cb) => sftp.readlink('/out', cb)), STATUS.OP_UNSUPPORTED],
      ['SYMLINK', () => call((cb) => sftp.symlink(`${up}/secret.txt`, '/link', cb)), STATUS.OP_UNSUPPORTED],
      ['NUL in a name', () => call((cb) => sftp.stat('/mine\0/../../x', cb)), STATUS.FAILURE],
    ];
    for (const [what, run, expected] of escapes) assert.equal(await statusOf(run()), expected, what);

    // Climbing stops at the root: these land inside it.
    assert.equal(await call<string>((cb) => sftp.realpath('../../..', cb)), '/');
    await call((cb) => sftp.mkdir('../../made', cb));
    const h = await open('/../../../made/f', F.WRITE | F.CREAT | F.TRUNC);
    await call((cb) => sftp.close(h, cb));
    assert.deepEqual((await fsp.readdir(path.join(server.root, 'made'))), ['f']);
    const listed = await call<{ filename: string }[]>((cb) => sftp.readdir('../..', cb));
    assert.deepEqual(listed.map((e) => e.filename).sort(), ['made', 'mine'], 'the link leading out is not listed');

    assert.deepEqual(await fsp.readdir(server.outside), ['secret.txt'], 'nothing created outside');
    assert.equal(await fsp.readFile(path.join(server.outside, 'secret.txt'), 'utf8'), SECRET);
  } finally {
    client.end();
    await server.stop();
  }
});
