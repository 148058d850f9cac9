import fsp from 'node:fs/promises';
import type { DiskSpace } from './types';

/**
 * SftpContext.diskSpace for local storage: statfs of the user's root (host path), whatever path was asked (they all
 * live on that file system, as far as the user can see). The host path never reaches the client.
 */
export function localDiskSpace(root: string): (path: string) => Promise<DiskSpace> {
  return async () => {
    const st = await fsp.statfs(root);
    return {
      blockSize: st.bsize,
      blocks: st.blocks,
      blocksFree: st.bfree,
      blocksAvailable: st.bavail,
      files: st.files,
      filesFree: st.ffree,
      nameMax: 255,
    };
  };
}
