import fsp from 'node:fs/promises';
import type { UsageLedger } from '@ftp/cluster-state';
import type { EffectiveLimits } from '@ftp/identity';

/** A file system's size and room, as statvfs(2) gives it (SFTP statvfs@openssh.com; FTP AVBL uses the bytes available). */
export interface DiskSpace {
  blockSize: number;
  blocks: number;
  blocksFree: number;
  blocksAvailable: number;
  files: number;
  filesFree: number;
  nameMax: number;
}

/** Bytes a user may still store according to `space`. */
export const bytesAvailable = (space: DiskSpace) => space.blocksAvailable * space.blockSize;

/**
 * Disk space for local storage: statfs of the user's root (host path), whatever path was asked (they all live on that
 * file system, as far as the user can see). The host path never reaches the client.
 */
export function localDiskSpace(root: string): (path: string) => Promise<DiskSpace> {
  return async () => {
    const st = await fsp.statfs(root);
    return { blockSize: st.bsize, blocks: st.blocks, blocksFree: st.bfree, blocksAvailable: st.bavail, files: st.files, filesFree: st.ffree, nameMax: 255 };
  };
}

/**
 * The space a user with a storage quota sees: the quota as the file system's size and what is left of it as the room
 * (never more than the disk's own room), as SFTPGo and ProFTPD's mod_quotatab report it. Without a quota, the disk's.
 * Usage not known yet (never scanned) counts as empty: the first upload scans it. `limits` are read at each call.
 */
export function quotaDiskSpace(disk: (path: string) => Promise<DiskSpace>, user: string, currentLimits: () => EffectiveLimits, usage: UsageLedger) {
  return async (path: string): Promise<DiskSpace> => {
    const limits = currentLimits();
    if (limits.quotaBytes === 0 && limits.quotaFiles === 0) return disk(path);
    const [space, used] = await Promise.all([disk(path), usage.get(user)]);
    const out = { ...space };
    if (limits.quotaBytes > 0) {
      // In bytes (a block of 1): the room is exact, and `df` in OpenSSH's sftp still reads it right.
      const room = Math.max(0, limits.quotaBytes - (used?.bytes ?? 0));
      out.blockSize = 1;
      out.blocks = limits.quotaBytes;
      out.blocksFree = Math.min(space.blocksFree * space.blockSize, room);
      out.blocksAvailable = Math.min(space.blocksAvailable * space.blockSize, room);
    }
    if (limits.quotaFiles > 0) {
      out.files = limits.quotaFiles;
      out.filesFree = Math.min(space.filesFree, Math.max(0, limits.quotaFiles - (used?.files ?? 0)));
    }
    return out;
  };
}
