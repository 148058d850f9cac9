// ftpctl: manage the users file from a shell. Run: npm run ftpctl -- <command>
// Exit codes: 0 success, 1 failure, 2 usage error.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { describeAuthMethods, parseAuthMethods } from '../authMethods';
import { hashPassword } from '../password';
import { parseAuthorizedKey } from '../publicKeys';
import { migrateUserStore } from '../pgMigrate';
import { createPostgresStore } from '../pgStore';
import type { Actor } from '../store';
import type { Permission, PublicKey } from '../types';
import {
  ALL_PERMISSIONS,
  USER_NAME_PATTERN,
  checkHome,
  checkPermission,
  emptyUsersFile,
  loadUsersFile,
  saveUsersFile,
  stringifyUsersFile,
  type UsersFileData,
} from '../usersFile';

const USAGE = `usage: ftpctl <command>   (users file: $FTP_USERS_FILE, default ./users.yaml; database: $FTP_USERS_DATABASE_URL)
  hash-password                         read a password from stdin, print its scrypt hash
  user add NAME --password-stdin [--home DIR] [--perm /path=list,download ...] [--group G ...]
  user remove NAME
  user list                             users, their auth methods and key fingerprints (never hashes)
  user passwd NAME --password-stdin
  user add-key NAME                     add the authorized_keys lines read from stdin ("ssh-ed25519 AAAA… comment")
  user remove-key NAME SHA256:…         remove the key with that fingerprint (as user list shows it)
  user set-auth-methods NAME METHODS    METHODS: publickey,password (both required), publickey, password, or any
  db migrate                            bring the PostgreSQL user store's schema to the newest version
  users import FILE [--prune]           copy a users file's users and groups into PostgreSQL (--prune: delete the others)
  users export [FILE]                   write PostgreSQL's users and groups as a users file (FILE, mode 0600; or stdout)`;

// authorized_keys files are small; this only stops a mistaken pipe from filling memory.
const MAX_STDIN_BYTES = 1 << 20;

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

/** All of stdin as text (public keys: several lines). */
async function readStdinText(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Paste public keys (authorized_keys lines), then Ctrl-D:\n');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_STDIN_BYTES) exit(1, `more than ${MAX_STDIN_BYTES} bytes on standard input`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Keys of authorized_keys text: blank and # lines skipped, every bad line reported with its number. */
function parseKeyLines(text: string): PublicKey[] {
  // Never echo a private key, not even a piece of it in an error.
  if (/PRIVATE KEY/.test(text)) exit(1, 'standard input holds a private key: give the public one (the .pub file)');
  const keys: PublicKey[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    try {
      const key = parseAuthorizedKey(line);
      if (keys.some((k) => k.data.equals(key.data))) problems.push(`line ${i + 1}: the same key (${key.fingerprint}) appears twice`);
      else keys.push(key);
    } catch (err) {
      problems.push(`line ${i + 1}: ${(err as Error).message}`);
    }
  });
  if (problems.length > 0) exit(1, `no key added, standard input has problems:\n  ${problems.join('\n  ')}`);
  if (keys.length === 0) exit(1, 'no public key on standard input');
  return keys;
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
        prune: { type: 'boolean' },
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
    return emptyUsersFile();
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
  const [sub, nameArg, third, ...extra] = positionals;
  if (extra.length > 0) exit(2, `unexpected argument "${extra[0]}"`);
  if (third !== undefined && sub !== 'remove-key' && sub !== 'set-auth-methods') exit(2, `unexpected argument "${third}"`);
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
      data.users[name] = {
        password,
        home,
        permissions,
        groups: values.group ?? [],
        disabled: false,
        publicKeys: [],
      };
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
    case 'add-key': {
      const data = await load(file, false);
      const name = requireName(nameArg, data);
      const keys = parseKeyLines(await readStdinText());
      const user = data.users[name];
      for (const key of keys)
        if (user.publicKeys.some((k) => k.data.equals(key.data))) exit(1, `no key added: user ${name} already has key ${key.fingerprint}`);
      user.publicKeys.push(...keys);
      await saveUsersFile(file, data);
      for (const key of keys) console.log(`added key ${key.fingerprint} (${key.type}) to ${name}`);
      return;
    }
    case 'remove-key': {
      const data = await load(file, false);
      const name = requireName(nameArg, data);
      if (!third) exit(2, 'user remove-key needs the key fingerprint (SHA256:…, as user list shows it)');
      const fingerprint = third.startsWith('SHA256:') ? third : `SHA256:${third}`;
      const user = data.users[name];
      const index = user.publicKeys.findIndex((k) => k.fingerprint === fingerprint);
      if (index < 0) exit(1, `user ${name} has no key ${fingerprint}`);
      if (user.publicKeys.length === 1 && user.authMethods?.includes('publickey'))
        exit(1, `${fingerprint} is the last key of ${name}, whose auth methods require one; add another key or change the methods first`);
      user.publicKeys.splice(index, 1);
      await saveUsersFile(file, data);
      console.log(`removed key ${fingerprint} from ${name}`);
      return;
    }
    case 'set-auth-methods': {
      const data = await load(file, false);
      const name = requireName(nameArg, data);
      if (!third) exit(2, 'user set-auth-methods needs METHODS: publickey,password | publickey | password | any');
      const user = data.users[name];
      if (third === 'any') delete user.authMethods;
      else {
        const methods = parseAuthMethods(third);
        if (typeof methods === 'string') exit(2, `METHODS: ${methods}, or any`);
        if (methods.includes('publickey') && user.publicKeys.length === 0)
          exit(1, `${name} has no public key: add one first (user add-key ${name} < key.pub), or the user could not log in`);
        user.authMethods = methods;
      }
      await saveUsersFile(file, data);
      console.log(`auth methods of ${name}: ${describeAuthMethods(user.authMethods)}`);
      return;
    }
    case 'list': {
      if (nameArg) exit(2, `unexpected argument "${nameArg}"`);
      const data = await load(file, false);
      // Never prints hashes; keys by fingerprint (as ssh-keygen -lf and the SSH client show them) under their user.
      const users = Object.entries(data.users);
      const rows = users.map(([name, u]) => [name + (u.disabled ? ' (disabled)' : ''), u.home, u.groups.join(','), describeAuthMethods(u.authMethods)]);
      const table = [['NAME', 'HOME', 'GROUPS', 'AUTH'], ...rows];
      const widths = [0, 1, 2].map((i) => Math.max(...table.map((r) => r[i].length)));
      const line = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
      console.log(line(table[0]));
      users.forEach(([, u], i) => {
        console.log(line(rows[i]));
        for (const k of u.publicKeys) console.log(`  key ${k.fingerprint} ${k.type}${k.comment ? ` ${k.comment}` : ''}`);
      });
      return;
    }
    default:
      exit(2, sub ? `unknown user command "${sub}"\n${USAGE}` : USAGE);
  }
}

function databaseUrl(): string {
  const url = process.env.FTP_USERS_DATABASE_URL;
  if (!url) exit(2, 'set FTP_USERS_DATABASE_URL to the PostgreSQL user store (postgres://user@host:5432/db)');
  return url;
}

/** Who the audit trail names for changes made here. */
const operator = (): Actor => ({ name: process.env.SUDO_USER || process.env.USER || 'ftpctl', via: 'ftpctl' });

async function dbCommand(args: string[]): Promise<void> {
  const [sub, ...extra] = args;
  if (sub !== 'migrate') exit(2, sub ? `unknown db command "${sub}"\n${USAGE}` : USAGE);
  if (extra.length > 0) exit(2, `unexpected argument "${extra[0]}"`);
  const result = await migrateUserStore(databaseUrl(), { log: (message) => console.log(message) });
  console.log(result.applied.length > 0 ? `schema at version ${result.to} (was ${result.from})` : `schema already at version ${result.to}`);
}

/** Opens the PostgreSQL user store (migrating it first), runs `work`, closes it. */
async function withDatabase<T>(work: (store: Awaited<ReturnType<typeof createPostgresStore>>) => Promise<T>): Promise<T> {
  const store = await createPostgresStore({ connection: databaseUrl(), dataRoot: process.env.FTP_DATA_DIR || './data', migrate: true });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

async function usersCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args);
  const [sub, fileArg, ...extra] = positionals;
  if (extra.length > 0) exit(2, `unexpected argument "${extra[0]}"`);
  switch (sub) {
    case 'import': {
      if (!fileArg) exit(2, 'users import needs the users FILE to read');
      const data = await load(fileArg, false);
      const result = await withDatabase((store) => store.importAll(data, operator(), { prune: values.prune }));
      if (data.anonymous.enabled) console.error('ftpctl: note: anonymous login is a users-file setting; it is not imported');
      console.log(`imported ${result.users} users and ${result.groups} groups into PostgreSQL${values.prune ? ' (others deleted)' : ''}`);
      return;
    }
    case 'export': {
      if (values.prune) exit(2, '--prune is for users import');
      const data = await withDatabase((store) => store.exportAll());
      if (fileArg) {
        await saveUsersFile(fileArg, data); // mode 0600: it holds password hashes
        console.error(`exported ${Object.keys(data.users).length} users and ${Object.keys(data.groups).length} groups to ${fileArg}`);
      } else process.stdout.write(stringifyUsersFile(data));
      return;
    }
    default:
      exit(2, sub ? `unknown users command "${sub}"\n${USAGE}` : USAGE);
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
  if (command === 'users') return usersCommand(rest);
  if (command === 'db') return dbCommand(rest);
  exit(2, command ? `unknown command "${command}"\n${USAGE}` : USAGE);
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  const code = (err as { exitCode?: number }).exitCode ?? 1;
  console.error(`ftpctl: ${(err as Error).message}`);
  process.exitCode = code;
}
