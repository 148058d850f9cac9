/**
 * FTPS throughput: the same big file over clear FTP and over explicit FTPS (AUTH TLS, PBSZ 0, PROT P, data
 * connections resuming the control connection's TLS session), against one instance of our edge, in one run.
 *
 *   npx tsx test/bench/tls.ts
 *   BENCH_TLS_MB=128 BENCH_TLS_REPEAT=1 npx tsx test/bench/tls.ts   # quick
 *
 * The server runs as a child process on loopback (servers.ts, as the main bench), with FTP_FSYNC_UPLOADS=false so
 * the upload rows measure the wire and not the disk. One client session per protocol; each round times a STOR of
 * BENCH_TLS_MB MiB then its RETR (EPSV to 226), clear and TLS taking turns first; the table shows the median.
 * Sizes are checked off the clock (bytes on disk, bytes received).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { MiB } from './env';
import { ReplyQueue, type Reply } from './ftpClient';
import { checkRangeFree, freePort, killNow, parseRange, startOurs, stopServer, type RunningServer } from './servers';

const settings = {
  mib: Number(process.env.BENCH_TLS_MB || 512),
  repeat: Number(process.env.BENCH_TLS_REPEAT || 3),
  pasv: parseRange(process.env.BENCH_TLS_PASV || '28000-28099'),
  timeoutMs: Number(process.env.BENCH_OP_TIMEOUT_S || 60) * 1000,
};
if (!(settings.mib > 0) || !(settings.repeat >= 1)) throw new Error('BENCH_TLS_MB and BENCH_TLS_REPEAT must be positive');

/** A lean control connection that can switch to TLS; data connections count bytes and nothing else. */
class LeanClient {
  private readonly replies: ReplyQueue;
  private session?: Buffer;
  private secure = false;

  private constructor(
    private socket: Socket,
    private readonly host: string,
    private readonly timeoutMs: number,
  ) {
    this.replies = new ReplyQueue(timeoutMs);
    this.listen(socket);
  }

  static async open(host: string, port: number, timeoutMs: number): Promise<LeanClient> {
    const socket = netConnect({ host, port, noDelay: true });
    await once(socket, 'connect', timeoutMs);
    const client = new LeanClient(socket, host, timeoutMs);
    await client.expect(await client.read(), 220, 'greeting');
    return client;
  }

  private onData = (chunk: Buffer) => this.replies.feed(chunk);
  private onClose = () => this.replies.fail(new Error('control connection closed'));

  private listen(socket: Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', (err) => this.replies.fail(err));
  }

  read(): Promise<Reply> {
    return this.replies.read();
  }

  private async expect(reply: Reply, code: number, what: string): Promise<Reply> {
    if (reply.code !== code) throw new Error(`${what}: ${reply.code} ${reply.text}`);
    return reply;
  }

  async command(line: string, code: number): Promise<Reply> {
    this.socket.write(`${line}\r\n`);
    return this.expect(await this.read(), code, line.startsWith('PASS ') ? 'PASS' : line);
  }

  async login(user: string, password: string) {
    await this.command(`USER ${user}`, 331);
    await this.command(`PASS ${password}`, 230);
  }

  /** AUTH TLS, handshake, PBSZ 0, PROT P. Keeps the newest session (TLS 1.3 tickets come after the handshake). */
  async startTls() {
    await this.command('AUTH TLS', 234);
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    const secure = tlsConnect({ socket: this.socket, rejectUnauthorized: false });
    secure.on('session', (session: Buffer) => (this.session = session));
    await once(secure, 'secureConnect', this.timeoutMs);
    this.socket = secure;
    this.listen(secure);
    this.secure = true;
    await this.command('PBSZ 0', 200);
    await this.command('PROT P', 200);
  }

  get protocol(): string {
    return this.secure ? String((this.socket as TLSSocket).getProtocol()) : 'clear';
  }

  private async dataConnection(): Promise<Socket> {
    const reply = await this.command('EPSV', 229);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply.text)?.[1]);
    if (!port) throw new Error(`EPSV without a port: ${reply.text}`);
    if (!this.secure) return netConnect({ host: this.host, port, noDelay: true });
    const session = this.session ?? (this.socket as TLSSocket).getSession();
    return tlsConnect({ host: this.host, port, session, rejectUnauthorized: false });
  }

  /** RETR; resolves with the byte count once the data ended and 226 arrived. */
  async retr(path: string): Promise<number> {
    const data = await this.dataConnection();
    let bytes = 0;
    data.on('data', (chunk: Buffer) => (bytes += chunk.length));
    const ended = once(data, 'end', this.timeoutMs);
    this.socket.write(`RETR ${path}\r\n`);
    try {
      await this.expect(await this.read(), 150, `RETR ${path}`);
      await Promise.all([ended, this.read().then((r) => this.expect(r, 226, `RETR ${path}`))]);
      return bytes;
    } finally {
      data.destroy();
    }
  }

  /** STOR of `bytes` bytes made by repeating `chunk`; resolves on the 226. */
  async stor(path: string, chunk: Buffer, bytes: number): Promise<void> {
    const data = await this.dataConnection();
    data.on('error', () => {});
    this.socket.write(`STOR ${path}\r\n`);
    try {
      await this.expect(await this.read(), 150, `STOR ${path}`);
      for (let left = bytes; left > 0; ) {
        if (data.destroyed) throw new Error('data connection closed during upload');
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!data.write(piece)) await once(data, 'drain', this.timeoutMs);
      }
      data.end(); // with TLS: close_notify, then FIN
      await this.expect(await this.read(), 226, `STOR ${path}`);
    } finally {
      data.destroy();
    }
  }

  async quit() {
    await this.command('QUIT', 221).catch(() => undefined);
    this.socket.destroy();
  }
}

/** Resolves on `event`, rejects on error, close or timeout; leaves no listener behind. */
function once(socket: Socket, event: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off(event, onEvent);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onEvent = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error(`closed before ${event}`));
    const timer = setTimeout(() => done(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, onEvent);
    socket.once('error', onError);
    if (event !== 'close') socket.once('close', onClose);
  });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function timed(run: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

let server: RunningServer | undefined;
let tmp: string | undefined;
process.on('exit', () => {
  if (server) killNow(server);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

async function main() {
  const bytes = settings.mib * MiB;
  tmp = mkdtempSync(join(tmpdir(), 'ftp-bench-tls-'));
  await checkRangeFree(settings.pasv, 'ours');
  server = await startOurs({
    name: 'ours',
    dir: tmp,
    port: await freePort(21510, new Set()),
    pasvRange: settings.pasv,
    fsync: false,
    env: { FTP_TLS_DIR: join(tmp, 'tls') }, // the self-signed pair goes to the temp dir, not the repository
  });
  const chunk = randomBytes(MiB);
  const clients = {
    clear: await LeanClient.open(server.host, server.port, settings.timeoutMs),
    tls: await LeanClient.open(server.host, server.port, settings.timeoutMs),
  };
  await clients.tls.startTls();
  const results: Record<'clear' | 'tls', { up: number[]; down: number[] }> = { clear: { up: [], down: [] }, tls: { up: [], down: [] } };
  for (const [mode, client] of Object.entries(clients)) {
    await client.login(server.user, server.password);
    await client.command('TYPE I', 200);
    // Warm-up off the clock: JIT, code paths, TLS session tickets.
    await client.stor(`warm-${mode}.bin`, chunk, 32 * MiB);
    await client.retr(`warm-${mode}.bin`);
    await client.command(`DELE warm-${mode}.bin`, 250);
  }
  console.log(`server pid ${server.pid}, ${settings.mib} MiB × ${settings.repeat} rounds, TLS: ${clients.tls.protocol}`);

  for (let round = 0; round < settings.repeat; round++) {
    const order = round % 2 === 0 ? (['clear', 'tls'] as const) : (['tls', 'clear'] as const);
    for (const mode of order) {
      const client = clients[mode];
      const name = `big-${mode}-${round}.bin`;
      const up = await timed(() => client.stor(name, chunk, bytes));
      const stored = statSync(join(server.root, name)).size;
      if (stored !== bytes) throw new Error(`${mode} upload: ${stored} bytes on disk, expected ${bytes}`);
      let received = 0;
      const down = await timed(async () => {
        received = await client.retr(name);
      });
      if (received !== bytes) throw new Error(`${mode} download: ${received} bytes, expected ${bytes}`);
      await client.command(`DELE ${name}`, 250);
      results[mode].up.push(settings.mib / up);
      results[mode].down.push(settings.mib / down);
      console.log(`  round ${round + 1} ${mode.padEnd(5)} upload ${(settings.mib / up).toFixed(0)} MiB/s, download ${(settings.mib / down).toFixed(0)} MiB/s`);
    }
  }
  await Promise.all(Object.values(clients).map((c) => c.quit()));

  const rows = [
    [`upload ${settings.mib} MiB`, median(results.clear.up), median(results.tls.up)],
    [`download ${settings.mib} MiB`, median(results.clear.down), median(results.tls.down)],
  ] as const;
  const line = (cells: string[]) => `| ${cells[0].padEnd(18)} | ${cells[1].padStart(14)} | ${cells[2].padStart(12)} | ${cells[3].padStart(11)} |`;
  console.log();
  console.log(line(['', 'clear MiB/s', 'TLS MiB/s', 'TLS/clear']));
  console.log(line(['---', '---', '---', '---']));
  for (const [name, clear, tls] of rows) console.log(line([name, clear.toFixed(0), tls.toFixed(0), (tls / clear).toFixed(2)]));
  console.log(`\nmedian of ${settings.repeat} round(s); FTP_FSYNC_UPLOADS=false; loopback; one session per protocol`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    if (server) await stopServer(server);
    server = undefined;
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    tmp = undefined;
  });
