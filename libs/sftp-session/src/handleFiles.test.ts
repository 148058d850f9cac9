// Files through ssh2's own SFTP client: byte-exact transfers, positional writes, atomic publish, resume, handles.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { SFTPWrapper } from 'ssh2';
import { LIMITS } from './limits';
import { STATUS } from './status';
import { call, connectSftp, startTestServer, statusOf, type TestServer, type TestServerOptions } from './testServer';

const F = { READ: 0x01, WRITE: 0x02, APPEND: 0x04, CREAT: 0x08, TRUNC: 0x10, EXCL: 0x20 };

async function withSftp(options: TestServerOptions, run: (sftp: SFTPWrapper, server: TestServer) => Promise<void>): Promise<void> {
  const server = await startTestServer(options);
  const { client, sftp } = await connectSftp(server);
  try {
    await run(sftp, server);
  } finally {
    client.end();
    await server.stop();
  }
}

const host = (server: TestServer, name: string) => path.join(server.root, name);
const exists = (file: string) => fsp.access(file).then(() => true, () => false);
const open = (sftp: SFTPWrapper, p: string, flags: number) => call<Buffer>((cb) => sftp.open(p, flags, cb));
const write = (sftp: SFTPWrapper, h: Buffer, data: Buffer, position: number) =>
  call((cb) => sftp.write(h, data, 0, data.length, position, cb));
const close = (sftp: SFTPWrapper, h: Buffer) => call((cb) => sftp.close(h, cb));
const read = (sftp: SFTPWrapper, h: Buffer, length: number, position: number) =>
  call<number>((cb) => {
    const buf = Buffer.alloc(length);
    sftp.read(h, buf, 0, length, position, (err, n) => cb(err, n));
  });

test('put and get are byte-exact for 0 B, 1 B and 3 MiB, with the advertised 255 KiB requests', async () => {
  await withSftp({}, async (sftp, server) => {
    assert.equal((sftp as unknown as { _maxWriteLen: number })._maxWriteLen, LIMITS.maxWriteLength, 'limits@openssh.com reached the client');
    const local = await fsp.mkdtemp(path.join(os.tmpdir(), 'sftp-local-'));
    try {
      for (const size of [0, 1, 3 * 1024 * 1024 + 5]) {
        const data = randomBytes(size);
        const src = path.join(local, `up-${size}`);
        const dst = path.join(local, `down-${size}`);
        await fsp.writeFile(src, data);
        await call((cb) => sftp.fastPut(src, `/f-${size}`, { concurrency: 16 }, cb));
        assert.deepEqual(await fsp.readFile(host(server, `f-${size}`)), data, `${size} B up`);
        await call((cb) => sftp.fastGet(`/f-${size}`, dst, { concurrency: 16 }, cb));
        assert.deepEqual(await fsp.readFile(dst), data, `${size} B down`);
      }
    } finally {
      await fsp.rm(local, { recursive: true, force: true });
    }
    const uploads = server.transfers.filter((t) => t.direction === 'upload');
    assert.deepEqual(uploads.map((t) => [t.result, t.size, t.bytes]), [[ 'ok', 0, 0 ], [ 'ok', 1, 1 ], [ 'ok', 3 * 1024 * 1024 + 5, 3 * 1024 * 1024 + 5 ]]);
  });
});

test('writes at any offset, out of order and sparse, build the file; it is invisible under its name until CLOSE', async () => {
  await withSftp({}, async (sftp, server) => {
    const data = randomBytes(2 * 1024 * 1024);
    const h = await open(sftp, '/sparse.bin', F.WRITE | F.CREAT | F.TRUNC);
    const block = 32 * 1024;
    const offsets: number[] = [];
    for (let o = 0; o < data.length; o += block) offsets.push(o);
    offsets.sort(() => Math.random() - 0.5); // any order, all in flight at once
    await Promise.all(offsets.map((o) => write(sftp, h, data.subarray(o, o + block), o)));
    // Not there for downloads, listings or the host folder while being written; STAT tells where a resume would
    // continue (how far it got, one byte short: the last byte is always sent again).
    assert.equal(await exists(host(server, 'sparse.bin')), false);
    assert.deepEqual((await call<{ filename: string }[]>((cb) => sftp.readdir('/', cb))).map((e) => e.filename), []);
    assert.equal(await statusOf(open(sftp, '/sparse.bin', F.READ)), STATUS.NO_SUCH_FILE);
    assert.equal((await call<{ size: number }>((cb) => sftp.stat('/sparse.bin', cb))).size, data.length - 1);
    await close(sftp, h);
    assert.deepEqual(await fsp.readFile(host(server, 'sparse.bin')), data);

    // A hole nobody wrote reads as zeros.
    const holed = await open(sftp, '/holed.bin', F.WRITE | F.CREAT | F.TRUNC);
    await write(sftp, holed, Buffer.from('end'), 100_000);
    await close(sftp, holed);
    const got = await fsp.readFile(host(server, 'holed.bin'));
    assert.equal(got.length, 100_003);
    assert.ok(got.subarray(0, 100_000).every((b) => b === 0));
  });
});

test('an upload broken off mid-way keeps its partial, and a resume (APPEND from the STAT size) continues it byte-exact', async () => {
  const server = await startTestServer();
  try {
    const data = randomBytes(1024 * 1024 + 333);
    const half = 512 * 1024;
    const first = await connectSftp(server);
    const h = await open(first.sftp, '/big.bin', F.WRITE | F.CREAT | F.TRUNC);
    await write(first.sftp, h, data.subarray(0, half), 0);
    first.client.end(); // no CLOSE: the connection just goes
    await server.sessions[0].closed;
    assert.deepEqual(server.transfers.map((t) => [t.direction, t.result, t.bytes]), [['upload', 'aborted', half]]);
    assert.equal(await exists(host(server, 'big.bin')), false);

    // OpenSSH's reput: STAT for the size, then OPEN WRITE|CREAT|APPEND and write from there.
    const second = await connectSftp(server);
    const size = (await call<{ size: number }>((cb) => second.sftp.stat('/big.bin', cb))).size;
    assert.equal(size, half - 1, 'one byte short of what arrived: the resume sends it again, and so always ends with a commit');
    const h2 = await open(second.sftp, '/big.bin', F.WRITE | F.CREAT | F.APPEND);
    for (let o = size; o < data.length; o += 100_000) await write(second.sftp, h2, data.subarray(o, Math.min(o + 100_000, data.length)), o);
    await close(second.sftp, h2);
    second.client.end();
    assert.deepEqual(await fsp.readFile(host(server, 'big.bin')), data);
    const last = server.transfers.at(-1)!;
    assert.deepEqual([last.result, last.startOffset, last.bytes, last.size], ['ok', half - 1, data.length - half + 1, data.length]);
  } finally {
    await server.stop();
  }
});

test('open flags: TRUNC discards a partial, no TRUNC keeps bytes, APPEND ignores offsets, EXCL and missing names', async () => {
  await withSftp({}, async (sftp, server) => {
    await fsp.writeFile(host(server, '.p.txt.ftp-partial'), 'partial bytes');
    const t = await open(sftp, '/p.txt', F.WRITE | F.CREAT | F.TRUNC);
    await write(sftp, t, Buffer.from('new'), 0);
    await close(sftp, t);
    assert.equal(await fsp.readFile(host(server, 'p.txt'), 'utf8'), 'new');

    // WRITE without TRUNC on a published file: its bytes stay, a write lands at its offset.
    const k = await open(sftp, '/p.txt', F.WRITE);
    assert.equal(await exists(host(server, 'p.txt')), false, 'back under its partial name until CLOSE');
    await write(sftp, k, Buffer.from('N'), 0);
    await write(sftp, k, Buffer.from('!'), 3);
    await close(sftp, k);
    assert.equal(await fsp.readFile(host(server, 'p.txt'), 'utf8'), 'New!');

    // APPEND: at the end whatever the offset says, in arrival order.
    const a = await open(sftp, '/p.txt', F.WRITE | F.APPEND);
    await write(sftp, a, Buffer.from('ab'), 0);
    await write(sftp, a, Buffer.from('cd'), 0);
    await close(sftp, a);
    assert.equal(await fsp.readFile(host(server, 'p.txt'), 'utf8'), 'New!abcd');

    assert.equal(await statusOf(open(sftp, '/p.txt', F.WRITE | F.CREAT | F.EXCL)), STATUS.FAILURE);
    assert.equal(await statusOf(open(sftp, '/missing.txt', F.WRITE)), STATUS.NO_SUCH_FILE);
    assert.equal(await statusOf(open(sftp, '/missing.txt', F.READ)), STATUS.NO_SUCH_FILE);
    assert.equal(await statusOf(open(sftp, '/p.txt', F.READ | F.WRITE)), STATUS.OP_UNSUPPORTED);
    await call((cb) => sftp.mkdir('/d', cb));
    assert.equal(await statusOf(open(sftp, '/d', F.WRITE | F.CREAT | F.TRUNC)), STATUS.FAILURE);
    assert.equal(await statusOf(open(sftp, '/d', F.READ)), STATUS.FAILURE);
    // An abort before any byte leaves things as they were: the published file is back.
    const untouched = await open(sftp, '/p.txt', F.WRITE);
    await close(sftp, untouched);
    assert.equal(await fsp.readFile(host(server, 'p.txt'), 'utf8'), 'New!abcd');
  });
});

test('CLOSE answers only after onUploadCommitted; if it fails the client gets FAILURE', async () => {
  let release!: () => void;
  let fail = false;
  const seen: string[] = [];
  const onUploadCommitted = async (t: { path: string }) => {
    seen.push(t.path);
    await new Promise<void>((resolve) => (release = resolve));
    if (fail) throw new Error('queue away');
  };
  await withSftp({ onUploadCommitted }, async (sftp, server) => {
    const h = await open(sftp, '/e.txt', F.WRITE | F.CREAT | F.TRUNC);
    await write(sftp, h, Buffer.from('x'), 0);
    let closed = false;
    const closing = close(sftp, h).then(() => (closed = true));
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(await fsp.readFile(host(server, 'e.txt'), 'utf8'), 'x', 'published before the hook runs');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed, false, 'CLOSE waits for the hook');
    release();
    await closing;

    fail = true;
    const h2 = await open(sftp, '/f.txt', F.WRITE | F.CREAT | F.TRUNC);
    const failing = statusOf(close(sftp, h2));
    while (seen.length < 2) await new Promise((r) => setTimeout(r, 5));
    release();
    assert.equal(await failing, STATUS.FAILURE);
    assert.equal(server.transfers.at(-1)!.result, 'failed');
    assert.ok(server.logs.some((l) => l.level === 'error' && l.fields.hook === 'onUploadCommitted'));
  });
});

test('FSETSTAT times on an upload are applied when it is published; uid/gid refused, size cuts the partial, mode ignored', async () => {
  await withSftp({}, async (sftp, server) => {
    const h = await open(sftp, '/t.txt', F.WRITE | F.CREAT | F.TRUNC);
    await write(sftp, h, Buffer.from('timed'), 0);
    await call((cb) => sftp.futimes(h, 1_000_000_000, 1_000_000_000, cb));
    assert.equal(await statusOf(call((cb) => sftp.fsetstat(h, { uid: 0, gid: 0 }, cb))), STATUS.PERMISSION_DENIED);
    await call((cb) => sftp.fsetstat(h, { size: 3 }, cb)); // OpenSSH's scp after an in-place write
    await call((cb) => sftp.fchmod(h, 0o777, cb));
    await close(sftp, h);
    assert.equal(await fsp.readFile(host(server, 't.txt'), 'utf8'), 'tim');
    const st = await fsp.stat(host(server, 't.txt'));
    assert.equal(st.mtime.getTime(), 1_000_000_000_000);
    assert.notEqual(st.mode & 0o777, 0o777, 'mode changes are ignored');
  });
});

test('reads: EOF past the end, a READ elsewhere repositions, FSTAT of each handle kind', async () => {
  await withSftp({}, async (sftp, server) => {
    const data = randomBytes(300_000);
    await fsp.writeFile(host(server, 'r.bin'), data);
    const h = await open(sftp, '/r.bin', F.READ);
    const buf = Buffer.alloc(10);
    const at = (pos: number) => call<number>((cb) => sftp.read(h, buf, 0, 10, pos, (err, n) => cb(err, n)));
    assert.equal(await at(250_000), 10);
    assert.deepEqual(buf, data.subarray(250_000, 250_010));
    assert.equal(await at(5), 10);
    assert.deepEqual(buf, data.subarray(5, 15));
    assert.equal(await at(299_995), 5);
    assert.equal(await at(300_000), 0, 'EOF (ssh2 reports it as 0 bytes read)');
    assert.equal((await call<{ size: number }>((cb) => sftp.fstat(h, cb))).size, 300_000);
    await close(sftp, h);
    const w = await open(sftp, '/w.bin', F.WRITE | F.CREAT | F.TRUNC);
    await write(sftp, w, Buffer.from('abc'), 7);
    assert.equal((await call<{ size: number }>((cb) => sftp.fstat(w, cb))).size, 10);
    await close(sftp, w);
    assert.deepEqual(server.transfers.find((t) => t.direction === 'download')!.bytes, 25);
  });
});

test('handles: a capped table, unknown handles and wrong kinds are FAILURE, fsync@openssh.com on an upload', async () => {
  await withSftp({}, async (sftp, server) => {
    await fsp.writeFile(host(server, 'x'), 'x');
    const handles = await Promise.all(Array.from({ length: LIMITS.maxOpenHandles }, () => open(sftp, '/x', F.READ)));
    assert.equal(await statusOf(open(sftp, '/x', F.READ)), STATUS.FAILURE);
    assert.equal(await statusOf(call((cb) => sftp.opendir('/', cb))), STATUS.FAILURE);
    await Promise.all(handles.map((h) => close(sftp, h)));
    assert.equal(await statusOf(close(sftp, handles[0])), STATUS.FAILURE, 'closed twice');
    assert.equal(await statusOf(close(sftp, Buffer.from('bogus-handle'))), STATUS.FAILURE);
    const w = await open(sftp, '/y', F.WRITE | F.CREAT | F.TRUNC);
    assert.equal(await statusOf(read(sftp, w, 10, 0)), STATUS.FAILURE);
    const r = await open(sftp, '/x', F.READ);
    assert.equal(await statusOf(write(sftp, r, Buffer.from('no'), 0)), STATUS.FAILURE);
    await write(sftp, w, Buffer.from('synced'), 0);
    await call((cb) => sftp.ext_openssh_fsync(w, cb));
    await close(sftp, w);
    await close(sftp, r);
    assert.equal(await fsp.readFile(host(server, 'y'), 'utf8'), 'synced');
  });
});
