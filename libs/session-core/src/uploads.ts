import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { Storage } from '@ftp/storage';
import { injectTraceContext } from '@ftp/telemetry';
import type { UploadAbortedEvent, UploadEvent } from '@ftp/upload-events';
import type { CoreDeps, CoreSession } from './types';

/**
 * A pass-through stage just before storage that hashes the bytes as stored. Only for uploads that start at offset 0
 * and arrive in order (an FTP data stream); the size comes from the storage's own count.
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
  /** Where the upload started in the file (a resume's offset). */
  startOffset: number;
  /** Only with FTP_UPLOAD_SHA256, a start at offset 0 and a stream that can pass through it. */
  hasher?: UploadHasher;
}

export function uploadContext(deps: CoreDeps, vpath: string, startedAt: number, startOffset: number, options: { sequential: boolean }): UploadContext {
  const hasher = deps.settings.uploadSha256 && options.sequential && startOffset === 0 ? uploadHasher() : undefined;
  return { uploadId: randomUUID(), path: vpath, startedAt, startOffset, hasher };
}

/** The event for an upload whose commit succeeded: the file is durable under its final name. */
export function completedEvent(session: CoreSession, deps: CoreDeps, context: UploadContext, size: number): UploadEvent {
  const sha256 = context.hasher?.sha256();
  return {
    ...common(session, deps, context),
    storageKey: storageKeyOf(session, deps, context.path),
    size,
    ...(sha256 ? { sha256 } : {}),
    completedAt: Date.now(),
  };
}

/** The event for an upload that did not complete; `size` is where a resume would continue. */
export async function abortedEvent(
  session: CoreSession,
  deps: CoreDeps,
  storage: Storage,
  context: UploadContext,
  reason: UploadAbortedEvent['reason'],
): Promise<UploadAbortedEvent> {
  return { ...common(session, deps, context), size: await sizeOnDisk(storage, context), reason, completedAt: Date.now() };
}

function common(session: CoreSession, deps: CoreDeps, context: UploadContext) {
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
    protocol: session.protocol,
    startedAt: context.startedAt,
    replicaId: deps.settings.replicaId,
  };
}

/** Size of the partial (which stat reports before the file), or of the file; the start offset if neither is there. */
function sizeOnDisk(storage: Storage, context: UploadContext): Promise<number> {
  // Not a count of bytes received: bytes passed on may not have reached the disk when the transfer broke.
  return storage.stat(context.path).then(
    (st) => st.size,
    () => context.startOffset,
  );
}

/** The file relative to the data root: user roots are folders of FTP_DATA_DIR, virtual paths are inside them. */
function storageKeyOf(session: CoreSession, deps: CoreDeps, vpath: string): string {
  return path.relative(path.resolve(deps.settings.dataDir), path.join(session.user!.root, vpath));
}
