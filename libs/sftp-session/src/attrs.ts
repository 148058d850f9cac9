import type { FileStat } from '@ftp/storage';
import type { Attributes } from 'ssh2';
import { SftpError, STATUS } from './status';

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

/**
 * The ATTRS of an entry: size, type and permission bits, access and modification time (atime is reported as mtime;
 * the storage keeps no atime). No uid/gid: owners are not ours to show, and clients do without them.
 */
export function toAttrs(stat: Pick<FileStat, 'type' | 'size' | 'mtime' | 'mode'>): Attributes {
  const seconds = Math.floor(stat.mtime.getTime() / 1000);
  return {
    mode: (stat.type === 'dir' ? S_IFDIR : S_IFREG) | (stat.mode & 0o7777),
    size: stat.size,
    atime: seconds,
    mtime: seconds,
  } as Attributes; // ssh2 writes only the fields present (no uid/gid here)
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const HALF_YEAR_MS = ((365 * 24 * 60 * 60) / 2) * 1000;

/**
 * READDIR's `longname`, laid out as OpenSSH's sftp-server does (`ls_file`: mode, links, owner and group padded to
 * 8, size to 8, `%b %e %H:%M` within the last half year, else `%b %e  %Y`), in UTC like our FTP listings. Owner and
 * group are the session's user; the link count is 1.
 */
export function longname(entry: Pick<FileStat, 'name' | 'type' | 'size' | 'mtime' | 'mode'>, owner: string, now: Date): string {
  const t = entry.mtime;
  const age = now.getTime() - t.getTime();
  const day = String(t.getUTCDate()).padStart(2, ' ');
  const when =
    age >= 0 && age < HALF_YEAR_MS
      ? `${String(t.getUTCHours()).padStart(2, '0')}:${String(t.getUTCMinutes()).padStart(2, '0')}`
      : ` ${t.getUTCFullYear()}`;
  const mode = (entry.type === 'dir' ? 'd' : '-') + permissionString(entry.mode);
  const name = owner.padEnd(8);
  return `${mode}    1 ${name} ${name} ${String(entry.size).padStart(8)} ${MONTHS[t.getUTCMonth()]} ${day} ${when} ${entry.name}`;
}

function permissionString(mode: number): string {
  let s = '';
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (mode >> shift) & 7;
    s += (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 1 ? 'x' : '-');
  }
  return s;
}

/** ATTRS as a client sends them: ssh2 sets only the fields whose flag was present. */
export type RequestedAttrs = Partial<Attributes>;

/**
 * What SETSTAT/FSETSTAT may change: the modification time (clients preserve times with `-p`). Changing the owner is
 * refused (PERMISSION_DENIED), truncating or extending (size) is not supported (OP_UNSUPPORTED; FSETSTAT on an open
 * upload takes the size out first and cuts the partial), permission bits are
 * accepted and ignored (the server decides modes, as for FTP uploads). Checked before anything is applied.
 */
export function settableMtime(attrs: RequestedAttrs): Date | undefined {
  if (attrs.uid !== undefined || attrs.gid !== undefined) {
    throw new SftpError(STATUS.PERMISSION_DENIED, 'Changing the owner or group is not allowed');
  }
  if (attrs.size !== undefined) throw new SftpError(STATUS.OP_UNSUPPORTED, 'Changing the size is not supported');
  if (attrs.mtime === undefined) return undefined;
  if (!Number.isFinite(attrs.mtime)) throw new SftpError(STATUS.FAILURE, 'Invalid time');
  return new Date(attrs.mtime * 1000);
}
