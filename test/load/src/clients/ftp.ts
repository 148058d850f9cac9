import { Socket } from 'node:net';
import { Client } from 'basic-ftp';
import { bounded, contentStream, countingSink, movedOn, reset, sliceOf, type ConnectArgs, type Session } from './session';

/**
 * A partner's FTP or FTPS (explicit AUTH TLS) session on basic-ftp, as any partner's client would run it: connect,
 * login, FEAT/TYPE/PBSZ/PROT (basic-ftp's defaults), passive data connections to the control host only.
 */

/** The TLS of our own test servers is self-signed: the load generator does not verify it. */
const TLS_OPTIONS = { rejectUnauthorized: false };

export async function connectFtp(a: ConnectArgs): Promise<Session> {
  // basic-ftp's own inactivity timeout on every socket, under our deadlines.
  const client = new Client(a.timeouts.operation);
  // basic-ftp makes every socket (control and data) through this factory, which it documents as replaceable for
  // tests: replacing it gives the raw TCP sockets, for the byte meter and for a reset that a broken link would cause.
  const sockets = new Set<Socket>();
  (client.ftp as unknown as { _newSocket: () => Socket })._newSocket = () => {
    const s = new Socket();
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    a.meter.track(s);
    return s;
  };
  const destroy = () => {
    for (const s of sockets) reset(s);
    client.close();
  };
  const run = <T>(what: string, op: () => Promise<T>, transfer = false) =>
    bounded(what, op, {
      signal: a.signal,
      timeoutMs: transfer ? a.timeouts.stall : a.timeouts.operation,
      kill: destroy,
      progress: transfer ? () => movedOn(sockets) : undefined,
    });

  await bounded(
    'login',
    () => client.access({ host: a.host, port: a.port, user: a.login.user, password: a.login.password, secure: a.tls, secureOptions: a.tls ? { ...TLS_OPTIONS } : undefined }),
    { signal: a.signal, timeoutMs: a.timeouts.connect, kill: destroy },
  );

  return {
    list: (dir) => run('list', async () => (await client.list(dir)).map((f) => f.name), true),
    async upload(path, bytes, options = {}) {
      const slice = sliceOf(options);
      if (options.cutAfter === undefined) {
        const source = contentStream(bytes, undefined, slice);
        await run('upload', () => (options.append ? client.appendFrom(source, path) : client.uploadFrom(source, path)), true);
        return;
      }
      // Send `cutAfter` bytes, let them leave, then reset every connection: the server sees a broken upload, not a
      // complete one (a clean close of the data connection would end the file in FTP's stream mode).
      const cut = new Promise<void>((resolve, reject) => {
        let held = false;
        const source = contentStream(
          options.cutAfter!,
          () => {
            held = true;
            setTimeout(resolve, 100);
          },
          slice,
        );
        // Fails once reset, as intended; before that, a refusal (550) is the step's error.
        client.uploadFrom(source, path).catch((err: Error) => held || reject(err));
      });
      await run('upload (to be cut)', () => cut, true);
      destroy();
    },
    size: (path) => run('size', () => client.size(path)),
    async download(path, options = {}) {
      const sink = countingSink(options.onData);
      await run('download', () => client.downloadTo(sink, path), true);
      return sink.bytes;
    },
    remove: (path) => run('delete', async () => void (await client.remove(path))),
    async mkdir(dir) {
      const parts = dir.split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) await run('mkdir', () => client.sendIgnoringError(`MKD ${parts.slice(0, i).join('/')}`));
    },
    async close() {
      try {
        await run('quit', () => client.send('QUIT'));
      } catch (err) {
        if (!client.closed) throw err;
      } finally {
        client.close();
      }
    },
    destroy,
  };
}
