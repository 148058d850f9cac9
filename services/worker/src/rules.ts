import type { UploadEvent } from '@ftp/upload-events';

/** Which uploads a pipeline applies to; every given criterion must hold (absent = any). */
export interface Match {
  users?: string[];
  groups?: string[];
  /** Globs on the virtual path: `*` within one folder, `**` across folders, `?` one character. */
  paths?: string[];
}

export function matches(match: Match, event: UploadEvent): boolean {
  if (match.users && !match.users.includes(event.user)) return false;
  if (match.groups && !match.groups.some((group) => event.groups.includes(group))) return false;
  if (match.paths && !match.paths.some((glob) => globToRegExp(glob).test(event.path))) return false;
  return true;
}

const cache = new Map<string, RegExp>();

/** A path glob as an anchored regular expression (Node 20 has no path.matchesGlob). */
export function globToRegExp(glob: string): RegExp {
  let regexp = cache.get(glob);
  if (regexp) return regexp;
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === '*' && glob[i + 1] === '*') {
      // `/**/` also matches a single `/`, so `/inbox/**/x` matches `/inbox/x`.
      if (glob[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  regexp = new RegExp(`^${source}$`);
  cache.set(glob, regexp);
  return regexp;
}
