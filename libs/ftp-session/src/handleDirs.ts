import { permString } from '@ftp/identity';
import { formatListLine, formatMlsxLine, type ListEntry } from '@ftp/protocol';
import { FtpError } from './errors';
import { audit, requirePermission, resolvePath, storageOf } from './access';
import type { Handler, Session } from './session';
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
  requirePermission(session, path, 'rmdir');
  await storageOf(session).rmdir(path);
  audit(session, 'rmdir', { path });
  session.reply(250, 'Directory removed');
};

/** `LIST -la dir`: clients pass ls options; they are not file names. */
function stripListOptions(arg: string): string {
  return arg.replace(/^(\s*-[a-zA-Z]+)+\s*/, '');
}

/** The entries a listing command shows: a directory's children, or the file itself. */
async function entriesFor(session: Session, path: string): Promise<{ entries: ListEntry[]; dir: string }> {
  requirePermission(session, path, 'list');
  const storage = storageOf(session);
  const stat = await storage.stat(path);
  if (stat.type === 'file') return { entries: [stat], dir: path.slice(0, path.lastIndexOf('/')) || '/' };
  return { entries: await storage.list(path), dir: path };
}

const childPath = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

async function sendListing(session: Session, path: string, lines: string[]) {
  const body = lines.length ? `${lines.join('\r\n')}\r\n` : '';
  await runTransfer(
    session,
    { direction: 'listing', path, opening: 'Here comes the directory listing', done: 'Directory send OK' },
    (socket) =>
      new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.end(body, () => resolve());
      }),
  );
}

const LIST: Handler = async (session, arg) => {
  const path = resolvePath(session, stripListOptions(arg));
  const { entries } = await entriesFor(session, path);
  const now = new Date();
  await sendListing(session, path, entries.map((e) => formatListLine(e, now)));
};

const NLST: Handler = async (session, arg) => {
  const path = resolvePath(session, stripListOptions(arg));
  const { entries } = await entriesFor(session, path);
  await sendListing(session, path, entries.map((e) => e.name));
};

const MLSD: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  const { entries, dir } = await entriesFor(session, path);
  if (dir !== path) throw new FtpError(501, 'MLSD needs a directory; use MLST for a file');
  const user = session.user!;
  const lines = entries.map((e) => formatMlsxLine(e, permString(user, childPath(dir, e.name), e.type), { facts: session.mlstFacts }));
  await sendListing(session, path, lines);
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
