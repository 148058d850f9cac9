/** Splitting a command line into verb and argument, and the table of known commands. */

export interface ParsedCommand {
  verb: string;
  arg: string;
}

/**
 * `VERB arg`: the verb is upper-cased; the argument is everything after the first space, verbatim,
 * because file names may begin or end with spaces. Malformed verbs are returned as they are so that
 * the session can answer 500.
 */
export function parseCommand(text: string): ParsedCommand {
  const line = text.endsWith('\r') ? text.slice(0, -1) : text;
  const space = line.indexOf(' ');
  if (space < 0) return { verb: line.toUpperCase(), arg: '' };
  return { verb: line.slice(0, space).toUpperCase(), arg: line.slice(space + 1) };
}

export interface CommandSpec {
  verb: string;
  needsLogin: boolean;
  arg: 'none' | 'optional' | 'required';
  help: string;
  /** canonical verb for aliases like XPWD→PWD */
  alias?: string;
}

type Entry = [arg: CommandSpec['arg'], needsLogin: boolean, help: string];

// needsLogin=false: the commands a client may send before logging in: the login itself, the RFC 2228/4217 security
// handshake which precedes USER, and what clients ask to negotiate it (FEAT, OPTS, HOST, CLNT). Nothing else, as in
// vsftpd: a connection that has not logged in can do nothing but log in (NOOP would let it look busy).
const CANONICAL: Record<string, Entry> = {
  USER: ['required', false, 'USER <sp> username'],
  PASS: ['optional', false, 'PASS <sp> password'],
  ACCT: ['required', false, 'ACCT <sp> account'],
  QUIT: ['none', false, 'QUIT (end session)'],
  REIN: ['none', false, 'REIN (reset session)'],
  SYST: ['none', true, 'SYST (system type)'],
  NOOP: ['none', true, 'NOOP'],
  HELP: ['optional', true, 'HELP [<sp> command]'],
  STAT: ['optional', true, 'STAT [<sp> path]'],
  PWD: ['none', true, 'PWD (print working directory)'],
  CWD: ['required', true, 'CWD <sp> path'],
  CDUP: ['none', true, 'CDUP (change to parent directory)'],
  MKD: ['required', true, 'MKD <sp> path'],
  RMD: ['required', true, 'RMD <sp> path'],
  DELE: ['required', true, 'DELE <sp> path'],
  RNFR: ['required', true, 'RNFR <sp> path'],
  RNTO: ['required', true, 'RNTO <sp> path'],
  TYPE: ['required', true, 'TYPE <sp> A | I'],
  MODE: ['required', true, 'MODE <sp> S'],
  STRU: ['required', true, 'STRU <sp> F'],
  ALLO: ['required', true, 'ALLO <sp> bytes'],
  AVBL: ['optional', true, 'AVBL [<sp> path]'],
  PORT: ['required', true, 'PORT <sp> h1,h2,h3,h4,p1,p2'],
  PASV: ['none', true, 'PASV (passive mode)'],
  EPRT: ['required', true, 'EPRT <sp> |af|addr|port|'],
  EPSV: ['optional', true, 'EPSV [<sp> 1 | 2 | ALL]'],
  LIST: ['optional', true, 'LIST [<sp> path]'],
  NLST: ['optional', true, 'NLST [<sp> path]'],
  RETR: ['required', true, 'RETR <sp> path'],
  STOR: ['required', true, 'STOR <sp> path'],
  STOU: ['optional', true, 'STOU [<sp> name]'],
  APPE: ['required', true, 'APPE <sp> path'],
  REST: ['required', true, 'REST <sp> offset'],
  ABOR: ['none', true, 'ABOR (abort transfer)'],
  FEAT: ['none', false, 'FEAT (list extensions)'],
  OPTS: ['required', false, 'OPTS <sp> command [<sp> options]'],
  SIZE: ['required', true, 'SIZE <sp> path'],
  MDTM: ['required', true, 'MDTM <sp> path'],
  MFMT: ['required', true, 'MFMT <sp> YYYYMMDDHHMMSS <sp> path'],
  MLSD: ['optional', true, 'MLSD [<sp> path]'],
  MLST: ['optional', true, 'MLST [<sp> path]'],
  HOST: ['required', false, 'HOST <sp> hostname'],
  HASH: ['required', true, 'HASH <sp> path'],
  AUTH: ['required', false, 'AUTH <sp> TLS'],
  PBSZ: ['required', false, 'PBSZ <sp> 0'],
  PROT: ['required', false, 'PROT <sp> P | C'],
  CCC: ['none', true, 'CCC (clear command channel)'],
  CLNT: ['optional', false, 'CLNT <sp> client-name'],
  SITE: ['required', true, 'SITE <sp> command'],
};

// RFC 775 X-commands, still sent by some Windows clients.
const ALIASES: Record<string, string> = { XPWD: 'PWD', XCWD: 'CWD', XCUP: 'CDUP', XMKD: 'MKD', XRMD: 'RMD' };

function buildTable(): Record<string, CommandSpec> {
  const table: Record<string, CommandSpec> = {};
  for (const [verb, [arg, needsLogin, help]] of Object.entries(CANONICAL)) {
    table[verb] = { verb, needsLogin, arg, help };
  }
  for (const [verb, alias] of Object.entries(ALIASES)) {
    table[verb] = { ...table[alias], verb, alias };
  }
  return table;
}

export const COMMANDS: Record<string, CommandSpec> = buildTable();

/** Spec for a verb (any case); aliases come back with `alias` set — dispatch on `spec.alias ?? spec.verb`. */
export function lookupCommand(verb: string): CommandSpec | undefined {
  const key = verb.toUpperCase();
  // hasOwn: a verb like "CONSTRUCTOR" or "__PROTO__" must not reach Object.prototype.
  return Object.hasOwn(COMMANDS, key) ? COMMANDS[key] : undefined;
}

