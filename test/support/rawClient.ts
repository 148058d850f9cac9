import { connect, type Socket } from 'node:net';

/**
 * A minimal FTP control connection for tests that must send exact bytes (bad input, pipelining, Telnet) and read
 * replies as the server framed them.
 */
/** Buffers what the server sends and hands out complete replies; shared by the plain and the FTPS test clients. */
export class ReplyReader {
  private buffer = '';
  private waiters: (() => void)[] = [];
  closed = false;

  feed(text: string) {
    this.buffer += text;
    this.wake();
  }

  end() {
    this.closed = true;
    this.wake();
  }

  /** Replies received but not yet read, raw. */
  get pending(): string {
    return this.buffer;
  }

  /** Next complete reply (multi-line aware): { code, text (all lines) }. Rejects on timeout or close. */
  async next(timeoutMs = 5000): Promise<{ code: number; text: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = takeReply(this.buffer);
      if (parsed) {
        this.buffer = this.buffer.slice(parsed.length);
        return { code: parsed.code, text: parsed.text };
      }
      if (this.closed) throw new Error(`connection closed; pending: ${JSON.stringify(this.buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; pending: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves when the server closes the connection. */
  async waitClosed(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

export class RawClient {
  private readonly replies = new ReplyReader();

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.replies.feed(text));
    socket.on('close', () => this.replies.end());
    socket.on('error', () => {});
  }

  get closed(): boolean {
    return this.replies.closed;
  }

  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    const socket = connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  send(line: string | Buffer) {
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line);
  }

  /** Next complete reply (multi-line aware). Rejects on timeout or close. */
  reply(timeoutMs?: number): Promise<{ code: number; text: string }> {
    return this.replies.next(timeoutMs);
  }

  /** Sends a command and returns its reply. */
  async command(line: string, timeoutMs?: number) {
    this.send(line);
    return this.reply(timeoutMs);
  }

  async login(user: string, password: string) {
    const greeting = await this.reply();
    if (greeting.code !== 220) throw new Error(`greeting ${greeting.code}`);
    const u = await this.command(`USER ${user}`);
    if (u.code !== 331) throw new Error(`USER → ${u.code}`);
    const p = await this.command(`PASS ${password}`);
    if (p.code !== 230) throw new Error(`PASS → ${p.code} ${p.text}`);
  }

  /** Resolves when the server closes the connection. */
  waitClosed(timeoutMs?: number) {
    return this.replies.waitClosed(timeoutMs);
  }

  close() {
    this.socket.destroy();
  }
}

/** Parses one reply off the front of `buffer`, per RFC 959 multi-line rules. */
function takeReply(buffer: string): { code: number; text: string; length: number } | undefined {
  const first = /^(\d{3})([ -])(.*)\r\n/.exec(buffer);
  if (!first) return undefined;
  const code = Number(first[1]);
  if (first[2] === ' ') return { code, text: first[3], length: first[0].length };
  const end = new RegExp(`\\r\\n${first[1]} [^\\r\\n]*\\r\\n`).exec(buffer);
  if (!end) return undefined;
  const length = end.index + end[0].length;
  return { code, text: buffer.slice(4, length - 2), length };
}
