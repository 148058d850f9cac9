import type { Readable, Writable } from 'node:stream';

/** One directory entry or stat result. Paths given to Storage are virtual: absolute, '/'-separated, relative to the user's root. */
export interface FileStat {
  name: string;
  type: 'file' | 'dir';
  size: number;
  mtime: Date;
  /** POSIX permission bits (e.g. 0o644), for LIST output. */
  mode: number;
  /** Stable id of the underlying object (dev+inode locally), for the MLSD `unique` fact. */
  unique: string;
  /** True when this entry is an interrupted upload that has not been published yet (`size`: where a resume continues). */
  partial?: boolean;
}

export interface Download {
  stream: Readable;
  /** Size of the whole file when it was opened. */
  size: number;
  /**
   * Optional: read `length` bytes at `position` of the open file into `buffer` at `offset`, without the stream (SFTP
   * serves READs at any offset, straight into its reply). Resolves the bytes read, 0 at the end. Use this or
   * `stream`, not both; destroying `stream` closes the file.
   */
  readAt?(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /**
   * Optional (a small local file): the bytes `stream` would deliver, already read; the file is closed. A sender may
   * write these instead of using `stream` (which is then never made).
   */
  data?: Buffer;
  /**
   * Optional (a local file): the open file's descriptor and the range `stream` would deliver, for a zero-copy sender
   * (sendfile) to use instead of `stream`. The descriptor belongs to `stream`: it stays open until the caller
   * destroys `stream`, which it must do when done. Storages without local files leave it out.
   */
  file?: { fd: number; position: number; length: number };
}

/** How an upload starts: fresh (replace), at a byte offset of what is already there (REST n + STOR), or at its end (APPE). */
export type UploadStart = { kind: 'replace' } | { kind: 'resume'; offset: number } | { kind: 'append' };

export interface Upload {
  /** Write file bytes here; backpressure is honoured. */
  stream: Writable;
  /** Offset in the file where the first byte of `stream` lands. */
  startOffset: number;
  /** Bytes written through `stream` (and `writeAt`) so far: with `stream`, the file's size is `startOffset + bytesWritten()` once it finished. */
  bytesWritten(): number;
  /**
   * For protocols whose writes carry offsets (SFTP): write `data` at absolute file `offset` (not relative to
   * `startOffset`; any offset, out of order, sparse, several at once). Resolves when all bytes reached the file; commit()
   * and abort() wait for writes still running, and commit() rejects if one failed. Use this or `stream`, not both.
   */
  writeAt(offset: number, data: Uint8Array | readonly Uint8Array[]): Promise<void>;
  /**
   * Optional (a local file): lends the upload's file descriptor to `receive`, which writes into the file itself (a
   * zero-copy splice from a socket) at the positions it chooses, and calls `wrote(n)` as bytes land (exactly: the calls
   * add up to what it stored, also when it fails). Counted in bytesWritten(); commit() and abort() wait for it.
   * Resolves or rejects as `receive` does. With writeAt, not `stream`. Storages without local files leave it out.
   */
  receiveInto?<T>(receive: (fd: number, wrote: (bytes: number) => void) => Promise<T>): Promise<T>;
  /** Flush what was written so far to disk (the partial stays unpublished): SFTP's fsync@openssh.com. */
  sync(): Promise<void>;
  /**
   * Cut (or extend with zeros) the partial to `size` bytes, once the positional writes still running are in: SFTP's
   * FSETSTAT of the size on an open upload, which OpenSSH's scp sends after writing a file in place.
   */
  truncate(size: number): Promise<void>;
  /**
   * After `stream` has finished: flush to disk and publish the file under its name atomically. With fsync on (the
   * local backend's default) it resolves only once both the bytes and the new name survive a crash. `stillWanted` is
   * asked once the bytes are flushed, just before publishing; if it says no, the bytes stay a partial and commit rejects.
   */
  commit(stillWanted?: () => boolean): Promise<void>;
  /**
   * The transfer broke: close the file, keep the partial bytes so that a later resume can continue them. With
   * `discard` (a limit stopped it: the bytes must not linger outside the quota), undo what this upload wrote instead: a
   * new partial is removed, a file being appended to is cut back to its size before and published again.
   */
  abort(options?: { discard?: boolean }): Promise<void>;
}

/**
 * The file system a session sees. Every implementation must keep every path inside its root:
 * `..`, absolute paths, symlinks leading out, NUL, CR and LF in names never reach outside.
 * Failures are thrown as StorageError.
 */
export interface Storage {
  /**
   * Stat a file or directory. For a file with an interrupted upload, reports where a resume continues (SIZE + REST or
   * APPE, SFTP's reput), and APPE continues there: one byte short of the partial (local), or after its whole parts
   * but short of a final short part (object storage). The resume sends that again, so it always sends something and
   * ends with a commit: a partial that holds every byte (its replica died between the last byte and the commit)
   * would otherwise look complete to a client that compares sizes (curl -C -, sftp reput), which would send nothing,
   * and the file would never be published.
   */
  stat(path: string): Promise<FileStat>;
  /** List a directory (hidden partial-upload files are left out), sorted by name: `listEntries` collected in one array. */
  list(path: string): Promise<FileStat[]>;
  /**
   * List a directory as batches, for callers that stream the listing. Resolves once the names are read and counted, so
   * a missing directory, or one with more entries than `maxListEntries` ('too-many-entries'), fails here, before
   * any reply went out. The batches then follow in name order; making one never holds the event loop for long.
   */
  listEntries(path: string): Promise<AsyncIterable<FileStat[]>>;
  /** Stream a file's bytes from `offset` up to its size at opening time (a snapshot; no stat call needed first). */
  openRead(path: string, offset?: number): Promise<Download>;
  /**
   * Start an atomic, resumable upload. `expectedSize`: the file's final size when the client announced it (FTP ALLO,
   * SFTP's size attribute at OPEN), so that a limit can refuse it before any byte moves; the upload is not held to it.
   */
  openUpload(path: string, start: UploadStart, expectedSize?: number): Promise<Upload>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  /**
   * Delete a file; its interrupted upload goes with it (a later resume must not revive the name), unless
   * `keepUpload` (post-upload processing removing the file it filed elsewhere while a client uploads the name again).
   */
  delete(path: string, options?: { keepUpload?: boolean }): Promise<void>;
  /** Rename a file or folder; a file already at `to` is replaced unless `options.replace` is false. */
  rename(from: string, to: string, options?: PlaceOptions): Promise<void>;
  /**
   * Put a durable copy of file `from` at `to` (object storage: a server-side copy), published whole under its name as an
   * upload is. A file already at `to` is replaced unless `options.replace` is false. For post-upload processing.
   */
  copy(from: string, to: string, options?: PlaceOptions): Promise<void>;
  setModifiedTime(path: string, mtime: Date): Promise<void>;
  /**
   * What the whole root holds, as storage quotas count it: published files and their bytes (no partial uploads), symbolic
   * links neither followed nor counted. Walks everything: for a scan when the usage is not known, not per request.
   */
  usage(): Promise<StoredUsage>;
}

export interface PlaceOptions {
  /**
   * False: when `to` exists, fail with 'exists' and change nothing (default true). Atomic on local disks (link(2)); on
   * object storage and on file systems without hard links, a check just before, racy only against another writer of
   * this very name.
   */
  replace?: boolean;
}

export interface StoredUsage {
  bytes: number;
  files: number;
}

/** Bounds a Storage enforces whichever protocol asks, so one client cannot stall or exhaust the process. */
export interface StorageLimits {
  /** A directory with more entries (partial uploads not counted) is not listed: 'too-many-entries'. */
  maxListEntries: number;
  /** Bytes of a normalized virtual path (`/a/b` is 4): longer is 'path-too-long'. */
  maxPathLength: number;
  /** Names in a normalized virtual path (`/a/b` is 2): deeper is 'path-too-long'. */
  maxPathDepth: number;
}

export const DEFAULT_STORAGE_LIMITS: StorageLimits = { maxListEntries: 100_000, maxPathLength: 4096, maxPathDepth: 256 };

export type StorageErrorCode =
  | 'not-found'
  | 'exists'
  | 'not-a-directory'
  | 'is-a-directory'
  | 'not-empty'
  | 'denied'
  | 'no-space'
  | 'quota'
  | 'bad-name'
  | 'invalid-offset'
  /** Over maxPathLength or maxPathDepth; the message names the limit. */
  | 'path-too-long'
  /** Over maxListEntries; the message names the limit. */
  | 'too-many-entries'
  | 'io';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}
