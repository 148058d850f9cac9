// ftpctl: manage the users file from a shell. Run: npm run ftpctl -- <command>
// Exit codes: 0 success, 1 failure, 2 usage error.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { hashPassword } from '../password';
import type { Permission } from '../types';
import {
  ALL_PERMISSIONS,
  USER_NAME_PATTERN,
  checkHome,
  checkPermission,
  loadUsersFile,
  saveUsersFile,
  type UsersFileData,
} from '../usersFile';

const USAGE = `usage: ftpctl <command>   (users file: $FTP_USERS_FILE, default ./users.yaml)
  hash-password                         read a password from stdin, print its scrypt hash
  user add NAME --password-stdin [--home DIR] [--perm /path=list,download ...] [--group G ...]
  user remove NAME
  user list
  user passwd NAME --password-stdin`;

/** An error that ends the program with a message and an exit code (2 = usage). */
function exit(code: 1 | 2, message: string): never {
  throw Object.assign(new Error(message), { exitCode: code });
}

/** First line of stdin without its line ending; passwords are never taken from argv (visible in ps). */
async function readPasswordLine(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Password: ');
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let first = '';
  for await (const line of rl) {
    first = line;
    break;
  }
  rl.close();
  process.stdin.destroy();
  const password = first.replace(/\r$/, '');
  if (password === '') exit(1, 'empty password on standard input');
  return password;
}

function parse(args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      options: {
        'password-stdin': { type: 'boolean' },
        home: { type: 'string' },
        perm: { type: 'string', multiple: true },
        group: { type: 'string', multiple: true },
      },
    });
  } catch (err) {
    exit(2, (err as Error).message);
  }
}

function parsePerms(specs: string[] | undefined): Record<string, Permission[]> {
  if (!specs || specs.length === 0) return { '/': [...ALL_PERMISSIONS] };
  const perms: Record<string, Permission[]> = {};
  for (const spec of specs) {
    const eq = spec.lastIndexOf('=');
    const folder = spec.slice(0, eq);
    if (eq < 0 || !folder.startsWith('/')) exit(2, `--perm ${spec}: expected /folder=perm,perm`);
    const list = spec.slice(eq + 1).split(',').filter(Boolean);
    for (const perm of list) {
      const problem = checkPermission(perm);
      if (problem) exit(2, `--perm ${spec}: ${problem} (known: ${ALL_PERMISSIONS.join(', ')})`);
    }
    perms[folder] = list as Permission[];
  }
  if (!('/' in perms)) exit(2, '--perm: a rule for "/" is required, e.g. --perm /=list,download');
  return perms;
}

async function load(file: string, missingOk: boolean): Promise<UsersFileData> {
  try {
    return await loadUsersFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') exit(1, (err as Error).message);
    if (!missingOk) exit(1, `${file}: no such users file (set FTP_USERS_FILE)`);
    return { users: {}, anonymous: { enabled: false, home: 'pub' } };
  }
}

function requireName(name: string | undefined, data?: UsersFileData): string {
  if (!name) exit(2, 'missing user NAME');
  if (!USER_NAME_PATTERN.test(name)) exit(2, `invalid user name "${name}": must match ${USER_NAME_PATTERN.source}`);
  if (data && !Object.hasOwn(data.users, name)) exit(1, `no user "${name}"`);
  return name;
}

async function userCommand(file: string, args: string[]): Promise<void> {
  const { values, positionals } = parse(args);
  const [sub, nameArg, ...extra] = positionals;
  if (extra.length > 0) exit(2, `unexpected argument "${extra[0]}"`);
  switch (sub) {
    case 'add': {
      const data = await load(file, true);
      const name = requireName(nameArg);
      if (Object.hasOwn(data.users, name)) exit(1, `user "${name}" already exists`);
      if (!values['password-stdin']) exit(2, 'user add needs --password-stdin');
      const home = values.home ?? name;
      const homeProblem = checkHome(home);
      if (homeProblem) exit(2, `--home: ${homeProblem}`);
      const permissions = parsePerms(values.perm);
      const password = await hashPassword(await readPasswordLine());
      data.users[name] = { password, home, permissions, groups: values.group ?? [], allowFrom: [], requireTls: false, disabled: false };
      await saveUsersFile(file, data);
      console.log(`added user ${name} (home ${home})`);
      return;
    }
    case 'remove': {
      const data = await load(file, false);
      const name = requireName(nameArg, data);
      delete data.users[name];
      await saveUsersFile(file, data);
      console.log(`removed user ${name}`);
      return;
    }
    case 'passwd': {
      const data = await load(file, false);
      const name = requireName(nameArg, data);
      if (!values['password-stdin']) exit(2, 'user passwd needs --password-stdin');
      data.users[name].password = await hashPassword(await readPasswordLine());
      await saveUsersFile(file, data);
      console.log(`changed password of ${name}`);
      return;
    }
    case 'list': {
      if (nameArg) exit(2, `unexpected argument "${nameArg}"`);
      const data = await load(file, false);
      // Never prints hashes.
      const rows = Object.entries(data.users).map(([name, u]) => [name + (u.disabled ? ' (disabled)' : ''), u.home, u.groups.join(',')]);
      const table = [['NAME', 'HOME', 'GROUPS'], ...rows];
      const widths = [0, 1].map((i) => Math.max(...table.map((r) => r[i].length)));
      for (const r of table) console.log(`${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ${r[2]}`.trimEnd());
      return;
    }
    default:
      exit(2, sub ? `unknown user command "${sub}"\n${USAGE}` : USAGE);
  }
}

async function main(argv: string[]): Promise<void> {
  const file = process.env.FTP_USERS_FILE || './users.yaml';
  const [command, ...rest] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return;
  }
  if (command === 'hash-password') {
    if (rest.length > 0) exit(2, 'hash-password takes no arguments; it reads the password from stdin');
    console.log(await hashPassword(await readPasswordLine()));
    return;
  }
  if (command === 'user') return userCommand(file, rest);
  exit(2, command ? `unknown command "${command}"\n${USAGE}` : USAGE);
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  const code = (err as { exitCode?: number }).exitCode ?? 1;
  console.error(`ftpctl: ${(err as Error).message}`);
  process.exitCode = code;
}
