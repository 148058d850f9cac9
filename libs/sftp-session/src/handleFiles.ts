import type { Attributes } from 'ssh2';
import { statIfExists } from '@ftp/storage';
import { requirePermission, resolvePath, waitForOutbound, audit } from './access';
import { settableMtime, toAttrs, type RequestedAttrs } from './attrs';
import { createFileReader } from './fileReader';
import { createFileWriter } from './fileWriter';
import { writeBacklog } from './flow';
import { handleOf, type ReadHandle, type WriteHandle } from './handles';
import { LIMITS } from './limits';
import type { Request, Session } from './state';
import { SftpError, STATUS } from './status';
import { registerHandle, reportTransfer, transferOf } from './transfers';

/** SSH_FXF_* open flags (draft-ietf-secsh-filexfer-02 §6.3). */
export const OPEN_FLAGS = { READ: 0x01, WRITE: 0x02, APPEND: 0x04, CREAT: 0x08, TRUNC: 0x10, EXCL: 0x20 } as const;

async function openForRead(s: Session, path: string): Promise<ReadHandle> {
  requirePermission(s, path, 'download');
  const { storage } = s.ctx;
  const first = await storage.openRead(path, 0);
  const reader = createFileReader(first, (offset) => storage.openRead(path, offset));
  return { kind: 'read', path, reader, size: first.size, bytes: 0, startedAt: new Date() };
}

/**
 * Uploads are atomic and resumable as FTP's are: the bytes go to the name's hidden partial and are published at CLOSE.
 * - TRUNC (or a new name): a fresh upload; an interrupted upload's partial is discarded, a published file stays
 *   visible until the new one replaces it.
 * - no TRUNC on an existing name: the existing bytes are kept (the partial's if there is one, else the published
 *   file's, which moves back to its partial name until CLOSE, as FTP's REST/APPE resume does) and WRITEs land at their
 *   offsets; with APPEND every WRITE lands at the current end whatever its offset, in arrival order (as OpenSSH's
 *   O_APPEND does). OpenSSH's `reput` opens with WRITE|CREAT|APPEND and writes from the size STAT reported.
 * Writing to an existing name (a partial counts) needs `overwrite`, to a new one `upload`, as for FTP.
 */
async function openForWrite(s: Session, path: string, flags: number, expectedSize?: number): Promise<WriteHandle> {
  const existing = await statIfExists(s.ctx.storage, path);
  requirePermission(s, path, existing ? 'overwrite' : 'upload');
  if (existing?.type === 'dir') throw new SftpError(STATUS.FAILURE, 'Is a directory');
  if (!existing && !(flags & OPEN_FLAGS.CREAT)) throw new SftpError(STATUS.NO_SUCH_FILE, 'No such file');
  if (existing && flags & OPEN_FLAGS.CREAT && flags & OPEN_FLAGS.EXCL) throw new SftpError(STATUS.FAILURE, 'File already exists');
  const fresh = !existing || (flags & OPEN_FLAGS.TRUNC) !== 0;
  const upload = await s.ctx.storage.openUpload(path, fresh ? { kind: 'replace' } : { kind: 'append' }, expectedSize);
  const writer = createFileWriter(upload, { append: (flags & OPEN_FLAGS.APPEND) !== 0, backlog: (delta) => writeBacklog(s, delta) });
  return { kind: 'write', path, upload, writer, startedAt: new Date() };
}

async function OPEN(s: Session, req: Request, filename: string, flags: number, attrs?: RequestedAttrs): Promise<void> {
  const path = resolvePath(req, filename);
  const write = (flags & OPEN_FLAGS.WRITE) !== 0;
  // OpenSSH's client never opens read-write; serving reads of an unpublished partial is not worth its cost.
  if (write && flags & OPEN_FLAGS.READ) throw new SftpError(STATUS.OP_UNSUPPORTED, 'Opening for both reading and writing is not supported');
  s.handles.reserve();
  await registerHandle(s, req.id, write ? await openForWrite(s, path, flags, attrs?.size) : await openForRead(s, path));
}

/** Publish an upload at CLOSE: queued writes in, fsync + atomic rename, the requested mtime, the edge's hook; then OK. */
async function publish(s: Session, handle: WriteHandle): Promise<void> {
  await handle.writer.idle();
  if (handle.writer.failed()) {
    await handle.upload.abort();
    reportTransfer(s, transferOf(handle, 'failed'));
    throw new SftpError(STATUS.FAILURE, 'A write failed: the upload was kept as a partial, not published');
  }
  try {
    await handle.upload.commit();
  } catch (err) {
    reportTransfer(s, transferOf(handle, 'failed'));
    throw err;
  }
  if (handle.mtime) {
    await s.ctx.storage.setModifiedTime(handle.path, handle.mtime).catch((err: unknown) =>
      s.ctx.log.warn({ event: 'sftp-mtime-failed', path: handle.path, err }, 'could not set the requested modification time'),
    );
  }
  const transfer = transferOf(handle, 'ok');
  try {
    await s.ctx.onUploadCommitted?.(transfer);
  } catch (err) {
    s.ctx.log.error({ event: 'sftp-hook-failed', hook: 'onUploadCommitted', path: handle.path, err }, 'upload published but not announced');
    reportTransfer(s, { ...transfer, result: 'failed' });
    throw new SftpError(STATUS.FAILURE, 'Upload stored but not announced; please upload it again');
  }
  reportTransfer(s, transfer);
}

async function CLOSE(s: Session, req: Request, id: Buffer): Promise<void> {
  const handle = s.handles.take(id);
  if (!handle) throw new SftpError(STATUS.FAILURE, 'Invalid handle');
  req.path = handle.path;
  if (handle.kind === 'read') {
    handle.reader.close();
    reportTransfer(s, transferOf(handle, 'ok'));
  } else if (handle.kind === 'dir') {
    await handle.batches.return?.();
  } else {
    await publish(s, handle);
  }
  s.sftp.status(req.id, STATUS.OK);
}

async function READ(s: Session, req: Request, id: Buffer, offset: number, length: number): Promise<void> {
  const handle = handleOf(s.handles, id, 'read');
  req.path = handle.path;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new SftpError(STATUS.FAILURE, 'Invalid offset');
  if (length === 0) return s.sftp.data(req.id, Buffer.alloc(0));
  // Longer requests get a short read (clients ask again for the rest), as with OpenSSH's server.
  const data = await handle.reader.read(offset, Math.min(length, LIMITS.maxReadLength), () => waitForOutbound(s));
  if (data === null) return s.sftp.status(req.id, STATUS.EOF);
  handle.bytes += data.length;
  s.sftp.data(req.id, data);
}

async function WRITE(s: Session, req: Request, id: Buffer, offset: number, data: Buffer): Promise<void> {
  const handle = handleOf(s.handles, id, 'write');
  req.path = handle.path;
  await handle.writer.write(offset, data);
  s.sftp.status(req.id, STATUS.OK);
}

async function FSTAT(s: Session, req: Request, id: Buffer): Promise<void> {
  const handle = handleOf(s.handles, id, 'read', 'write', 'dir');
  req.path = handle.path;
  let attrs: Attributes;
  if (handle.kind === 'write') {
    attrs = toAttrs({ type: 'file', size: handle.writer.size(), mtime: new Date(), mode: 0o644 });
  } else if (handle.kind === 'read') {
    // The size is the one being read (a snapshot at open); the rest from the name, unless that is now a partial.
    const st = await statIfExists(s.ctx.storage, handle.path);
    const published = st && !st.partial && st.type === 'file' ? st : undefined;
    attrs = toAttrs({ type: 'file', size: handle.size, mtime: published?.mtime ?? handle.startedAt, mode: published?.mode ?? 0o644 });
  } else {
    attrs = toAttrs(await s.ctx.storage.stat(handle.path));
  }
  s.sftp.attrs(req.id, attrs);
}

/**
 * On an upload the time is applied when it is published (OpenSSH's `put -p` sets it before CLOSE); otherwise as
 * SETSTAT. The size may be set on an upload only: its partial is cut there (OpenSSH's scp writes in place, without
 * TRUNC, and then sets the size, so that a shorter file replacing a longer one keeps no stale tail).
 */
async function FSETSTAT(s: Session, req: Request, id: Buffer, attrs: RequestedAttrs): Promise<void> {
  const handle = handleOf(s.handles, id, 'read', 'write', 'dir');
  req.path = handle.path;
  const size = handle.kind === 'write' ? attrs.size : undefined;
  const mtime = settableMtime(size === undefined ? attrs : { ...attrs, size: undefined });
  if (size !== undefined && handle.kind === 'write') {
    if (!Number.isSafeInteger(size) || size < 0) throw new SftpError(STATUS.FAILURE, 'Invalid size');
    await handle.writer.truncate(size);
  }
  if (mtime && handle.kind === 'write') {
    handle.mtime = mtime; // the uploader's own file: no permission beyond the upload's
  } else if (mtime) {
    requirePermission(s, handle.path, 'overwrite');
    await s.ctx.storage.setModifiedTime(handle.path, mtime);
    audit(s, 'setmtime', { path: handle.path, mtime });
  }
  s.sftp.status(req.id, STATUS.OK);
}

export const fileHandlers = { OPEN, CLOSE, READ, WRITE, FSTAT, FSETSTAT };
