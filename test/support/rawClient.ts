import { connect, type Socket } from 'node:net';

/**
 * A minimal FTP control connection for tests that must send exact bytes (bad input, pipelining, Telnet) and read
 * replies as the server framed them.
 */
export class RawClient {
  private buffer = '';
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    const socket = connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  private wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  send(line: string | Buffer) {
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line);
  }

  /** Next complete reply (multi-line aware): { code, text (all lines) }. Rejects on timeout or close. */
  async reply(timeoutMs = 5000): Promise<{ code: number; text: string }> {
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
  async waitClosed(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close() {
    this.socket.destroy();
  }
}

/** Parses one reply off the front of `buffer`, per RFC 959 multi-line rules. */
export function takeReply(buffer: string): { code: number; text: string; length: number } | undefined {
  const first = /^(\d{3})([ -])(.*)\r\n/.exec(buffer);
  if (!first) return undefined;
  const code = Number(first[1]);
  if (first[2] === ' ') return { code, text: first[3], length: first[0].length };
  const end = new RegExp(`\\r\\n${first[1]} [^\\r\\n]*\\r\\n`).exec(buffer);
  if (!end) return undefined;
  const length = end.index + end[0].length;
  return { code, text: buffer.slice(4, length - 2), length };
}
