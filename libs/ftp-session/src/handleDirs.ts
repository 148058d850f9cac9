import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { permString } from '@ftp/identity';
import { formatListLine, formatMlsxLine, type ListEntry } from '@ftp/protocol';
import { FtpError } from './errors';
import { audit, requirePermission, requirePermissionWithin, resolvePath, storageOf } from './access';
import type { Handler, Session } from './state';
import { runTransfer } from './transfer';

const PWD: Handler = (session) => session.reply(257, `"${session.cwd.replace(/"/g, '""')}" is the current directory`);

async function changeDirectory(session: Session, target: string) {
  const stat = await storageOf(session).stat(target);
  if (stat.type !== 'dir') throw new FtpError(550, 'Not a directory');
  session.cwd = target;
  session.reply(250, `Directory changed to ${target}`);
}

const CWD: Handler = (session, arg) => changeDirectory(session, resolvePath(session, arg));
const CDUP: Handler = (session) => changeDirectory(session, resolvePath(session, '..'));

const MKD: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  requirePermission(session, path, 'mkdir');
  await storageOf(session).mkdir(path);
  audit(session, 'mkdir', { path });
  session.reply(257, `"${path.replace(/"/g, '""')}" created`);
};

const RMD: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  if (path === '/') throw new FtpError(550, 'Cannot remove the root directory');
  requirePermissionWithin(session, path, 'rmdir');
  await storageOf(session).rmdir(path);
  audit(session, 'rmdir', { path });
  session.reply(250, 'Directory removed');
};

/** `LIST -la dir`: clients pass ls options; they are not file names. */
function stripListOptions(arg: string): string {
  return arg.replace(/^(\s*-[a-zA-Z]+)+\s*/, '');
}

/**
 * The entries a listing command shows, in batches: a directory's children, or the file itself. Storage refuses a
 * directory over its entry limit here, before any reply; the batches are read while they are sent.
 */
async function entriesFor(session: Session, path: string): Promise<{ batches: AsyncIterable<ListEntry[]>; dir: string }> {
  requirePermission(session, path, 'list');
  const storage = storageOf(session);
  const stat = await storage.stat(path);
  if (stat.type === 'file') return { batches: Readable.from([[stat]]), dir: path.slice(0, path.lastIndexOf('/')) || '/' };
  return { batches: await storage.listEntries(path), dir: path };
}

const childPath = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

/** One chunk of listing text per batch of entries, so a big listing is formatted and sent a piece at a time. */
async function* listingText(batches: AsyncIterable<ListEntry[]>, lineOf: (entry: ListEntry) => string): AsyncGenerator<string> {
  for await (const batch of batches) {
    if (batch.length > 0) yield `${batch.map(lineOf).join('\r\n')}\r\n`;
  }
}

/**
 * Streams the listing over the data connection with backpressure; ABOR stops it. A listing of one batch (most of them)
 * is written in one piece instead: a stream pipeline costs more than the listing itself there.
 */
async function sendListing(session: Session, path: string, batches: AsyncIterable<ListEntry[]>, lineOf: (entry: ListEntry) => string) {
  await runTransfer(
    session,
    { direction: 'listing', path, opening: 'Here comes the directory listing', done: 'Directory send OK' },
    async (socket, signal) => {
      const text = listingText(batches, lineOf);
      const first = await text.next();
      const second = first.done ? first : await text.next();
      if (second.done) return endWith(socket, first.done ? '' : first.value, signal);
      await pipeline(Readable.from(chain([first.value, second.value], text)), socket, { signal });
    },
  );
}

async function* chain<T>(head: T[], rest: AsyncIterator<T>): AsyncGenerator<T> {
  yield* head;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

/** Writes the last piece and resolves once it is flushed; a broken connection, ABOR or a stall rejects. */
const endWith = (socket: Socket, text: string, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const onAbort = () => socket.destroy(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', reject);
    socket.end(text, (err?: Error | null) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    });
  });

const LIST: Handler = async (session, arg) => {
  const path = resolvePath(session, stripListOptions(arg));
  const { batches } = await entriesFor(session, path);
  const now = new Date();
  await sendListing(session, path, batches, (e) => formatListLine(e, now));
};

const NLST: Handler = async (session, arg) => {
  const path = resolvePath(session, stripListOptions(arg));
  const { batches } = await entriesFor(session, path);
  await sendListing(session, path, batches, (e) => e.name);
};

const MLSD: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  const { batches, dir } = await entriesFor(session, path);
  if (dir !== path) throw new FtpError(501, 'MLSD needs a directory; use MLST for a file');
  const user = session.user!;
  await sendListing(session, path, batches, (e) =>
    formatMlsxLine(e, permString(user, childPath(dir, e.name), e.type), { facts: session.mlstFacts }),
  );
};

const MLST: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  requirePermission(session, path, 'list');
  const stat = await storageOf(session).stat(path);
  const line = formatMlsxLine({ ...stat, name: path }, permString(session.user!, path, stat.type), { facts: session.mlstFacts });
  session.reply(250, [`Listing ${path}`, line, 'End']);
};

export const dirHandlers: Record<string, Handler> = { PWD, CWD, CDUP, MKD, RMD, LIST, NLST, MLSD, MLST };
export { entriesFor };
