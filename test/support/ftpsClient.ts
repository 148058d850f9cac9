import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { ReplyReader } from './rawClient';
import { startTestServer, type TestServer, type TestServerOptions } from './server';

/**
 * A minimal FTPS control connection for tests that must control every step of TLS: when the handshake starts, which
 * TLS session a data connection offers (the control's, a fresh one, or none at all), and the exact bytes sent.
 */

export interface Reply {
  code: number;
  text: string;
}

/** How a test client opens a data connection under PROT P. */
export type DataMode = 'resume' | 'fresh' | 'clear';

export interface TransferResult {
  /** Reply to the transfer command: 150, or the refusal. */
  first: Reply;
  /** The reply that ends the transfer (226, 4xx, 5xx); undefined when `first` already refused it. */
  final?: Reply;
  /** Bytes received on the data connection. */
  data: Buffer;
  /** Whether the data connection's TLS handshake resumed the control connection's session. */
  resumed?: boolean;
  dataError?: string;
}

const HOST = '127.0.0.1';

/** A loopback port that was free a moment ago (for listeners the harness cannot bind on port 0, like implicit FTPS). */
export async function freeLoopbackPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, HOST, resolve);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A test server with the implicit FTPS listener on a port picked free just before (the harness forces only FTP_PORT to 0). */
export async function startWithImplicitTls(options: TestServerOptions = {}): Promise<TestServer> {
  for (let attempt = 0; ; attempt++) {
    const port = await freeLoopbackPort();
    try {
      return await startTestServer({ ...options, env: { FTP_IMPLICIT_TLS_PORT: String(port), ...options.env } });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

export class FtpsControl {
  private readonly replies = new ReplyReader();
  /** The control connection's TLS socket once AUTH TLS (or implicit TLS) is done. */
  tls?: TLSSocket;
  /** Latest TLS session of the control connection: under TLS 1.3 the tickets arrive after the handshake. */
  session?: Buffer;

  private constructor(
    public socket: Socket,
    /** Extra client TLS options for the control and data connections (versions, SSL_OP_NO_TICKET…). */
    private readonly tlsOptions: ConnectionOptions = {},
    /** Where passive data connections go (the server's address unless a test sends them elsewhere). */
    private readonly dataHost = HOST,
  ) {
    this.attach(socket);
  }

  /**
   * Connects in clear (explicit FTPS), or with TLS from the first byte (`implicit`). Does not read the greeting.
   * `host` defaults to 127.0.0.1; `dataHost` (default: `host`) is where passive data connections are dialled.
   */
  static async connect(
    port: number,
    options: { implicit?: boolean; tls?: ConnectionOptions; host?: string; dataHost?: string } = {},
  ): Promise<FtpsControl> {
    const host = options.host ?? HOST;
    const dataHost = options.dataHost ?? host;
    if (options.implicit) {
      const secure = tlsConnect({ host, port, rejectUnauthorized: false, ...options.tls });
      const client = new FtpsControl(secure, options.tls, dataHost);
      client.watchSessions(secure);
      await settle(secure, 'secureConnect');
      client.tls = secure;
      return client;
    }
    const socket = netConnect({ host, port });
    await settle(socket, 'connect');
    return new FtpsControl(socket, options.tls, dataHost);
  }

  private onData = (chunk: Buffer) => this.replies.feed(chunk.toString('utf8'));
  private onClose = () => this.replies.end();

  get closed(): boolean {
    return this.replies.closed;
  }

  private attach(socket: Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', () => {});
  }

  private watchSessions(secure: TLSSocket) {
    secure.on('session', (session: Buffer) => (this.session = session));
  }

  send(line: string | Buffer) {
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line);
  }

  /** Replies received but not yet read, raw. */
  get pending(): string {
    return this.replies.pending;
  }

  /** Next complete reply (multi-line aware). Rejects on timeout or close. */
  reply(timeoutMs?: number): Promise<Reply> {
    return this.replies.next(timeoutMs);
  }

  async command(line: string, timeoutMs?: number): Promise<Reply> {
    this.send(line);
    return this.reply(timeoutMs);
  }

  /** Sends a command and insists on one reply code. */
  async expect(line: string, code: number, timeoutMs?: number): Promise<Reply> {
    const reply = await this.command(line, timeoutMs);
    if (reply.code !== code) throw new Error(`${line.startsWith('PASS ') ? 'PASS' : line} → ${reply.code} ${reply.text} (wanted ${code})`);
    return reply;
  }

  async greeting(): Promise<Reply> {
    const greeting = await this.reply();
    if (greeting.code !== 220) throw new Error(`greeting ${greeting.code} ${greeting.text}`);
    return greeting;
  }

  /** Starts TLS on the control connection (after a 234), as a client that sends nothing in clear meanwhile. */
  async upgrade(): Promise<TLSSocket> {
    const raw = this.socket;
    raw.off('data', this.onData);
    raw.off('close', this.onClose);
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, ...this.tlsOptions });
    this.watchSessions(secure);
    this.socket = secure;
    this.attach(secure);
    await settle(secure, 'secureConnect');
    this.tls = secure;
    return secure;
  }

  /** AUTH TLS and the handshake. */
  async authTls(): Promise<TLSSocket> {
    await this.expect('AUTH TLS', 234);
    return this.upgrade();
  }

  async login(user: string, password: string) {
    await this.expect(`USER ${user}`, 331);
    await this.expect(`PASS ${password}`, 230);
  }

  /** Greeting, AUTH TLS, login, PBSZ 0, PROT P, TYPE I: the usual explicit FTPS start. */
  async secureLogin(user: string, password: string) {
    await this.greeting();
    await this.authTls();
    await this.login(user, password);
    await this.expect('PBSZ 0', 200);
    await this.expect('PROT P', 200);
    await this.expect('TYPE I', 200);
  }

  async epsv(): Promise<number> {
    const reply = await this.expect('EPSV', 229);
    const match = /\(\|\|\|(\d+)\|\)/.exec(reply.text);
    if (!match) throw new Error(`EPSV reply without a port: ${reply.text}`);
    return Number(match[1]);
  }

  /** The session a data connection offers to resume: the latest ticket, else what the socket holds. */
  private sessionToResume(): Buffer | undefined {
    return this.session ?? this.tls?.getSession();
  }

  /** Starts the client side of a data connection on an already connected TCP socket, or dials `port`. */
  private secureData(mode: DataMode, target: { port: number } | { socket: Socket }): Socket {
    if (mode === 'clear') return 'socket' in target ? target.socket : netConnect({ host: this.dataHost, port: target.port });
    const session = mode === 'resume' ? this.sessionToResume() : undefined;
    if (mode === 'resume' && !session) throw new Error('no TLS session to resume yet');
    const where = 'socket' in target ? { socket: target.socket } : { host: this.dataHost, port: target.port };
    return tlsConnect({ ...where, session, rejectUnauthorized: false, ...this.tlsOptions });
  }

  /**
   * A passive transfer: EPSV, `command`, data connection per `mode`, then the closing reply. With `dialFirstMs`, the
   * data connection (and its ClientHello) goes out that long before the command, as eager clients do.
   */
  async transfer(command: string, mode: DataMode, upload?: Buffer, options: { timeoutMs?: number; dialFirstMs?: number } = {}): Promise<TransferResult> {
    const port = await this.epsv();
    let data: Socket;
    if (options.dialFirstMs !== undefined) {
      data = this.secureData(mode, { port });
      await new Promise((resolve) => setTimeout(resolve, options.dialFirstMs));
      this.send(command);
    } else {
      this.send(command);
      data = this.secureData(mode, { port });
    }
    return this.finish(data, upload, options.timeoutMs ?? 10_000);
  }

  /** An active transfer: the client listens, sends EPRT, and acts as the TLS client on the connection it accepts. */
  async activeTransfer(command: string, mode: DataMode, upload?: Buffer, timeoutMs = 10_000): Promise<TransferResult> {
    const listener = createServer();
    await new Promise<void>((resolve) => listener.listen(0, HOST, resolve));
    try {
      const { port } = listener.address() as AddressInfo;
      const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
      await this.expect(`EPRT |1|${HOST}|${port}|`, 200);
      this.send(command);
      const first = await this.reply(timeoutMs);
      if (first.code !== 150) return { first, data: Buffer.alloc(0) };
      const raw = await withTimeout(accepted, timeoutMs, 'the server never connected');
      return await this.finish(this.secureData(mode, { socket: raw }), upload, timeoutMs, first);
    } finally {
      listener.close();
    }
  }

  private async finish(data: Socket, upload: Buffer | undefined, timeoutMs: number, known?: Reply): Promise<TransferResult> {
    const chunks: Buffer[] = [];
    let dataError: string | undefined;
    let resumed: boolean | undefined;
    data.on('data', (chunk: Buffer) => chunks.push(chunk));
    data.on('error', (err) => (dataError ??= err.message));
    data.once('secureConnect', () => (resumed = (data as TLSSocket).isSessionReused()));
    const closed = new Promise<void>((resolve) => data.once('close', () => resolve()));
    if (upload) data.end(upload);
    try {
      const first = known ?? (await this.reply(timeoutMs));
      if (first.code !== 150 && first.code !== 125) return { first, data: Buffer.alloc(0), dataError };
      const final = await this.reply(timeoutMs);
      await withTimeout(closed, timeoutMs, 'data connection still open after the final reply').catch(() => data.destroy());
      return { first, final, data: Buffer.concat(chunks), resumed, dataError };
    } finally {
      data.destroy();
    }
  }

  waitClosed(timeoutMs?: number) {
    return this.replies.waitClosed(timeoutMs);
  }

  close() {
    this.socket.destroy();
  }
}

function settle(socket: Socket, event: 'connect' | 'secureConnect'): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once(event, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(what)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
