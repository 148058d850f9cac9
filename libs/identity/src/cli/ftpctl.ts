// ftpctl: manage the users file from a shell. Run: npm run ftpctl -- <command>
// Exit codes: 0 success, 1 failure, 2 usage error.
import { parseArgs } from 'node:util';
import { describeAuthMethods, parseAuthMethods } from '../authMethods';
import { hashPassword } from '../password';
import { migrateUserStore } from '../pgMigrate';
import { createPostgresStore } from '../pgStore';
import type { Actor } from '../store';
import { API_USAGE, apiCommand, takeApiOption } from './ftpctlApi';
import { LIMITS_USAGE, setUserLimits, showUserLimits } from './ftpctlLimits';
import { TOKEN_USAGE, tokenCommand } from './ftpctlTokens';
import { fail, parseKeyLines, parsePerms, readPasswordLine, readStdinText, USER_OPTIONS } from './input';
import { LIMIT_OPTIONS } from './limitsInput';
import {
  USER_NAME_PATTERN,
  checkHome,
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
${LIMITS_USAGE}
  quota scan [NAME]                     (with --api only) recount users' stored bytes and files from storage
  db migrate                            bring the PostgreSQL user store's schema to the newest version
  users import FILE [--prune]           copy a users file's users and groups into PostgreSQL (--prune: delete the others)
  users export [FILE]                   write PostgreSQL's users and groups as a users file (FILE, mode 0600; or stdout)
${TOKEN_USAGE}
${API_USAGE}`;

function parse(args: string[]) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      options: { ...USER_OPTIONS, ...LIMIT_OPTIONS, prune: { type: 'boolean' }, config: { type: 'string' } },
    });
  } catch (err) {
    fail(2, (err as Error).message);
  }
}

async function load(file: string, missingOk: boolean): Promise<UsersFileData> {
  try {
    return await loadUsersFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') fail(1, (err as Error).message);
    if (!missingOk) fail(1, `${file}: no such users file (set FTP_USERS_FILE)`);
    return emptyUsersFile();
  }
}

function requireName(name: string | undefined, data?: UsersFileData): string {
  if (!name) fail(2, 'missing user NAME');
  if (!USER_NAME_PATTERN.test(name)) fail(2, `invalid user name "${name}": must match ${USER_NAME_PATTERN.source}`);
  if (data && !Object.hasOwn(data.users, name)) fail(1, `no user "${name}"`);
  return name;
}

async function userCommand(file: string, args: string[]): Promise<void> {
  const { values, positionals } = parse(args);
  const [sub, nameArg, third, ...extra] = positionals;
  if (extra.length > 0) fail(2, `unexpected argument "${extra[0]}"`);
  if (third !== undefined && sub !== 'remove-key' && sub !== 'set-auth-methods') fail(2, `unexpected argument "${third}"`);
  switch (sub) {
    case 'add': {
      const data = await load(file, true);
      const name = requireName(nameArg);
      if (Object.hasOwn(data.users, name)) fail(1, `user "${name}" already exists`);
      if (!values['password-stdin']) fail(2, 'user add needs --password-stdin');
      const home = values.home ?? name;
      const homeProblem = checkHome(home);
      if (homeProblem) fail(2, `--home: ${homeProblem}`);
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
      if (!values['password-stdin']) fail(2, 'user passwd needs --password-stdin');
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
        if (user.publicKeys.some((k) => k.data.equals(key.data))) fail(1, `no key added: user ${name} already has key ${key.fingerprint}`);
      user.publicKeys.push(...keys);
      await saveUsersFile(file, data);
      for (const key of keys) console.log(`added key ${key.fingerprint} (${key.type}) to ${name}`);
      return;
    }
    case 'remove-key': {
      const data = await load(file, false);
      const name = requireName(nameArg, data);
      if (!third) fail(2, 'user remove-key needs the key fingerprint (SHA256:…, as user list shows it)');
      const fingerprint = third.startsWith('SHA256:') ? third : `SHA256:${third}`;
      const user = data.users[name];
      const index = user.publicKeys.findIndex((k) => k.fingerprint === fingerprint);
      if (index < 0) fail(1, `user ${name} has no key ${fingerprint}`);
      if (user.publicKeys.length === 1 && user.authMethods?.includes('publickey'))
        fail(1, `${fingerprint} is the last key of ${name}, whose auth methods require one; add another key or change the methods first`);
      user.publicKeys.splice(index, 1);
      await saveUsersFile(file, data);
      console.log(`removed key ${fingerprint} from ${name}`);
      return;
    }
    case 'set-auth-methods': {
      const data = await load(file, false);
      const name = requireName(nameArg, data);
      if (!third) fail(2, 'user set-auth-methods needs METHODS: publickey,password | publickey | password | any');
      const user = data.users[name];
      if (third === 'any') delete user.authMethods;
      else {
        const methods = parseAuthMethods(third);
        if (typeof methods === 'string') fail(2, `METHODS: ${methods}, or any`);
        if (methods.includes('publickey') && user.publicKeys.length === 0)
          fail(1, `${name} has no public key: add one first (user add-key ${name} < key.pub), or the user could not log in`);
        user.authMethods = methods;
      }
      await saveUsersFile(file, data);
      console.log(`auth methods of ${name}: ${describeAuthMethods(user.authMethods)}`);
      return;
    }
    case 'set':
      return setUserLimits(file, requireName(nameArg), values);
    case 'show':
      return showUserLimits(file, requireName(nameArg), values.config);
    case 'list': {
      if (nameArg) fail(2, `unexpected argument "${nameArg}"`);
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
      fail(2, sub ? `unknown user command "${sub}"\n${USAGE}` : USAGE);
  }
}

function databaseUrl(): string {
  const url = process.env.FTP_USERS_DATABASE_URL;
  if (!url) fail(2, 'set FTP_USERS_DATABASE_URL to the PostgreSQL user store (postgres://user@host:5432/db)');
  return url;
}

/** Who the audit trail names for changes made here. */
const operator = (): Actor => ({ name: process.env.SUDO_USER || process.env.USER || 'ftpctl', via: 'ftpctl' });

async function dbCommand(args: string[]): Promise<void> {
  const [sub, ...extra] = args;
  if (sub !== 'migrate') fail(2, sub ? `unknown db command "${sub}"\n${USAGE}` : USAGE);
  if (extra.length > 0) fail(2, `unexpected argument "${extra[0]}"`);
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
  if (extra.length > 0) fail(2, `unexpected argument "${extra[0]}"`);
  switch (sub) {
    case 'import': {
      if (!fileArg) fail(2, 'users import needs the users FILE to read');
      const data = await load(fileArg, false);
      const result = await withDatabase((store) => store.importAll(data, operator(), { prune: values.prune }));
      if (data.anonymous.enabled) console.error('ftpctl: note: anonymous login is a users-file setting; it is not imported');
      console.log(`imported ${result.users} users and ${result.groups} groups into PostgreSQL${values.prune ? ' (others deleted)' : ''}`);
      return;
    }
    case 'export': {
      if (values.prune) fail(2, '--prune is for users import');
      const data = await withDatabase((store) => store.exportAll());
      if (fileArg) {
        await saveUsersFile(fileArg, data); // mode 0600: it holds password hashes
        console.error(`exported ${Object.keys(data.users).length} users and ${Object.keys(data.groups).length} groups to ${fileArg}`);
      } else process.stdout.write(stringifyUsersFile(data));
      return;
    }
    default:
      fail(2, sub ? `unknown users command "${sub}"\n${USAGE}` : USAGE);
  }
}

async function main(argv: string[]): Promise<void> {
  const file = process.env.FTP_USERS_FILE || './users.yaml';
  // --api URL: the same commands against a running cluster's admin API.
  const remote = takeApiOption(argv);
  if (remote) return apiCommand(remote.url, remote.args);
  const [command, ...rest] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return;
  }
  if (command === 'hash-password') {
    if (rest.length > 0) fail(2, 'hash-password takes no arguments; it reads the password from stdin');
    console.log(await hashPassword(await readPasswordLine()));
    return;
  }
  if (command === 'user') return userCommand(file, rest);
  if (command === 'users') return usersCommand(rest);
  if (command === 'db') return dbCommand(rest);
  if (command === 'token') return tokenCommand(rest);
  if (command === 'quota')
    fail(
      2,
      'quota scan runs in the edge, which has the homes (FTP_DATA_DIR) and the cluster state the usage lives in (in its memory without REDIS_URL): use ftpctl --api URL quota scan [NAME]',
    );
  fail(2, command ? `unknown command "${command}"\n${USAGE}` : USAGE);
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  const code = (err as { exitCode?: number }).exitCode ?? 1;
  console.error(`ftpctl: ${(err as Error).message}`);
  process.exitCode = code;
}
