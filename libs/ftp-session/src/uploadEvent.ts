import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { Upload } from '@ftp/storage';
import { injectTraceContext } from '@ftp/telemetry';
import type { UploadAbortedEvent, UploadEvent } from '@ftp/upload-events';
import { storageOf } from './access';
import type { Session } from './session';
import type { TransferOutcome } from './transfer';

/**
 * A pass-through stage just before storage that hashes the bytes as stored (after any ASCII conversion). Only in the
 * pipeline when hashing: the size comes from the storage's own count.
 */
export interface UploadHasher {
  stream: Transform;
  /** Hex sha256 of the bytes; call once, at the end. */
  sha256(): string;
}

function uploadHasher(): UploadHasher {
  const hash = createHash('sha256');
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

/** What one upload's events share, fixed when it starts. */
export interface UploadContext {
  uploadId: string;
  path: string;
  startedAt: number;
  upload: Upload;
  /** Only with FTP_UPLOAD_SHA256 and a start at offset 0: a resumed upload's own bytes are not the file. */
  hasher?: UploadHasher;
}

export function uploadContext(session: Session, vpath: string, startedAt: number, upload: Upload): UploadContext {
  const hasher = session.deps.settings.uploadSha256 && upload.startOffset === 0 ? uploadHasher() : undefined;
  return { uploadId: randomUUID(), path: vpath, startedAt, upload, hasher };
}

/** The event for an upload whose commit succeeded: the file is durable under its final name. */
export function completedEvent(session: Session, context: UploadContext): UploadEvent {
  const sha256 = context.hasher?.sha256();
  return {
    ...common(session, context),
    storageKey: storageKeyOf(session, context.path),
    size: context.upload.startOffset + context.upload.bytesWritten(),
    ...(sha256 ? { sha256 } : {}),
    completedAt: Date.now(),
  };
}

/** The event for an upload that did not complete; `size` is where a resume would continue. */
export async function abortedEvent(session: Session, context: UploadContext, outcome: TransferOutcome): Promise<UploadAbortedEvent> {
  const reason = session.closed ? 'disconnected' : outcome.result === 'aborted' ? 'aborted' : 'failed';
  return { ...common(session, context), size: await sizeOnDisk(session, context), reason, completedAt: Date.now() };
}

function common(session: Session, context: UploadContext) {
  const user = session.user!;
  // Built inside the transfer's span: the worker's spans continue this trace. Absent with tracing off.
  const traceContext = injectTraceContext(session.currentContext);
  return {
    ...(traceContext ? { traceContext } : {}),
    uploadId: context.uploadId,
    user: user.name,
    groups: [...(user.groups ?? [])],
    path: context.path,
    clientAddress: session.clientAddress,
    protocol: session.protection === 'P' || session.secure ? ('ftps' as const) : ('ftp' as const),
    startedAt: context.startedAt,
    replicaId: session.deps.settings.replicaId,
  };
}

/** Size of the partial (which stat reports before the file), or of the file; the start offset if neither is there. */
function sizeOnDisk(session: Session, context: UploadContext): Promise<number> {
  // Not the tap's count: bytes it passed on may not have reached the disk when the transfer broke.
  return storageOf(session)
    .stat(context.path)
    .then(
      (st) => st.size,
      () => context.upload.startOffset,
    );
}

/** The file relative to the data root: user roots are folders of FTP_DATA_DIR, virtual paths are inside them. */
function storageKeyOf(session: Session, vpath: string): string {
  return path.relative(path.resolve(session.deps.settings.dataDir), path.join(session.user!.root, vpath));
}
