import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireZeroCopy, skipWithoutAddon } from '../../../test/support/zeroCopy';
import { lendSocket, loadZeroCopy, MoveError, writeFlushed, type ZeroCopy } from './index';

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A connected pair of real loopback TCP sockets: `server` is the accepted side (what the FTP server holds). */
async function socketPair(): Promise<{ server: Socket; client: Socket; close(): void }> {
  const listener: Server = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as { port: number }).port;
  const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
  const client = connect(port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  const server = await accepted;
  listener.close();
  for (const s of [server, client]) s.on('error', () => {});
  return { server, client, close: () => (server.destroy(), client.destroy()) };
}

/** Reads everything `socket` receives until its end. */
function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks))));
}

test('loadZeroCopy returns null, saying why, when the .node file is absent', () => {
  let reason = '';
  assert.equal(loadZeroCopy({ file: '/nonexistent/zero_copy.node', onUnavailable: (r) => (reason = r) }), null);
  assert.match(reason, /missing/);
});

describe('zero-copy addon', { skip: skipWithoutAddon }, () => {
  let zc: ZeroCopy;
  let dir: string;
  before(() => {
    zc = requireZeroCopy();
    dir = mkdtempSync(join(tmpdir(), 'zero-copy-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('sendFile moves a file range to a socket, byte for byte, from an offset', async () => {
    const data = randomBytes(9 * MiB + 12345);
    const file = join(dir, 'send');
    writeFileSync(file, data);
    const fd = openSync(file, 'r');
    const { server, client } = await socketPair();
    const received = readAll(client);
    const lent = lendSocket(server)!;
    let progressed = 0;
    const result = await zc.sendFile(fd, lent.fd, 1000, data.length - 1000, { onProgress: (n) => (progressed += n) });
    lent.giveBack();
    server.end();
    closeSync(fd);
    assert.deepEqual(result, { bytes: data.length - 1000, end: 'done' });
    assert.equal(progressed, result.bytes, 'progress calls add up to the total');
    assert.equal(sha256(await received), sha256(data.subarray(1000)));
  });

  test('sendFile waits out EAGAIN on a slow reader (non-blocking socket) and reports progress meanwhile', async () => {
    const data = randomBytes(8 * MiB);
    const file = join(dir, 'slow');
    writeFileSync(file, data);
    const fd = openSync(file, 'r');
    const { server, client } = await socketPair();
    // The reader takes 64 KiB, then pauses 10 ms, over and over: the socket buffer fills and sendfile hits EAGAIN.
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => {
      chunks.push(c);
      client.pause();
      setTimeout(() => client.resume(), 10);
    });
    const closed = new Promise((resolve) => client.once('close', resolve));
    const lent = lendSocket(server)!;
    const progress: number[] = [];
    const result = await zc.sendFile(fd, lent.fd, 0, data.length, { progressMs: 50, onProgress: (n) => progress.push(n) });
    lent.giveBack();
    server.end();
    await closed;
    closeSync(fd);
    assert.equal(result.bytes, data.length);
    assert.ok(progress.length > 3, `progress reported while waiting (${progress.length} calls)`);
    assert.equal(sha256(Buffer.concat(chunks)), sha256(data));
  });

  test('a cancelled sendFile stops at once and counts exactly the bytes the socket took', async () => {
    const data = randomBytes(64 * MiB);
    const file = join(dir, 'cancel');
    writeFileSync(file, data);
    const fd = openSync(file, 'r');
    const { server, client } = await socketPair();
    client.pause(); // reads nothing: the move blocks in poll once the buffers are full
    const lent = lendSocket(server)!;
    const controller = new AbortController();
    const moving = zc.sendFile(fd, lent.fd, 0, data.length, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const cancelledAt = Date.now();
    controller.abort();
    const err = (await moving.then(
      () => assert.fail('should be cancelled'),
      (e: unknown) => e,
    )) as MoveError;
    assert.ok(Date.now() - cancelledAt < 500, 'stopped promptly');
    assert.ok(err instanceof MoveError);
    assert.equal(err.name, 'AbortError');
    assert.ok(err.bytes > 0 && err.bytes < data.length, `some bytes moved (${err.bytes})`);
    lent.giveBack();
    server.end();
    const received = await readAll(client.resume());
    closeSync(fd);
    assert.equal(received.length, err.bytes, 'what the client gets is what the move counted');
    assert.equal(sha256(received), sha256(data.subarray(0, err.bytes)));
  });

  test('sendFile of a range past the end of the file ends early with eof and the bytes there were', async () => {
    const file = join(dir, 'short');
    writeFileSync(file, randomBytes(1000));
    const fd = openSync(file, 'r');
    const { server, client } = await socketPair();
    const received = readAll(client);
    const lent = lendSocket(server)!;
    const result = await zc.sendFile(fd, lent.fd, 400, 5000);
    lent.giveBack();
    server.end();
    closeSync(fd);
    assert.deepEqual(result, { bytes: 600, end: 'eof' });
    assert.equal((await received).length, 600);
  });

  test('sendFile to a socket whose peer is gone fails with the errno and the bytes it moved', async () => {
    const file = join(dir, 'gone');
    writeFileSync(file, randomBytes(32 * MiB));
    const fd = openSync(file, 'r');
    const { server, client } = await socketPair();
    const lent = lendSocket(server)!; // before the reset: Node would see it and close the socket
    client.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const err = (await zc.sendFile(fd, lent.fd, 0, 32 * MiB).catch((e: unknown) => e)) as MoveError;
    lent.giveBack();
    server.destroy();
    closeSync(fd);
    assert.ok(err instanceof MoveError, String(err));
    assert.match(err.code, /^(EPIPE|ECONNRESET)$/);
    assert.equal(typeof err.bytes, 'number');
  });

  test('spliceToFile writes what the socket sends at a file offset, keeping the bytes before it', async () => {
    const prefix = randomBytes(5000);
    const data = randomBytes(7 * MiB + 333);
    const file = join(dir, 'upload');
    writeFileSync(file, prefix);
    const fd = openSync(file, 'r+');
    const { server, client } = await socketPair();
    const lent = lendSocket(server)!;
    const receiving = zc.spliceToFile(lent.fd, fd, prefix.length, {});
    client.end(data);
    const result = await receiving;
    lent.giveBack();
    server.destroy();
    closeSync(fd);
    assert.deepEqual(result, { bytes: data.length, end: 'eof' });
    assert.equal(sha256(readFileSync(file)), sha256(Buffer.concat([prefix, data])));
  });

  test('a cancelled spliceToFile stores every byte it took from the socket, and counts them exactly', async () => {
    const file = join(dir, 'upload-cancel');
    writeFileSync(file, '');
    const fd = openSync(file, 'r+');
    const { server, client } = await socketPair();
    const lent = lendSocket(server)!;
    const controller = new AbortController();
    let progressed = 0;
    const receiving = zc.spliceToFile(lent.fd, fd, 0, { signal: controller.signal, onProgress: (n) => (progressed += n) });
    const sent = randomBytes(3 * MiB);
    client.write(sent); // and the connection stays open: only the cancel ends the move
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort();
    const err = (await receiving.catch((e: unknown) => e)) as MoveError;
    lent.giveBack();
    server.destroy();
    client.destroy();
    closeSync(fd);
    assert.equal(err.name, 'AbortError');
    const stored = readFileSync(file);
    assert.equal(err.bytes, stored.length, 'bytes counted = bytes in the file');
    assert.equal(progressed, err.bytes);
    assert.equal(sha256(stored), sha256(sent.subarray(0, stored.length)));
    assert.equal(stored.length, sent.length, 'all sent bytes had arrived within 300 ms on loopback');
  });

  test('spliceToSocket relays one socket into another until EOF (the relay)', async () => {
    const a = await socketPair();
    const b = await socketPair();
    const data = randomBytes(11 * MiB + 7);
    const from = lendSocket(a.server)!;
    const to = lendSocket(b.server)!;
    const received = readAll(b.client);
    const relaying = zc.spliceToSocket(from.fd, to.fd);
    a.client.end(data);
    const result = await relaying;
    from.giveBack();
    to.giveBack();
    b.server.end();
    assert.deepEqual(result, { bytes: data.length, end: 'eof' });
    assert.equal(sha256(await received), sha256(data));
    a.close();
    b.close();
  });

  test('lendSocket hands over what Node had already read, and Node reads nothing more while it is lent', async () => {
    const { server, client } = await socketPair();
    const first = randomBytes(3000);
    client.write(first);
    await new Promise((resolve) => server.once('readable', resolve)); // Node has read `first` into its buffer
    const lent = lendSocket(server)!;
    assert.equal(Buffer.concat(lent.buffered).toString('hex'), first.toString('hex'));
    const rest = randomBytes(100_000);
    client.end(rest);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(server.read(), null, 'Node did not read while lent');
    const file = join(dir, 'lent');
    writeFileSync(file, '');
    const fd = openSync(file, 'r+');
    const result = await zc.spliceToFile(lent.fd, fd, 0);
    closeSync(fd);
    lent.giveBack();
    server.destroy();
    assert.equal(result.bytes, rest.length);
    assert.equal(sha256(readFileSync(file)), sha256(rest));
  });

  test('lendSocket refuses a socket with writes still queued, and writeFlushed waits for them', async () => {
    const { server, client } = await socketPair();
    client.pause();
    server.write(Buffer.alloc(64 * MiB)); // far more than the socket buffers take
    assert.equal(lendSocket(server), null);
    client.resume();
    await writeFlushed(server, [Buffer.from('x')]);
    assert.notEqual(lendSocket(server), null);
    server.destroy();
    client.destroy();
  });
});
