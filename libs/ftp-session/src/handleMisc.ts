import { COMMANDS, formatFeatMlst, formatListLine, selectMlstFacts } from '@ftp/protocol';
import { entriesFor } from './handleDirs';
import { FtpError } from './errors';
import { resolvePath } from './access';
import { HASH_NODE_NAMES } from './handleFiles';
import type { Handler } from './state';

const SYST: Handler = (session) => session.reply(215, 'UNIX Type: L8');
const NOOP: Handler = (session) => session.reply(200, 'NOOP ok');
const CLNT: Handler = (session) => session.reply(200, 'Noted');

const FEAT: Handler = (session) =>
  session.reply(211, [
    'Features:',
    ...(session.deps.tls ? ['AUTH TLS', 'PBSZ', 'PROT'] : []),
    ...(session.deps.diskSpace ? ['AVBL'] : []),
    'EPRT',
    'EPSV',
    `HASH ${Object.keys(HASH_NODE_NAMES)
      .map((a) => (a === session.hashAlgorithm ? `${a}*` : a))
      .join(';')}`,
    'HOST',
    'MDTM',
    'MFMT',
    `MLST ${formatFeatMlst(session.mlstFacts)}`,
    'PASV',
    'REST STREAM',
    'SIZE',
    'TVFS',
    'UTF8',
    'End',
  ]);

const OPTS: Handler = (session, arg) => {
  const [option, ...rest] = arg.split(' ');
  const value = rest.join(' ').trim();
  switch (option.toUpperCase()) {
    case 'UTF8':
    case 'UTF-8':
      session.reply(200, 'Always in UTF8 mode');
      return;
    case 'MLST':
      session.mlstFacts = selectMlstFacts(value);
      session.reply(200, `MLST OPTS ${session.mlstFacts.map((f) => `${f};`).join('')}`);
      return;
    case 'HASH': {
      if (value === '') return session.reply(200, session.hashAlgorithm);
      const algorithm = Object.keys(HASH_NODE_NAMES).find((a) => a === value.toUpperCase());
      if (!algorithm) throw new FtpError(501, `Unknown algorithm; choose one of ${Object.keys(HASH_NODE_NAMES).join(', ')}`);
      session.hashAlgorithm = algorithm as keyof typeof HASH_NODE_NAMES;
      session.reply(200, algorithm);
      return;
    }
    default:
      throw new FtpError(501, `Option ${option} not understood`);
  }
};

/** HELP lists the verbs of the handler table it is given (the table holds HELP itself: no import of it here). */
export const helpFor = (handlers: () => Record<string, Handler>): Handler => (session) => {
  const table = handlers();
  const verbs = Object.keys(COMMANDS).filter((v) => table[COMMANDS[v].alias ?? v]);
  const rows: string[] = [];
  for (let i = 0; i < verbs.length; i += 8) rows.push(verbs.slice(i, i + 8).map((v) => v.padEnd(5)).join(' ').trimEnd());
  session.reply(214, ['The following commands are recognized:', ...rows, 'Help OK']);
};

/** STAT without argument: server status; with a path: its listing on the control connection. */
const STAT: Handler = async (session, arg) => {
  if (arg === '') {
    session.reply(211, [
      'FTP server status:',
      `Connected to ${session.localAddress} from ${session.clientAddress}`,
      session.user ? `Logged in as ${session.user.name}` : 'Not logged in',
      `TYPE: ${session.type === 'A' ? 'ASCII' : 'BINARY'}, STRUcture: File, MODE: Stream`,
      'End of status',
    ]);
    return;
  }
  const path = resolvePath(session, arg.replace(/^(\s*-[a-zA-Z]+)+\s*/, ''));
  const { batches } = await entriesFor(session, path);
  const now = new Date();
  const lines = [`Status of ${path}:`];
  for await (const batch of batches) for (const e of batch) lines.push(formatListLine(e, now));
  lines.push('End of status');
  session.reply(213, lines);
};

export const miscHandlers: Record<string, Handler> = { SYST, NOOP, CLNT, FEAT, OPTS, STAT };
