/**
 * What every ftpctl command reads from its operator: passwords and keys from standard input (never from argv, which
 * `ps` shows), `--perm` rules; and how a command fails (an exit code, 2 = usage).
 */
import { createInterface } from 'node:readline';
import { parseAuthorizedKey } from '../publicKeys';
import { ALL_PERMISSIONS, checkPermission } from '../records';
import type { Permission, PublicKey } from '../types';

// authorized_keys files are small; this only stops a mistaken pipe from filling memory.
const MAX_STDIN_BYTES = 1 << 20;

/** An error that ends the program with a message and an exit code (2 = usage). */
export function fail(code: 1 | 2, message: string): never {
  throw Object.assign(new Error(message), { exitCode: code });
}

/** First line of stdin without its line ending; passwords are never taken from argv (visible in ps). */
export async function readPasswordLine(): Promise<string> {
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
  if (password === '') fail(1, 'empty password on standard input');
  return password;
}

/** All of stdin as text (public keys: several lines). */
export async function readStdinText(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Paste public keys (authorized_keys lines), then Ctrl-D:\n');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_STDIN_BYTES) fail(1, `more than ${MAX_STDIN_BYTES} bytes on standard input`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Keys of authorized_keys text: blank and # lines skipped, every bad line reported with its number. */
export function parseKeyLines(text: string): PublicKey[] {
  // Never echo a private key, not even a piece of it in an error.
  if (/PRIVATE KEY/.test(text)) fail(1, 'standard input holds a private key: give the public one (the .pub file)');
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
  if (problems.length > 0) fail(1, `no key added, standard input has problems:\n  ${problems.join('\n  ')}`);
  if (keys.length === 0) fail(1, 'no public key on standard input');
  return keys;
}

export function parsePerms(specs: string[] | undefined): Record<string, Permission[]> {
  if (!specs || specs.length === 0) return { '/': [...ALL_PERMISSIONS] };
  const perms: Record<string, Permission[]> = {};
  for (const spec of specs) {
    const eq = spec.lastIndexOf('=');
    const folder = spec.slice(0, eq);
    if (eq < 0 || !folder.startsWith('/')) fail(2, `--perm ${spec}: expected /folder=perm,perm`);
    const list = spec.slice(eq + 1).split(',').filter(Boolean);
    for (const perm of list) {
      const problem = checkPermission(perm);
      if (problem) fail(2, `--perm ${spec}: ${problem} (known: ${ALL_PERMISSIONS.join(', ')})`);
    }
    perms[folder] = list as Permission[];
  }
  if (!('/' in perms)) fail(2, '--perm: a rule for "/" is required, e.g. --perm /=list,download');
  return perms;
}

/** The options of `user add` and its relatives, the same whether ftpctl edits the users file or calls the API. */
export const USER_OPTIONS = {
  'password-stdin': { type: 'boolean' },
  home: { type: 'string' },
  perm: { type: 'string', multiple: true },
  group: { type: 'string', multiple: true },
} as const;
