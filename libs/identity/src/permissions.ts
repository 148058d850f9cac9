import path from 'node:path';
import type { Permission, User } from './types';

/** Normalizes a virtual path or folder key: leading '/', no trailing '/', no '.'/'..' segments. */
export function normalizeVirtualPath(virtualPath: string): string {
  const normalized = path.posix.normalize('/' + virtualPath);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

function contains(folder: string, target: string): boolean {
  return folder === '/' || target === folder || target.startsWith(folder + '/');
}

/** The permissions of the longest folder key that contains the path ('/' is the fallback; none if absent). */
export function effectivePermissions(user: Pick<User, 'permissions'>, virtualPath: string): readonly Permission[] {
  const target = normalizeVirtualPath(virtualPath);
  let best: string | undefined;
  let bestPerms: readonly Permission[] = [];
  for (const [key, perms] of Object.entries(user.permissions)) {
    const folder = normalizeVirtualPath(key);
    if (contains(folder, target) && (best === undefined || folder.length > best.length)) {
      best = folder;
      bestPerms = perms;
    }
  }
  return bestPerms;
}

/** Whether `user` has `perm` on `virtualPath`. */
export function can(user: Pick<User, 'permissions'>, virtualPath: string, perm: Permission): boolean {
  return effectivePermissions(user, virtualPath).includes(perm);
}

/**
 * Whether `user` has `perm` on a folder and on everything in it: on `virtualPath` and on every folder below it that has
 * a rule of its own. Renaming or removing a folder moves or drops what is inside, so a stricter rule deeper down (a
 * read-only `/pub/archive` under a writable `/pub`) must not be escaped by renaming its ancestor.
 */
export function canWithin(user: Pick<User, 'permissions'>, virtualPath: string, perm: Permission): boolean {
  if (!can(user, virtualPath, perm)) return false;
  const folder = normalizeVirtualPath(virtualPath);
  for (const [key, perms] of Object.entries(user.permissions)) {
    const ruled = normalizeVirtualPath(key);
    if (ruled !== folder && contains(folder, ruled) && !perms.includes(perm)) return false;
  }
  return true;
}

// RFC 3659 §7.5.5 `perm` fact letters and the permission each one needs, checked on the entry's own path
// (for a folder, what its children get may differ if a longer rule exists; clients only use this as a hint).
//  files: r=RETR (download), w=STOR over it (overwrite), a=APPE to it (upload), d=DELE (delete), f=RNFR (rename)
//  dirs:  e=CWD into it (list), l=LIST/MLSD (list), c=STOR inside (upload), m=MKD inside (mkdir),
//         p=delete children (delete), d=RMD (rmdir), f=RNFR (rename)
const FILE_LETTERS: ReadonlyArray<[string, Permission]> = [
  ['a', 'upload'],
  ['d', 'delete'],
  ['f', 'rename'],
  ['r', 'download'],
  ['w', 'overwrite'],
];
const DIR_LETTERS: ReadonlyArray<[string, Permission]> = [
  ['c', 'upload'],
  ['d', 'rmdir'],
  ['e', 'list'],
  ['f', 'rename'],
  ['l', 'list'],
  ['m', 'mkdir'],
  ['p', 'delete'],
];

/** The MLSD `perm` fact value for an entry, e.g. "adfrw" for a fully writable file. */
export function permString(user: Pick<User, 'permissions'>, virtualPath: string, type: 'file' | 'dir'): string {
  const perms = effectivePermissions(user, virtualPath);
  const letters = type === 'file' ? FILE_LETTERS : DIR_LETTERS;
  return letters
    .filter(([, perm]) => perms.includes(perm))
    .map(([letter]) => letter)
    .join('');
}
