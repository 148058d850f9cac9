import type { Handle, ReadHandle, WriteHandle } from './handles';
import type { Session } from './state';
import type { SftpTransfer } from './types';

/** The record of a file handle's transfer. */
export function transferOf(handle: ReadHandle | WriteHandle, result: SftpTransfer['result']): SftpTransfer {
  const common = { path: handle.path, startedAt: handle.startedAt, durationMs: Date.now() - handle.startedAt.getTime(), result };
  if (handle.kind === 'read') return { ...common, direction: 'download', bytes: handle.bytes, startOffset: 0, size: handle.size };
  return { ...common, direction: 'upload', bytes: handle.writer.bytes(), startOffset: handle.upload.startOffset, size: handle.writer.size() };
}

/** Tell the edge a transfer ended; its hook must not throw, and if it does the session goes on. */
export function reportTransfer(s: Session, transfer: SftpTransfer): void {
  try {
    s.ctx.onTransferEnded?.(transfer);
  } catch (err) {
    s.ctx.log.error({ event: 'sftp-hook-failed', hook: 'onTransferEnded', err }, 'onTransferEnded threw');
  }
}

/**
 * Release a handle the client did not close (the session ended, or it was opened after the end): reading stops, a
 * listing is dropped, an upload is aborted once its queued writes are in, keeping its bytes as a partial so that a
 * resume (reput) continues them.
 */
export async function releaseHandle(s: Session, handle: Handle, report = true): Promise<void> {
  try {
    if (handle.kind === 'read') {
      handle.reader.close();
      if (report) reportTransfer(s, transferOf(handle, 'aborted'));
    } else if (handle.kind === 'dir') {
      await handle.batches.return?.();
    } else {
      await handle.writer.idle();
      await handle.upload.abort();
      if (!report) return;
      reportTransfer(s, transferOf(handle, 'aborted'));
      s.ctx.log.info({ event: 'sftp-upload-aborted', path: handle.path, bytes: handle.writer.bytes() }, 'upload left open: kept as a partial');
    }
  } catch (err) {
    s.ctx.log.error({ event: 'sftp-release-failed', path: handle.path, err }, 'releasing a handle failed');
  }
}

/** Put an opened handle in the table and answer HANDLE; if the session ended meanwhile, release it instead. */
export async function registerHandle(s: Session, reqid: number, handle: Handle): Promise<void> {
  let id: Buffer;
  try {
    if (s.closed) throw new Error('session closed');
    id = s.handles.add(handle);
  } catch (err) {
    await releaseHandle(s, handle, false); // never handed out: nothing happened that the edge must hear of
    throw err;
  }
  s.sftp.handle(reqid, id);
}
