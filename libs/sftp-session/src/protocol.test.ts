// Raw SFTP packets over an ssh2 `sftp` subsystem channel: the VERSION reply's extensions, extended requests, clamped
// reads, malformed input, and flow control against clients that send faster than the disk or never read.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import type { Storage, Upload } from '@ftp/storage';
import { FLOW, LIMITS } from './limits';
import { WINDOW_STEP } from './ssh2Hooks';
import { STATUS } from './status';
import { connectSftp, startTestServer, type TestServer, type TestServerOptions } from './testServer';

const T = { INIT: 1, VERSION: 2, OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, STATUS: 101, HANDLE: 102, DATA: 103, NAME: 104, EXTENDED: 200, EXTENDED_REPLY: 201 };

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u32(b.length), b]);
};

interface Packet {
  type: number;
  body: Buffer;
  /** Request id (all replies but VERSION). */
  id: number;
}

/** An ssh2 client's raw `sftp` subsystem channel with a packet framer. */
async function rawChannel(server: TestServer) {
  const { client } = await connectSftp(server); // a logged-in connection; its own SFTP channel is left alone
  const stream = await new Promise<ClientChannel>((resolve, reject) => client.subsys('sftp', (err, s) => (err ? reject(err) : resolve(s))));
  let pending = Buffer.alloc(0);
  const packets: Packet[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  stream.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const len = pending.readUInt32BE(0);
      const type = pending[4];
      const body = pending.subarray(5, 4 + len);
      packets.push({ type, body, id: type === T.VERSION ? -1 : body.readUInt32BE(0) });
      pending = pending.subarray(4 + len);
    }
    wake?.();
  });
  stream.on('close', () => {
    closed = true;
    wake?.();
  });
  let nextId = 1;
  return {
    client,
    stream,
    isClosed: () => closed,
    /** Send a packet; returns its request id. */
    send(type: number, ...parts: Buffer[]): number {
      const id = nextId++;
      const body = Buffer.concat(type === T.INIT ? parts : [u32(id), ...parts]);
      stream.write(Buffer.concat([u32(body.length + 1), Buffer.from([type]), body]));
      return id;
    },
    async next(): Promise<Packet> {
      while (packets.length === 0) {
        if (closed) throw new Error('channel closed');
        await new Promise<void>((resolve) => (wake = resolve));
      }
      return packets.shift()!;
    },
    async init(): Promise<Packet> {
      this.send(T.INIT, u32(3));
      return this.next();
    },
  };
}

async function withRaw(options: TestServerOptions, run: (raw: Awaited<ReturnType<typeof rawChannel>>, server: TestServer) => Promise<void>) {
  const server = await startTestServer(options);
  const raw = await rawChannel(server);
  try {
    await run(raw, server);
  } finally {
    raw.client.end();
    await server.stop();
  }
}

/** The (name, data) pairs after the version number of a VERSION reply. */
function extensionsOf(version: Packet): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 4;
  const read = () => {
    const len = version.body.readUInt32BE(p);
    const s = version.body.subarray(p + 4, p + 4 + len).toString();
    p += 4 + len;
    return s;
  };
  while (p < version.body.length) out[read()] = read();
  return out;
}

const statusCode = (reply: Packet) => (reply.type === T.STATUS ? reply.body.readUInt32BE(4) : -1);

test('VERSION lists our extensions; limits@openssh.com, expand-path, hardlink, unknown and malformed extended requests', async () => {
  await withRaw({}, async (raw) => {
    const version = await raw.init();
    assert.equal(version.type, T.VERSION);
    assert.equal(version.body.readUInt32BE(0), 3);
    assert.deepEqual(extensionsOf(version), {
      'posix-rename@openssh.com': '1',
      'fsync@openssh.com': '1',
      'limits@openssh.com': '1',
      'expand-path@openssh.com': '1',
      'statvfs@openssh.com': '2',
      'fstatvfs@openssh.com': '2',
    });

    raw.send(T.EXTENDED, str('limits@openssh.com'));
    const limits = await raw.next();
    assert.equal(limits.type, T.EXTENDED_REPLY);
    const values = [0, 1, 2, 3].map((i) => Number(limits.body.readBigUInt64BE(4 + 8 * i)));
    assert.deepEqual(values, [256 * 1024, 255 * 1024, 255 * 1024, LIMITS.maxOpenHandles]);

    raw.send(T.EXTENDED, str('expand-path@openssh.com'), str('~/in/../out'));
    const expanded = await raw.next();
    assert.equal(expanded.type, T.NAME);
    assert.equal(expanded.body.readUInt32BE(4), 1);
    assert.equal(expanded.body.subarray(12, 12 + expanded.body.readUInt32BE(8)).toString(), '/out');

    raw.send(T.EXTENDED, str('hardlink@openssh.com'), str('/a'), str('/b'));
    assert.equal(statusCode(await raw.next()), STATUS.OP_UNSUPPORTED);
    raw.send(T.EXTENDED, str('copy-data'), str('x'));
    assert.equal(statusCode(await raw.next()), STATUS.OP_UNSUPPORTED);
    raw.send(T.EXTENDED, str('posix-rename@openssh.com'), Buffer.from([0, 0, 0, 99, 1]));
    assert.equal(statusCode(await raw.next()), STATUS.BAD_MESSAGE);
    raw.send(T.EXTENDED, str('fsync@openssh.com'), str('nope'));
    assert.equal(statusCode(await raw.next()), STATUS.FAILURE, 'invalid handle');
  });
});

test('a READ longer than the advertised maximum gets a short DATA reply of the maximum', async () => {
  await withRaw({}, async (raw, server) => {
    await fsp.writeFile(path.join(server.root, 'big'), Buffer.alloc(1024 * 1024, 7));
    await raw.init();
    raw.send(T.OPEN, str('/big'), u32(0x01), u32(0));
    const handle = await raw.next();
    assert.equal(handle.type, T.HANDLE);
    const h = handle.body.subarray(8, 8 + handle.body.readUInt32BE(4));
    raw.send(T.READ, str(h), u64(0), u32(100 * 1024 * 1024));
    const data = await raw.next();
    assert.equal(data.type, T.DATA);
    assert.equal(data.body.readUInt32BE(4), LIMITS.maxReadLength);
    raw.send(T.READ, str(h), u64(2 ** 60), u32(10));
    assert.equal(statusCode(await raw.next()), STATUS.FAILURE, 'an offset past 2^53 is refused');
  });
});

test('an unknown packet type or an oversized packet closes the channel with a log line; the server goes on', async () => {
  const server = await startTestServer();
  try {
    for (const bad of [Buffer.from([0, 0, 0, 5, 99, 0, 0, 0, 1]), Buffer.concat([u32(10 * 1024 * 1024), Buffer.from([T.WRITE])])]) {
      const raw = await rawChannel(server);
      await raw.init();
      raw.stream.write(bad);
      while (!raw.isClosed()) await new Promise((r) => setTimeout(r, 5));
      raw.client.end();
    }
    assert.equal(server.logs.filter((l) => l.fields.event === 'sftp-protocol-error').length, 2);
    const raw = await rawChannel(server);
    assert.equal((await raw.init()).type, T.VERSION, 'still serving');
    raw.client.end();
  } finally {
    await server.stop();
  }
});

/** Peek at the server stream's queue of replies waiting for the client's window (ssh2 internals, see ssh2Hooks). */
const queuedReplyBytes = (sftp: SFTPWrapper) => (sftp as unknown as { _buffer: Buffer[] })._buffer.reduce((n, b) => n + b.length, 0);

test('a client that floods READs and never reads the replies holds the server to a bounded backlog', async () => {
  let serverSide: SFTPWrapper | undefined;
  await withRaw({ onStream: (s) => (serverSide = s) }, async (raw, server) => {
    await fsp.writeFile(path.join(server.root, 'big'), Buffer.alloc(64 * 1024 * 1024, 1));
    await raw.init();
    raw.send(T.OPEN, str('/big'), u32(0x01), u32(0));
    const handle = await raw.next();
    const h = handle.body.subarray(8, 8 + handle.body.readUInt32BE(4));
    raw.stream.pause(); // stop reading: the client's window closes once 2 MiB are buffered
    // The ssh2 server stream of this channel is the last one accepted.
    for (let i = 0; i < 256; i++) raw.send(T.READ, str(h), u64(i * LIMITS.maxReadLength), u32(LIMITS.maxReadLength));
    let max = 0;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 10));
      max = Math.max(max, queuedReplyBytes(serverSide!));
    }
    assert.ok(max > 0, 'replies did pile up');
    assert.ok(max <= FLOW.maxOutboundBacklog + 2 * LIMITS.maxReadLength, `at most ~${FLOW.maxOutboundBacklog} queued, saw ${max}`);
    // Reading again drains it all, in order.
    raw.stream.resume();
    for (let i = 0; i < 256; i++) {
      const reply = await raw.next();
      assert.equal(reply.type, T.DATA, `reply ${i}`);
    }
  });
});

test('a client that sends WRITEs faster than the disk takes them is held back by the SSH window', async () => {
  let arrived = 0;
  let written = 0;
  let maxBacklog = 0;
  const rate = 16 * 1024 * 1024; // bytes per second the "disk" takes
  const slowDisk = (storage: Storage): Storage => ({
    ...storage,
    async openUpload(p, start) {
      const upload = await storage.openUpload(p, start);
      const writeAt: Upload['writeAt'] = async (offset, data) => {
        const bytes = (data as Uint8Array[]).reduce((n, d) => n + d.length, 0);
        await new Promise((resolve) => setTimeout(resolve, (bytes / rate) * 1000));
        await upload.writeAt(offset, data);
        written += bytes;
      };
      return { ...upload, writeAt };
    },
  });
  const onStream = (s: SFTPWrapper) =>
    s.prependListener('WRITE', (_id: number, _h: Buffer, _o: number, data: Buffer) => {
      arrived += data.length;
      maxBacklog = Math.max(maxBacklog, arrived - written);
    });
  await withRaw({ wrapStorage: slowDisk, onStream }, async (raw, server) => {
    await raw.init();
    raw.send(T.OPEN, str('/flood'), u32(0x02 | 0x08 | 0x10), u32(0));
    const handle = await raw.next();
    const h = handle.body.subarray(8, 8 + handle.body.readUInt32BE(4));
    const chunk = Buffer.alloc(LIMITS.maxWriteLength, 3);
    const count = 160; // 40 MiB, all sent at once
    for (let i = 0; i < count; i++) raw.send(T.WRITE, str(h), u64(i * chunk.length), str(chunk));
    for (let i = 0; i < count; i++) assert.equal(statusCode(await raw.next()), STATUS.OK);
    raw.send(T.CLOSE, str(h));
    assert.equal(statusCode(await raw.next()), STATUS.OK);
    assert.equal((await fsp.stat(path.join(server.root, 'flood'))).size, count * chunk.length);
    const bound = FLOW.maxWriteBacklog + 2 * 1024 * 1024 + 2 * LIMITS.maxPacketLength; // + the SSH window in flight
    assert.ok(maxBacklog <= bound, `backlog ${maxBacklog} over ${bound}`);
    assert.ok(maxBacklog >= FLOW.maxWriteBacklog / 2, `the test did build a backlog (${maxBacklog})`);
  });
});

test('the SSH window is re-opened every WINDOW_STEP bytes, not only once half of it is used', async () => {
  // ssh2 alone re-opens at half (1 MiB), which on a long link settles at ~1 MiB in flight per round trip.
  await withRaw({}, async (raw) => {
    await raw.init();
    raw.send(T.OPEN, str('/window'), u32(0x02 | 0x08 | 0x10), u32(0));
    const handle = await raw.next();
    const h = handle.body.subarray(8, 8 + handle.body.readUInt32BE(4));
    const credit = () => (raw.stream as unknown as { outgoing: { window: number } }).outgoing.window;
    const full = credit();
    const chunk = Buffer.alloc(LIMITS.maxWriteLength, 5);
    const count = 3; // 765 KiB: less than half the window
    for (let i = 0; i < count; i++) raw.send(T.WRITE, str(h), u64(i * chunk.length), str(chunk));
    for (let i = 0; i < count; i++) assert.equal(statusCode(await raw.next()), STATUS.OK);
    // The adjusts went out while the WRITEs were parsed, before their replies, on the same connection.
    assert.ok(full - credit() < WINDOW_STEP, `the client can send ${credit()} of ${full} bytes after ${count * chunk.length}: the window was not re-opened`);
    raw.send(T.CLOSE, str(h));
    assert.equal(statusCode(await raw.next()), STATUS.OK);
  });
});
