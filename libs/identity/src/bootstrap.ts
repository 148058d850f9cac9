import { randomBytes } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { hashPassword } from './password';
import { ALL_PERMISSIONS, saveUsersFile } from './usersFile';

const URL_SAFE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A random password from the URL-safe alphabet; 64 symbols divide 256, so `byte & 63` is unbiased. */
export function randomPassword(length = 20): string {
  return [...randomBytes(length)].map((b) => URL_SAFE[b & 63]).join('');
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * First start: creates the users file with a `demo` user and a random password, returned so the
 * server can print it once. There is deliberately no default password. An existing file is never touched.
 */
export async function ensureUsersFile(
  usersFile: string,
  dataRoot: string,
): Promise<{ created: boolean; user?: string; password?: string }> {
  if (await exists(usersFile)) return { created: false };
  const user = 'demo';
  const password = randomPassword();
  const data = {
    users: {
      [user]: {
        password: await hashPassword(password),
        home: user,
        permissions: { '/': [...ALL_PERMISSIONS] },
        groups: [],
        disabled: false,
        publicKeys: [],
      },
    },
    groups: {},
    anonymous: { enabled: false, home: 'pub' },
  };
  try {
    await saveUsersFile(usersFile, data, { exclusive: true });
  } catch (err) {
    // Another replica created it first: theirs wins, and they print the password.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { created: false };
    throw err;
  }
  await mkdir(path.resolve(dataRoot, user), { recursive: true });
  return { created: true, user, password };
}
