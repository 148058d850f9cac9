import type { DiskSpace } from '@ftp/session-core';
import type { Context } from '@opentelemetry/api';
import type { User } from '@ftp/identity';
import type { Storage } from '@ftp/storage';

/** The logging this library needs: pino's `Logger` fits (a child logger that already carries the session's fields). */
export interface SftpLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/** One file handle's transfer, reported once when the handle ends (CLOSE, or the session ending with it open). */
export interface SftpTransfer {
  direction: 'upload' | 'download';
  /** Virtual path (absolute, inside the user's root). */
  path: string;
  /** Bytes this handle moved: written by WRITE requests (uploads) or sent in DATA replies (downloads). */
  bytes: number;
  /** Uploads: bytes kept from before the open (a resumed partial or file); 0 when it was opened with TRUNC. Downloads: 0. */
  startOffset: number;
  /** Uploads: the file's size when published (or the partial's, when it was not). Downloads: the size at open. */
  size: number;
  startedAt: Date;
  durationMs: number;
  /**
   * ok: published (uploads) or closed by the client (downloads). failed: a write, the commit or the publishing hook
   * failed. aborted: the session ended with the handle open; an upload's bytes stay a partial for a resume.
   */
  result: 'ok' | 'failed' | 'aborted';
}

/** What an SFTP session needs from outside: the authenticated user, its storage, a logger and the edge's hooks. */
export interface SftpContext {
  user: User;
  storage: Storage;
  log: SftpLogger;
  /**
   * An upload was published (fsync + atomic rename done). The CLOSE reply waits for this (announce the upload event
   * here, so that no client sees success for an upload the workers never hear of); a rejection answers FAILURE.
   */
  onUploadCommitted?(transfer: SftpTransfer): Promise<void>;
  /** Every file handle's end, whatever its result (metrics, audit, xferlog, upload.aborted events). Must not throw. */
  onTransferEnded?(transfer: SftpTransfer): void;
  /** The session's trace context: each metadata request (not READ/WRITE) gets an `sftp <OP>` span under it. */
  traceContext?: Context;
  /** Disk space for statvfs@openssh.com (`df` in OpenSSH's sftp); without it the extension is not offered. */
  diskSpace?(path: string): Promise<DiskSpace>;
}

/** A file handle's transfer while it runs: what the admin API's session listing shows. */
export interface SftpTransferProgress {
  direction: 'upload' | 'download';
  path: string;
  startedAt: Date;
  /** Bytes moved so far: written by WRITE requests (uploads) or sent in DATA replies (downloads). */
  bytes: number;
}

/** A running SFTP session, as serveSftp returns it. */
export interface SftpSession {
  /** Open file handles (transfers in progress), for draining. */
  openTransfers(): number;
  /** The transfers in progress (open file handles), oldest first. */
  transfers(): SftpTransferProgress[];
  /** Resolves once the channel closed and every handle was released. */
  readonly closed: Promise<void>;
  /** End the session now: uploads still open are aborted (their partials kept for a resume), then the channel closes. */
  close(): Promise<void>;
}
