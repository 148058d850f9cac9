import { storageError } from '../errors';
import { isPartialName } from '../partial';
import type { StorageLimits } from '../types';
import { assertPathLimits, basenameOf, resolveVirtualPath, virtualSegments } from '../virtualPath';

/** S3 refuses keys longer than this many UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;

/** Where a virtual path lives in the bucket. */
export interface Location {
  /** The normalized virtual path (`/a/b`). */
  path: string;
  /** Its last name (`b`; `/` for the root). */
  name: string;
  isRoot: boolean;
  /** The object that is the file: `<prefix>a/b` (the prefix itself for the root, which is never a file). */
  key: string;
  /** The prefix of what the folder holds, which is also its marker object: `<prefix>a/b/` (the prefix for the root). */
  folder: string;
  /** The folder prefix of the parent (`<prefix>a/`). */
  parent: string;
}

/** Maps virtual paths to keys under one prefix. */
export interface KeySpace {
  readonly prefix: string;
  /** Normalizes `vpath` as the local backend does and checks the same limits: the key can never leave the prefix. */
  locate(vpath: string): Location;
  /** The name a key or folder prefix has inside `folder`, or undefined when it is no name a client may see. */
  nameIn(folder: string, keyOrPrefix: string): string | undefined;
}

/**
 * `prefix` is the user's home (`homes/alice/`; '' for a whole bucket). Paths are resolved against `/` with `..`
 * clamped there, so every key starts with the prefix; NUL, CR and LF are 'bad-name', partial-upload names are reserved
 * ('bad-name') as locally, and the path limits are the local ones, the length also bounded by S3's 1024-byte keys.
 */
export function createKeySpace(rawPrefix: string, limits: StorageLimits): KeySpace {
  const prefix = rawPrefix === '' || rawPrefix.endsWith('/') ? rawPrefix : `${rawPrefix}/`;
  if (prefix.startsWith('/')) throw new Error('S3 prefix must not start with /');
  // `/a/b` is 4 bytes and its folder marker `<prefix>a/b/` is prefix + 4: the marker must fit in a key.
  const pathLimits = { ...limits, maxPathLength: Math.min(limits.maxPathLength, MAX_KEY_BYTES - Buffer.byteLength(prefix)) };
  return {
    prefix,
    locate(vpath) {
      const path = resolveVirtualPath('/', vpath);
      const segments = virtualSegments(path);
      assertPathLimits(segments, pathLimits);
      if (segments.some(isPartialName)) throw storageError('bad-name');
      const rel = segments.join('/');
      const isRoot = segments.length === 0;
      const parentRel = segments.slice(0, -1).join('/');
      return {
        path,
        name: isRoot ? '/' : basenameOf(path),
        isRoot,
        key: isRoot ? prefix : prefix + rel,
        folder: isRoot ? prefix : `${prefix}${rel}/`,
        parent: parentRel === '' ? prefix : `${prefix}${parentRel}/`,
      };
    },
    nameIn(folder, keyOrPrefix) {
      if (!keyOrPrefix.startsWith(folder)) return undefined;
      const name = keyOrPrefix.slice(folder.length).replace(/\/$/, '');
      return isVisibleName(name) ? name : undefined;
    },
  };
}

/**
 * Keys written by other tools may hold names no client could address (`a//b`, `.`, CR/LF) or reserved ones: those are
 * not shown.
 */
function isVisibleName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\0\r\n]/.test(name) && !isPartialName(name);
}
