/**
 * A lean FTP client for benchmarks: raw `net` sockets, EPSV (or PASV) passive mode, TYPE I, no parsing beyond reply
 * codes. Every connection may come from a chosen local address (`localAddress`), as cluster benchmarks need.
 * Every wait is bounded by `timeoutMs`. Nothing is hashed or copied on the hot path: uploads write caller-owned
 * buffers, downloads only count bytes unless the caller asks to keep them (used for a few spot checks).
 */
import { connect, type Socket } from 'node:net';

export interface Reply {
  code: number;
  text: string;
}

export class FtpProtocolError extends Error {
  override name = 'FtpProtocolError';
}

interface Waiter {
  resolve(reply: Reply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const EPSV_PORT = /\(\|\|\|(\d+)\|\)/;
const PASV_ADDRESS = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/;

export interface FtpClientOptions {
  /** Source address of the control and every data connection (default: the kernel's choice). */
  localAddress?: string;
  /** How data connections are set up. Default EPSV (the data connection goes to the control connection's host). */
  passive?: 'EPSV' | 'PASV';
}

/** Opens a TCP connection, bounded by timeoutMs. */
export function dial(host: string, port: number, timeoutMs: number, localAddress?: string): Promise<Socket> {
  return settle(connect({ host, port, noDelay: true, localAddress }), host, port, timeoutMs);
}

function settle<T extends Socket>(socket: T, host: string, port: number, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
  });
}

/**
 * Data connections read into one shared scratch buffer (`onread`): no allocation per chunk, and up to 1 MiB per
 * read call, so downloads cost the client little CPU. The callback runs synchronously, so sharing is safe.
 */
const SCRATCH = Buffer.allocUnsafe(1024 * 1024);

/** A data connection that counts (and, with `keep`, copies) what it receives from the moment it connects. */
type DataSocket = Socket & { received: number; kept?: Buffer[] };

function dialData(host: string, port: number, timeoutMs: number, keep: boolean, localAddress?: string): Promise<DataSocket> {
  const holder: { socket?: DataSocket } = {};
  const socket = connect({
    host,
    port,
    localAddress,
    noDelay: true,
    onread: {
      buffer: SCRATCH,
      callback: (bytes: number, buffer: Uint8Array) => {
        const s = holder.socket!;
        s.received += bytes;
        if (s.kept) s.kept.push(Buffer.from(buffer.subarray(0, bytes))); // the scratch buffer is reused by the next read
        return true;
      },
    },
  }) as DataSocket;
  socket.received = 0;
  if (keep) socket.kept = [];
  holder.socket = socket;
  return settle(socket, host, port, timeoutMs);
}

/** Waits for the end of a data connection. */
function drain(socket: DataSocket, timeoutMs: number): Promise<{ bytes: number; data?: Buffer }> {
  return new Promise((resolve, reject) => {
    const done = () => {
      socket.destroy();
      resolve({ bytes: socket.received, data: socket.kept ? Buffer.concat(socket.kept) : undefined });
    };
    if (socket.readableEnded) return done();
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`data connection idle for ${timeoutMs} ms`)));
    socket.once('error', reject);
    socket.once('end', done);
  });
}

/** Writes `chunks` (with backpressure), then half-closes. Resolves when everything is handed to the kernel. */
async function pour(socket: Socket, source: Buffer | { chunk: Buffer; bytes: number }, timeoutMs: number): Promise<void> {
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`data connection stalled for ${timeoutMs} ms`)));
  let failure: Error | undefined;
  const onError = (err: Error) => (failure ??= err);
  socket.on('error', onError);
  const waitDrain = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  if (Buffer.isBuffer(source)) {
    socket.write(source);
  } else {
    const { chunk, bytes } = source;
    let left = bytes;
    while (left > 0) {
      if (failure || socket.destroyed) break;
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!socket.write(piece)) await waitDrain();
    }
  }
  if (failure || socket.destroyed) throw failure ?? new Error('data connection closed during upload');
  await new Promise<void>((resolve, reject) => {
    socket.end(() => resolve());
    socket.once('error', reject);
  });
}

/**
 * Splits a control connection's bytes into replies (RFC 959 multi-line aware) and hands them out in order.
 * Every wait is bounded; a failure of the connection rejects the pending and every later read.
 */
export class ReplyQueue {
  private buffer = '';
  private replies: Reply[] = [];
  private waiter?: Waiter;
  private failure?: Error;

  constructor(
    private readonly timeoutMs: number,
    /** What the next reply answers, for error messages. */
    private readonly awaited: () => string = () => 'the last command',
  ) {}

  feed(chunk: Buffer) {
    this.buffer += chunk.toString('latin1');
    for (;;) {
      const eol = this.buffer.indexOf('\r\n');
      if (eol < 0) return;
      let end = eol + 2;
      if (this.buffer.charCodeAt(3) === 45 /* '-' */) {
        const last = this.buffer.indexOf(`\r\n${this.buffer.slice(0, 3)} `, eol);
        if (last < 0) return;
        const lastEol = this.buffer.indexOf('\r\n', last + 2);
        if (lastEol < 0) return;
        end = lastEol + 2;
      }
      const reply = { code: Number(this.buffer.slice(0, 3)), text: this.buffer.slice(4, end - 2) };
      this.buffer = this.buffer.slice(end);
      const waiter = this.waiter;
      if (waiter) {
        this.waiter = undefined;
        clearTimeout(waiter.timer);
        waiter.resolve(reply);
      } else {
        this.replies.push(reply);
      }
    }
  }

  fail(err: Error) {
    this.failure ??= err;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      clearTimeout(waiter.timer);
      waiter.reject(this.failure);
    }
  }

  /** The next reply, in order. */
  read(): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no reply to ${this.awaited()} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }
}

/** One FTP control connection. */
export class FtpClient {
  private readonly replies: ReplyQueue;
  /** What the next reply answers, for error messages. */
  private last = 'greeting';

  private constructor(
    readonly socket: Socket,
    readonly host: string,
    readonly timeoutMs: number,
    readonly options: FtpClientOptions,
  ) {
    this.replies = new ReplyQueue(timeoutMs, () => this.last);
    socket.on('data', (chunk: Buffer) => this.replies.feed(chunk));
    socket.on('error', (err) => this.replies.fail(err));
    socket.on('close', () => this.replies.fail(new Error('control connection closed')));
  }

  /** Connects and reads the 220 greeting. */
  static async open(host: string, port: number, timeoutMs = 30_000, options: FtpClientOptions = {}): Promise<FtpClient> {
    const client = new FtpClient(await dial(host, port, timeoutMs, options.localAddress), host, timeoutMs, options);
    try {
      client.expect(await client.read(), 220, 'greeting');
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** The next reply, in order. */
  read(): Promise<Reply> {
    return this.replies.read();
  }

  send(line: string) {
    this.last = line.startsWith('PASS ') ? 'PASS' : line;
    this.socket.write(`${line}\r\n`);
  }

  expect(reply: Reply, codes: number | number[], what: string): Reply {
    const ok = Array.isArray(codes) ? codes.includes(reply.code) : reply.code === codes;
    if (!ok) throw new FtpProtocolError(`${what}: ${reply.code} ${reply.text}`);
    return reply;
  }

  async command(line: string, codes: number | number[]): Promise<Reply> {
    this.send(line);
    return this.expect(await this.read(), codes, line.startsWith('PASS ') ? 'PASS' : line);
  }

  async login(user: string, password: string) {
    await this.command(`USER ${user}`, 331);
    await this.command(`PASS ${password}`, 230);
  }

  /** EPSV (or PASV), then opens the data connection the server announced. */
  private async passive(keep = false): Promise<{ socket: Promise<DataSocket> }> {
    let host = this.host;
    let port: number;
    if (this.options.passive === 'PASV') {
      const reply = await this.command('PASV', 227);
      const m = PASV_ADDRESS.exec(reply.text);
      if (!m) throw new FtpProtocolError(`PASV reply without an address: ${reply.text}`);
      host = m.slice(1, 5).join('.');
      port = Number(m[5]) * 256 + Number(m[6]);
    } else {
      const reply = await this.command('EPSV', 229);
      const match = EPSV_PORT.exec(reply.text);
      if (!match) throw new FtpProtocolError(`EPSV reply without a port: ${reply.text}`);
      port = Number(match[1]);
    }
    const socket = dialData(host, port, this.timeoutMs, keep, this.options.localAddress);
    socket.catch(() => undefined); // surfaced by whoever awaits it
    return { socket }; // wrapped: an async function would otherwise wait for the connection here
  }

  /** A transfer that reads from the data connection (RETR, LIST, NLST). */
  private async receive(command: string, keep: boolean): Promise<{ bytes: number; data?: Buffer }> {
    const connecting = (await this.passive(keep)).socket;
    this.send(command);
    let socket: DataSocket | undefined;
    try {
      const opened = Promise.all([connecting, this.read()]);
      const [s, preliminary] = await opened;
      socket = s;
      this.expect(preliminary, [125, 150], command);
      const [result, final] = await Promise.all([drain(socket, this.timeoutMs), this.read()]);
      this.expect(final, 226, command);
      return result;
    } catch (err) {
      socket?.destroy();
      connecting.then((s) => s.destroy(), () => undefined);
      throw err;
    }
  }

  /** RETR; `keep` returns the bytes (for spot checks), otherwise only the count. */
  retr(path: string, keep = false) {
    return this.receive(`RETR ${path}`, keep);
  }

  list(path = '') {
    return this.receive(path ? `LIST ${path}` : 'LIST', true);
  }

  /** STOR of one buffer, or of `bytes` bytes made by repeating `chunk`. Resolves on the 226. */
  async stor(path: string, source: Buffer | { chunk: Buffer; bytes: number }): Promise<void> {
    const connecting = (await this.passive()).socket;
    this.send(`STOR ${path}`);
    let socket: Socket | undefined;
    try {
      const [s, preliminary] = await Promise.all([connecting, this.read()]);
      socket = s;
      this.expect(preliminary, [125, 150], `STOR ${path}`);
      await pour(socket, source, this.timeoutMs);
      this.expect(await this.read(), 226, `STOR ${path}`);
    } catch (err) {
      connecting.then((s) => s.destroy(), () => undefined);
      throw err;
    } finally {
      socket?.destroy();
    }
  }

  async quit() {
    try {
      await this.command('QUIT', 221);
    } finally {
      this.close();
    }
  }

  close() {
    this.socket.destroy();
  }
}
