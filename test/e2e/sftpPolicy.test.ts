// What an SFTP user may do: per-folder permissions (every denial is SSH_FX_PERMISSION_DENIED and an `event: 'denied'`
// log line), the chroot to the home (checked on disk, outside the data folder too), and only the sftp subsystem on a
// session channel: exec, shell, other subsystems and port forwarding are refused.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freeBlock, makeTempDir, removeTempDir } from '../support/processes';
import type { TestServer } from '../support/server';
import {
  call,
  closeClient,
  makeKeyPair,
  paramiko,
  sftpBatch,
  sftpOf,
  sshConnect,
  SSH_FX,
  sshRun,
  startSftpServer,
  statusOf,
  until,
  userYaml,
  waitForLog,
  type Credentials,
  type KeyPair,
  type LogLine,
} from '../support/sftpClient';

const PASSWORD = 'pat-password-3';
const SECRET = 'outside the home: never readable over SFTP\n';
const ALL = ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'rmdir'];

let server: TestServer;
let port: number;
let local: string;
let key: KeyPair;
let home: string;
/** The edge's temporary folder: users file, TLS files, the data folder (with every home) and a secret beside them. */
let base: string;

before(async () => {
  local = makeTempDir('sftp-policy-');
  key = makeKeyPair(local, 'id_ed25519');
  server = await startSftpServer({
    extraUsers: await userYaml('pat', {
      password: PASSWORD,
      publicKeys: [key.publicLine],
      permissions: { '/': ALL, '/keep': ['list', 'download', 'upload', 'rename'], '/ro': ['list', 'download'], '/wo': ['list', 'upload'], '/nolist': ['download'] },
    }),
  });
  port = server.edge.sftpPort;
  home = join(server.dataDir, 'pat');
  base = dirname(server.dataDir);
  for (const dir of ['keep', 'ro/sub', 'wo', 'nolist']) mkdirSync(join(home, dir), { recursive: true });
  writeFileSync(join(home, 'keep/x.txt'), 'X');
  writeFileSync(join(home, 'keep/y.txt'), 'Y');
  writeFileSync(join(home, 'ro/report.txt'), 'report');
  writeFileSync(join(home, 'wo/dropped.txt'), 'dropped');
  writeFileSync(join(home, 'nolist/f.txt'), 'f');
  writeFileSync(join(base, 'outside-secret.txt'), SECRET);
  mkdirSync(join(server.dataDir, 'alice'), { recursive: true });
  writeFileSync(join(server.dataDir, 'alice/alice-secret.txt'), SECRET);
  symlinkSync(join(base, 'outside-secret.txt'), join(home, 'link-out'));
  writeFileSync(join(local, 'marker.txt'), 'marker');
});

after(async () => {
  await server?.close();
  if (local) removeTempDir(local);
});

const pat = (): Credentials => ({ user: 'pat', key: key.privateKey });
const since = (mark: number) => (match: (l: LogLine) => boolean) => (l: LogLine) => server.logs.indexOf(l) >= mark && match(l);

async function withSftp<T>(fn: (sftp: Awaited<ReturnType<typeof sftpOf>>) => Promise<T>): Promise<T> {
  const client = await sshConnect({ port, username: 'pat', password: PASSWORD });
  try {
    return await fn(await sftpOf(client));
  } finally {
    await closeClient(client);
  }
}

/** Every file and folder under `root` except `skip`, with sizes: what the server left outside the home. */
function snapshot(root: string, skip: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .map((e) => join(e.parentPath, e.name))
    .filter((p) => p !== skip && !p.startsWith(skip + '/'))
    .map((p) => `${relative(root, p)}:${statSync(p, { throwIfNoEntry: false })?.size ?? 'gone'}`)
    .sort();
}

describe('permissions', () => {
  test('rename over an existing file: replaced with the overwrite permission, refused without it (OpenSSH posix-rename)', { timeout: 60_000 }, async () => {
    writeFileSync(join(home, 'a.txt'), 'A');
    writeFileSync(join(home, 'b.txt'), 'B');
    const mark = server.logs.length;
    const ok = await sftpBatch(port, pat(), ['rename a.txt b.txt', 'rename keep/x.txt keep/new.txt', 'rename keep/new.txt keep/x.txt'], { cwd: local });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(readFileSync(join(home, 'b.txt'), 'utf8'), 'A', 'b.txt replaced');
    assert.equal(existsSync(join(home, 'a.txt')), false);
    const denied = await sftpBatch(port, pat(), ['rename keep/x.txt keep/y.txt'], { cwd: local });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Permission denied/);
    assert.equal(readFileSync(join(home, 'keep/y.txt'), 'utf8'), 'Y', 'the target is untouched');
    assert.equal(readFileSync(join(home, 'keep/x.txt'), 'utf8'), 'X', 'the source stays');
    await waitForLog(server, since(mark)((l) => l.event === 'denied' && l.perm === 'overwrite' && l.path === '/keep/y.txt' && l.user === 'pat'), 'the denial');
    // The same through posix-rename from ssh2's client: PERMISSION_DENIED.
    await withSftp(async (sftp) => {
      assert.equal(await statusOf(call((cb) => sftp.ext_openssh_rename('/keep/x.txt', '/keep/y.txt', cb))), SSH_FX.PERMISSION_DENIED);
    });
  });

  test('every denied operation answers SSH_FX_PERMISSION_DENIED and logs event denied; nothing changes on disk', { timeout: 60_000 }, async () => {
    const mark = server.logs.length;
    const cases: [string, string, string, (sftp: Awaited<ReturnType<typeof sftpOf>>) => Promise<unknown>][] = [
      ['upload a new file', 'upload', '/ro/new.txt', (sftp) => call((cb) => sftp.open('/ro/new.txt', 'w', cb))],
      ['overwrite', 'overwrite', '/ro/report.txt', (sftp) => call((cb) => sftp.open('/ro/report.txt', 'w', cb))],
      ['append (reput)', 'overwrite', '/ro/report.txt', (sftp) => call((cb) => sftp.open('/ro/report.txt', 'a', cb))],
      ['download', 'download', '/wo/dropped.txt', (sftp) => call((cb) => sftp.open('/wo/dropped.txt', 'r', cb))],
      ['list', 'list', '/nolist', (sftp) => call((cb) => sftp.opendir('/nolist', cb))],
      ['stat', 'list', '/nolist/f.txt', (sftp) => call((cb) => sftp.stat('/nolist/f.txt', cb))],
      ['remove', 'delete', '/ro/report.txt', (sftp) => call((cb) => sftp.unlink('/ro/report.txt', cb))],
      ['remove in keep', 'delete', '/keep/x.txt', (sftp) => call((cb) => sftp.unlink('/keep/x.txt', cb))],
      ['mkdir', 'mkdir', '/ro/d', (sftp) => call((cb) => sftp.mkdir('/ro/d', cb))],
      ['rmdir', 'rmdir', '/ro/sub', (sftp) => call((cb) => sftp.rmdir('/ro/sub', cb))],
      ['rename', 'rename', '/ro/report.txt', (sftp) => call((cb) => sftp.rename('/ro/report.txt', '/report.txt', cb))],
      ['rename into', 'rename', '/ro/b.txt', (sftp) => call((cb) => sftp.rename('/b.txt', '/ro/b.txt', cb))],
      ['rename a folder holding a stricter rule', 'rename', '/ro', (sftp) => call((cb) => sftp.rename('/ro', '/ro2', cb))],
      ['set the time', 'overwrite', '/ro/report.txt', (sftp) => call((cb) => sftp.utimes('/ro/report.txt', 1000, 1000, cb))],
    ];
    await withSftp(async (sftp) => {
      for (const [what, perm, path, op] of cases) {
        assert.equal(await statusOf(op(sftp)), SSH_FX.PERMISSION_DENIED, what);
        await waitForLog(server, since(mark)((l) => l.event === 'denied' && l.perm === perm && l.path === path && l.user === 'pat'), `denied line for ${what}`, 10_000);
      }
    });
    assert.equal(readFileSync(join(home, 'ro/report.txt'), 'utf8'), 'report');
    assert.ok(statSync(join(home, 'ro/report.txt')).mtimeMs > 1_000_000, 'the time was not set');
    assert.deepEqual(readdirSync(join(home, 'ro')).sort(), ['report.txt', 'sub']);
    assert.ok(existsSync(join(home, 'keep/x.txt')));
    assert.ok(existsSync(join(home, 'b.txt')));
    // The other clients say it their way: OpenSSH "Permission denied", paramiko errno 13 (EACCES).
    const openssh = await sftpBatch(port, pat(), ['put marker.txt ro/marker.txt'], { cwd: local });
    assert.notEqual(openssh.code, 0);
    assert.match(openssh.stderr, /Permission denied/);
    const py = await paramiko(port, { user: 'pat', password: PASSWORD }, [['put', join(local, 'marker.txt'), '/ro/marker.txt'], ['remove', '/keep/y.txt']]);
    assert.deepEqual(py.map((r) => r.slice(0, 2)), [['error', 13], ['error', 13]]);
    assert.equal(existsSync(join(home, 'ro/marker.txt')), false);
  });
});

describe('chroot', () => {
  test('../, absolute paths, ls .. and a symlink leading out stay inside the home; nothing is read or written outside', { timeout: 90_000 }, async () => {
    const before = snapshot(base, home);
    const got = join(local, 'got');
    mkdirSync(got);
    const result = await sftpBatch(
      port,
      pat(),
      [
        '-get ../../outside-secret.txt got/1',
        '-get ../alice/alice-secret.txt got/2',
        '-get /etc/passwd got/3',
        '-get ../../etc/passwd got/4',
        '-get /../../outside-secret.txt got/5',
        '-get link-out got/6',
        '-get ../../../../../../../../tmp/../etc/passwd got/7',
        'ls -1a ..',
        'ls -1a /../..',
        '-cd ../..',
        'pwd',
        '-put marker.txt ../../escaped-1.txt',
        '-put marker.txt ../alice/escaped-2.txt',
        '-mkdir ../../escaped-dir',
        '-rename b.txt ../../escaped-3.txt',
        '-symlink /etc/passwd link-in',
        '-ln ../../outside-secret.txt hard-in',
      ],
      { cwd: local },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(readdirSync(got), [], 'no download succeeded');
    assert.match(result.stdout, /Remote working directory: \/\n/, 'cd ../.. ends at the home');
    const listing = result.stdout.split('sftp> ls -1a ..\n')[1].split('sftp>')[0];
    assert.match(listing, /^\.\.\/keep$/m, 'ls .. lists the home');
    assert.doesNotMatch(listing, /alice|outside-secret|users\.yaml/);
    assert.doesNotMatch(result.stdout, /outside the home/);
    // Writes with ../ land in the home (its root is /), never beside it.
    assert.equal(readFileSync(join(home, 'escaped-1.txt'), 'utf8'), 'marker');
    assert.ok(existsSync(join(home, 'escaped-3.txt')));
    assert.ok(statSync(join(home, 'escaped-dir')).isDirectory());
    assert.equal(existsSync(join(home, 'link-in')), false, 'no symlink made');
    assert.equal(existsSync(join(home, 'hard-in')), false, 'no hard link made');
    assert.deepEqual(snapshot(base, home), before, 'nothing changed outside the home');
    assert.equal(readFileSync(join(base, 'outside-secret.txt'), 'utf8'), SECRET);

    await withSftp(async (sftp) => {
      assert.equal(await call<string>((cb) => sftp.realpath('../../..', cb)), '/');
      assert.equal(await call<string>((cb) => sftp.realpath('/../keep/../..', cb)), '/');
      assert.equal(await statusOf(call((cb) => sftp.stat('../../outside-secret.txt', cb))), SSH_FX.NO_SUCH_FILE);
      assert.notEqual(await statusOf(call((cb) => sftp.open('link-out', 'r', cb))), SSH_FX.OK, 'a symlink leading out does not open');
      assert.equal(await statusOf(call((cb) => sftp.symlink('/etc/passwd', '/link2', cb))), SSH_FX.OP_UNSUPPORTED);
      const names = (await call<{ filename: string }[]>((cb) => sftp.readdir('/../..', cb))).map((e) => e.filename);
      assert.ok(names.includes('keep') && !names.includes('alice') && !names.includes('data'), `readdir /../.. is the home: ${names}`);
    });
    const py = await paramiko(port, { user: 'pat', password: PASSWORD }, [['get', '../../outside-secret.txt', join(got, 'py')], ['normalize', '../../..']]);
    assert.equal(py[0][0], 'error');
    assert.deepEqual(py[1], ['ok', '/']);
    // paramiko opens its local file before the remote one: an empty file is all it may leave.
    for (const name of readdirSync(got)) assert.equal(readFileSync(join(got, name), 'utf8'), '', `${name} is empty`);
  });
});

describe('refused channels', () => {
  test('exec, shell and other subsystems are refused, each with a log line', { timeout: 60_000 }, async () => {
    const mark = server.logs.length;
    const after = since(mark);
    const exec = await sshRun(port, pat(), [], ['cat', '/etc/passwd']);
    assert.notEqual(exec.code, 0);
    assert.match(exec.stderr, /exec request failed/);
    assert.doesNotMatch(exec.stdout, /root:/);
    await waitForLog(server, after((l) => l.request === 'exec' && l.command === 'cat /etc/passwd' && String(l.msg).startsWith('SSH channel request refused')), 'exec refused');
    const other = await sshRun(port, pat(), ['-s'], ['netconf']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /subsystem request failed/);
    await waitForLog(server, after((l) => l.request === 'subsystem' && l.name === 'netconf'), 'subsystem refused');
    const shell = await sshRun(port, pat(), ['-tt'], [], { timeoutMs: 30_000 });
    assert.notEqual(shell.code, 0);
    assert.equal(shell.killed, false, 'the client was not left hanging');
    await waitForLog(server, after((l) => l.request === 'shell'), 'shell refused');
    // ssh2's client: the same answers.
    const client = await sshConnect({ port, username: 'pat', password: PASSWORD });
    try {
      await assert.rejects(new Promise((resolve, reject) => client.exec('id', (err, stream) => (err ? reject(err) : resolve(stream)))));
      await assert.rejects(new Promise((resolve, reject) => client.shell(false, (err, stream) => (err ? reject(err) : resolve(stream)))));
      // The connection is still good for SFTP.
      const sftp = await sftpOf(client);
      assert.equal(await call<string>((cb) => sftp.realpath('.', cb)), '/');
    } finally {
      await closeClient(client);
    }
  });

  test('port forwarding, local and remote, is refused', { timeout: 60_000 }, async () => {
    const mark = server.logs.length;
    const after = since(mark);
    // -L: the forward is asked for when a local connection arrives; the server refuses the direct-tcpip channel.
    const localPort = await freeBlock(1, ['127.0.0.1']);
    let done = false;
    const forwarder = sshRun(port, pat(), ['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${server.port}`], [], { killWhen: () => done, timeoutMs: 50_000 });
    try {
      const received = await until('the local forward listens', () => canConnect(localPort), 30_000).then(() => readUntilClosed(localPort));
      assert.doesNotMatch(received, /^220/, 'the FTP banner never came through');
      const refused = await waitForLog(server, after((l) => l.msg === 'SSH port forwarding refused'), 'forwarding refused');
      assert.equal(refused.destination, `127.0.0.1:${server.port}`);
    } finally {
      done = true;
      await forwarder;
    }
    // -R: the global request is refused and ssh gives up (ExitOnForwardFailure).
    const remote = await sshRun(port, pat(), ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:0:127.0.0.1:${server.port}`], [], { timeoutMs: 30_000 });
    assert.notEqual(remote.code, 0);
    assert.equal(remote.killed, false);
    assert.match(remote.stderr, /remote port forwarding failed/);
    await waitForLog(server, after((l) => l.msg === 'SSH global request refused' && l.request === 'tcpip-forward'), 'tcpip-forward refused');
    // ssh2's forwardOut: an error, not a stream.
    const client = await sshConnect({ port, username: 'pat', password: PASSWORD });
    try {
      await assert.rejects(
        new Promise((resolve, reject) => client.forwardOut('127.0.0.1', 1234, '127.0.0.1', server.port, (err, stream) => (err ? reject(err) : resolve(stream)))),
      );
    } finally {
      await closeClient(client);
    }
  });
});

function canConnect(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port: p }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Connects to `p` and collects what arrives until the other side closes (at most 20 s). */
function readUntilClosed(p: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect({ host: '127.0.0.1', port: p });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the forwarded connection stayed open; received ${JSON.stringify(text)}`));
    }, 20_000);
    s.setEncoding('latin1');
    s.on('data', (d: string) => (text += d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}
