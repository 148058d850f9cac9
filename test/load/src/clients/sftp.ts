import { Socket } from 'node:net';
import ssh2, { type SFTPWrapper } from 'ssh2';
import { bounded, CHUNK, contentAt, loadError, reset, type ConnectArgs, type Session, type UploadOptions } from './session';

/**
 * A partner's SFTP session on ssh2's client, with pipelined reads and writes as OpenSSH's sftp does (it keeps 64
 * requests of 32 KiB in flight), so that a long link measures the server, not a stop-and-wait client.
 */

const REQUEST = 32 * 1024;
const IN_FLIGHT = 64;

/** Calls an ssh2 callback API as a promise. */
function call<T>(fn: (cb: (err: Error | undefined | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

export async function connectSftp(a: ConnectArgs): Promise<Session> {
  const sock = new Socket();
  a.meter.track(sock);
  const conn = new ssh2.Client();
  conn.on('error', () => {}); // every operation below fails on its own; the client must not throw unhandled
  sock.on('error', () => {});
  const destroy = () => {
    reset(sock);
    conn.end();
  };
  const moved = () => sock.bytesWritten + sock.bytesRead;

  const sftp = await bounded(
    'login',
    async () => {
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve).once('error', reject);
        sock.connect(a.port, a.host);
      });
      await new Promise<void>((resolve, reject) => {
        conn.once('ready', resolve).once('error', reject);
        conn.once('close', () => reject(loadError('ECONNRESET', 'SSH connection closed during login')));
        conn.connect({
          sock,
          username: a.login.user,
          password: a.login.password,
          privateKey: a.login.privateKey,
          readyTimeout: a.timeouts.connect,
          // Our own test servers' host keys: the load generator does not pin them.
          hostVerifier: () => true,
        });
      });
      return call<SFTPWrapper>((cb) => conn.sftp(cb));
    },
    { signal: a.signal, timeoutMs: a.timeouts.connect, kill: destroy },
  );

  const run = <T>(what: string, op: () => Promise<T>, transfer = false) =>
    bounded(what, op, { signal: a.signal, timeoutMs: transfer ? a.timeouts.stall : a.timeouts.operation, kill: destroy, progress: transfer ? moved : undefined });

  /** The bytes at `pos` of what an upload sends: its own contents, or slices of the thread's block. */
  const sliceFor = (options: UploadOptions) => {
    const { content, from = 0 } = options;
    if (content) return (pos: number, len: number) => content.at(from + pos, len);
    return (pos: number, len: number) => {
      const chunkStart = pos - (pos % CHUNK);
      return contentAt(chunkStart, CHUNK).subarray(pos - chunkStart, pos - chunkStart + len);
    };
  };

  /** Writes `bytes` bytes of content (`slice`) at `offset`, IN_FLIGHT requests at a time. */
  async function writeAll(handle: Buffer, offset: number, bytes: number, slice: (pos: number, len: number) => Buffer): Promise<void> {
    const pending = new Set<Promise<void>>();
    for (let pos = 0; pos < bytes; pos += REQUEST) {
      const len = Math.min(REQUEST, bytes - pos);
      const data = slice(pos, len);
      const p: Promise<void> = call<void>((cb) => sftp.write(handle, data, 0, len, offset + pos, cb)).then(() => void pending.delete(p));
      p.catch(() => {}); // the race or the final all() reports it
      pending.add(p);
      if (pending.size >= IN_FLIGHT) await Promise.race(pending);
    }
    await Promise.all(pending);
  }

  /**
   * Reads `size` bytes, IN_FLIGHT requests at a time, into one scratch buffer (the content is not kept) or, with
   * `onData`, into a buffer of the file's size that `onData` then sees whole (replies may come in any order).
   */
  async function readAll(handle: Buffer, size: number, onData?: (chunk: Buffer) => void): Promise<number> {
    const scratch = Buffer.allocUnsafe(REQUEST);
    const whole = onData ? Buffer.alloc(size) : undefined;
    let received = 0;
    const readAt = async (pos: number, len: number): Promise<void> => {
      const [buffer, at] = whole ? [whole, pos] : [scratch, 0];
      const n = await new Promise<number>((resolve, reject) => sftp.read(handle, buffer, at, len, pos, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))));
      received += n;
      if (n === 0) throw loadError('SHORT_READ', `download: end of file at ${pos} of ${size} bytes`);
      if (n < len) await readAt(pos + n, len - n); // a short read: ask for the rest
    };
    const pending = new Set<Promise<void>>();
    for (let pos = 0; pos < size; pos += REQUEST) {
      const p: Promise<void> = readAt(pos, Math.min(REQUEST, size - pos)).then(() => void pending.delete(p));
      p.catch(() => {});
      pending.add(p);
      if (pending.size >= IN_FLIGHT) await Promise.race(pending);
    }
    await Promise.all(pending);
    if (whole) onData!(whole);
    return received;
  }

  return {
    list: (dir) => run('list', async () => (await call<{ filename: string }[]>((cb) => sftp.readdir(dir, cb))).map((e) => e.filename)),
    async upload(path, bytes, options = {}) {
      const cutAfter = options.cutAfter;
      await run(
        cutAfter === undefined ? 'upload' : 'upload (to be cut)',
        async () => {
          const handle = await call<Buffer>((cb) => sftp.open(path, options.append ? 'a' : 'w', cb));
          const offset = options.append ? (await call<{ size: number }>((cb) => sftp.fstat(handle, cb))).size : 0;
          await writeAll(handle, offset, cutAfter ?? bytes, sliceFor(options));
          // Cut: a session that ends with an upload open aborts it and keeps the partial.
          if (cutAfter === undefined) await call<void>((cb) => sftp.close(handle, cb));
        },
        true,
      );
      if (cutAfter !== undefined) destroy();
    },
    size: (path) => run('size', async () => (await call<{ size: number }>((cb) => sftp.stat(path, cb))).size),
    download: (path, options = {}) =>
      run(
        'download',
        async () => {
          const handle = await call<Buffer>((cb) => sftp.open(path, 'r', cb));
          const { size } = await call<{ size: number }>((cb) => sftp.fstat(handle, cb));
          const received = await readAll(handle, size, options.onData);
          await call<void>((cb) => sftp.close(handle, cb));
          return received;
        },
        true,
      ),
    remove: (path) => run('delete', () => call<void>((cb) => sftp.unlink(path, cb))),
    async mkdir(dir) {
      const parts = dir.split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) await run('mkdir', () => call<void>((cb) => sftp.mkdir(parts.slice(0, i).join('/'), cb)).catch(() => {}));
    },
    async close() {
      await run('close', async () => {
        const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
        sftp.end();
        conn.end();
        await closed;
      }).finally(() => sock.destroy());
    },
    destroy,
  };
}
