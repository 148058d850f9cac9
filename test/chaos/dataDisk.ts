import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The run's folder (ledger, pipelines file, outbox, resume files) and in it the shared data folder: as root a tmpfs of
 * its own (so that filling it fills nothing else), otherwise a plain folder and the full-disk fault is skipped.
 * `close()` unmounts and removes everything, and so do exit and SIGINT/SIGTERM/SIGHUP (not a temp folder of
 * test/support/processes.ts: its clean-up would try to delete a mounted folder).
 */

export interface DataDisk {
  /** The run's folder. */
  root: string;
  /** FTP_DATA_DIR of the edges and workers. */
  dir: string;
  /** Why the disk cannot be filled ('' when it can). */
  cannotFill: string;
  /** Fills the disk up to `leaveBytes` free with one file; returns its size. */
  fill(leaveBytes?: number): number;
  /** Removes the filler. */
  free(): void;
  usage(): { usedBytes: number; totalBytes: number };
  close(): void;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

export function openDataDisk(sizeBytes: number): DataDisk {
  const root = mkdtempSync(join(tmpdir(), 'ftp-chaos-'));
  const mountPoint = join(root, 'disk');
  mkdirSync(mountPoint);
  let mounted = false;
  let cannotFill = '';
  if (!isRoot()) cannotFill = 'not root: cannot mount a tmpfs of its own to fill';
  else {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'chaos-data', mountPoint], { stdio: 'pipe' });
      mounted = true;
    } catch (err) {
      cannotFill = `mount -t tmpfs failed: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`;
    }
  }
  const dir = join(mountPoint, 'data');
  mkdirSync(dir);
  const filler = join(mountPoint, 'filler');

  const cleanUp = () => {
    if (mounted) {
      mounted = false;
      // Lazy: a process that still holds a file there cannot keep the mount alive.
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    }
    rmSync(root, { recursive: true, force: true });
  };
  const onExit = () => cleanUp();
  const onSignal = (signal: NodeJS.Signals) => {
    cleanUp();
    // Alone, this handler would swallow the signal: end the process the way the signal would have.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.on('exit', onExit);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, onSignal);

  return {
    root,
    dir,
    cannotFill,
    fill(leaveBytes = 0) {
      if (cannotFill) throw new Error(cannotFill);
      const { bavail, bsize } = statfsSync(mountPoint);
      const bytes = Math.max(0, bavail * bsize - leaveBytes);
      const fd = openSync(filler, 'w');
      try {
        const block = Buffer.alloc(1024 * 1024, 0x5a);
        for (let left = bytes; left > 0; ) {
          const n = writeSync(fd, block, 0, Math.min(block.length, left));
          left -= n;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
      return bytes;
    },
    free() {
      rmSync(filler, { force: true });
    },
    usage() {
      const { blocks, bfree, bsize } = statfsSync(mountPoint);
      return { usedBytes: (blocks - bfree) * bsize, totalBytes: blocks * bsize };
    },
    close() {
      process.off('exit', onExit);
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
      cleanUp();
    },
  };
}
