import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Document, isPair, isScalar, isSeq, LineCounter, parse, parseDocument, visit } from 'yaml';
import {
  ANONYMOUS_NAMES,
  checkHome,
  groupDocument,
  GROUP_NAME_PATTERN,
  isObject,
  parseGroupDocument,
  parseUserDocument,
  USER_NAME_PATTERN,
  userDocument,
  type GroupRecord,
  type LineOf,
  type UserRecord,
} from './records';

export {
  ALL_PERMISSIONS,
  ANONYMOUS_NAMES,
  checkHome,
  checkPermission,
  USER_NAME_PATTERN,
  type LineOf,
  type UserRecord,
} from './records';

/** The users file: users, the groups they may name, and the anonymous login. */
export interface UsersFileData {
  users: Record<string, UserRecord>;
  /**
   * Groups with settings for their members (see resolve.ts). A user may also name a group that is not defined here:
   * it is then only a label, as in files written before groups had settings.
   */
  groups: Record<string, GroupRecord>;
  anonymous: { enabled: boolean; home: string };
}

/** An empty users file. */
export const emptyUsersFile = (): UsersFileData => ({ users: {}, groups: {}, anonymous: { enabled: false, home: 'pub' } });

/** Validates parsed YAML into UsersFileData; throws one Error listing every problem. */
export function validateUsersFile(raw: unknown, source = 'users file', lineOf?: LineOf): UsersFileData {
  const errors: string[] = [];
  const data = emptyUsersFile();
  if (raw === undefined || raw === null) raw = {};
  if (!isObject(raw)) throw new Error(`${source}: must be a mapping with "users", "groups" and "anonymous"`);
  for (const key of Object.keys(raw)) if (!['users', 'groups', 'anonymous'].includes(key)) errors.push(`unknown top-level key "${key}"`);

  if (isObject(raw.anonymous)) {
    for (const key of Object.keys(raw.anonymous))
      if (key !== 'enabled' && key !== 'home') errors.push(`anonymous: unknown key "${key}"`);
    const enabled = raw.anonymous.enabled;
    if (enabled !== undefined && enabled !== null && typeof enabled !== 'boolean') errors.push('anonymous.enabled: must be true or false');
    data.anonymous.enabled = enabled === true;
    const home = raw.anonymous.home ?? 'pub';
    const problem = typeof home === 'string' ? checkHome(home) : 'must be a string';
    if (problem) errors.push(`anonymous.home: ${problem}`);
    else data.anonymous.home = home as string;
  } else if (raw.anonymous !== undefined && raw.anonymous !== null) errors.push('anonymous: must be a mapping');

  if (isObject(raw.groups)) {
    for (const [name, group] of Object.entries(raw.groups)) {
      const at = `groups.${name}`;
      if (!GROUP_NAME_PATTERN.test(name)) errors.push(`${at}: name must match ${GROUP_NAME_PATTERN.source}`);
      const record = parseGroupDocument(group, { at, errors });
      if (record) data.groups[name] = record;
    }
  } else if (raw.groups !== undefined && raw.groups !== null) errors.push('groups: must be a mapping of group name to settings');

  if (isObject(raw.users)) {
    for (const [name, user] of Object.entries(raw.users)) {
      const at = `users.${name}`;
      if (!USER_NAME_PATTERN.test(name)) errors.push(`${at}: name must match ${USER_NAME_PATTERN.source}`);
      // With anonymous on, these names log in anonymously; a real account under them would be unreachable.
      if (data.anonymous.enabled && (ANONYMOUS_NAMES as readonly string[]).includes(name.toLowerCase()))
        errors.push(`${at}: name is reserved for anonymous login while anonymous.enabled is true`);
      const record = parseUserDocument(name, user, { at, errors, lineOf, keyPath: ['users', name] });
      if (record) data.users[name] = record;
    }
  } else if (raw.users !== undefined && raw.users !== null) errors.push('users: must be a mapping of user name to settings');

  if (errors.length > 0) throw new Error(`${source}: invalid users file:\n  ${errors.join('\n  ')}`);
  return data;
}

/** Parses and validates users-file YAML text. */
export function parseUsersFile(text: string, source = 'users file'): UsersFileData {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  return validateUsersFile(raw, source, lineFinder(text));
}

// Only asked when something is wrong, so a good file is parsed once.
function lineFinder(text: string): LineOf {
  let doc: { getIn(path: unknown[], keepScalar: true): unknown } | undefined;
  const lineCounter = new LineCounter();
  return (at) => {
    doc ??= parseDocument(text, { lineCounter });
    const node = doc.getIn(at, true) as { range?: [number, number, number] } | undefined;
    return node?.range ? lineCounter.linePos(node.range[0]).line : undefined;
  };
}

/** Reads and validates the users file. */
export async function loadUsersFile(file: string): Promise<UsersFileData> {
  return parseUsersFile(await readFile(file, 'utf8'), file);
}

/** Renders UsersFileData as YAML, leaving out settings that equal their defaults. */
export function stringifyUsersFile(data: UsersFileData): string {
  const users: Record<string, unknown> = {};
  for (const [name, u] of Object.entries(data.users)) users[name] = userDocument(u);
  const groups: Record<string, unknown> = {};
  for (const [name, g] of Object.entries(data.groups)) groups[name] = groupDocument(g);
  const header = '# FTP users. Passwords are scrypt hashes: npm run ftpctl -- hash-password\n';
  const doc = new Document(Object.keys(groups).length > 0 ? { users, groups, anonymous: data.anonymous } : { users, anonymous: data.anonymous });
  // Lists read best inline: "/: [list, download]"; keys are long, one per line.
  visit(doc, {
    Seq(_key, node, path) {
      const parent = path[path.length - 1];
      const isKeys = isPair(parent) && isScalar(parent.key) && parent.key.value === 'public_keys';
      if (isSeq(node)) node.flow = !isKeys;
    },
  });
  return header + doc.toString({ flowCollectionPadding: false, lineWidth: 0 });
}

/**
 * Writes the users file atomically (temp file in the same folder, fsync, rename) with mode 0600,
 * so a server reloading it never sees half a file. With `exclusive`, fails with EEXIST instead of
 * replacing an existing file (several replicas may bootstrap the same shared file at once).
 */
export async function saveUsersFile(file: string, data: UsersFileData, options: { exclusive?: boolean } = {}): Promise<void> {
  const text = stringifyUsersFile(data);
  parseUsersFile(text, file); // never write a file the server would refuse
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (options.exclusive) await link(tmp, file);
    else await rename(tmp, file);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
