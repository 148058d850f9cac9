import { closeSync, openSync, writeSync } from 'node:fs';
import { createCipheriv, createHash } from 'node:crypto';

/**
 * The opt-in ledger (`--ledger FILE`): one JSON line per login, per upload outcome and per download, appended by the
 * VU threads as it happens, so that a checker (test/chaos) can verify afterwards, from the storage, every upload the
 * server acknowledged. With a ledger every upload gets contents of its own (`uniqueContent`), reproducible from its
 * key, so a checker can rebuild any prefix of what was sent, and a download of another file's bytes never matches.
 */

export interface LedgerLogin {
  kind: 'login';
  protocol: string;
  user: string;
  ok: boolean;
  error?: string;
  /** ms since the epoch: when the attempt ended; `ms` how long it took. */
  at: number;
  ms: number;
}

export interface LedgerUpload {
  kind: 'upload';
  protocol: string;
  user: string;
  /** As the client named it, relative to its login folder: `out/1a2b-v3-i4-0.bin`. */
  path: string;
  /** The whole file's size and sha256 (of every byte from 0, resumed ones too). */
  size: number;
  sha256: string;
  /** `uniqueContent(contentKey)` gives the file's bytes. */
  contentKey: string;
  /** true: 226 (FTP) or a successful CLOSE (SFTP). */
  acknowledged: boolean;
  error?: string;
  /** The first half of a resume step: cut on purpose. */
  cut?: boolean;
  /** A resume step's second half: the bytes from this offset were sent (the server reported it had the rest). */
  resumedFrom?: number;
  startedAt: number;
  at: number;
}

export interface LedgerDownload {
  kind: 'download';
  protocol: string;
  user: string;
  path: string;
  expectedSha256: string;
  /** sha256 of what arrived; absent when the download failed (`error`). */
  gotSha256?: string;
  bytes?: number;
  error?: string;
  at: number;
}

export type LedgerEntry = LedgerLogin | LedgerUpload | LedgerDownload;

export interface Ledger {
  write(entry: LedgerEntry): void;
  close(): void;
}

/** Opens `file` for appending (O_APPEND): every entry is one write(2) of one line, whatever thread writes it. */
export function openLedger(file: string): Ledger {
  const fd = openSync(file, 'a');
  let open = true;
  return {
    write(entry) {
      if (open) writeSync(fd, JSON.stringify(entry) + '\n');
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** File contents as a function of position, so that any slice can be made without keeping the file. */
export interface FileContent {
  at(pos: number, len: number): Buffer;
}

/**
 * Contents of their own for `key`: the AES-128-CTR keystream under sha256(key), so every byte depends on the key and
 * its position (two files never share a 16-byte block at the same offset), made at hundreds of MB/s.
 */
export function uniqueContent(key: string): FileContent {
  const aesKey = createHash('sha256').update(key).digest().subarray(0, 16);
  return {
    at(pos, len) {
      const block = Math.floor(pos / 16);
      const skip = pos - block * 16;
      const iv = Buffer.alloc(16);
      iv.writeUIntBE(block, 10, 6); // the counter: blocks from the start of the file
      const stream = createCipheriv('aes-128-ctr', aesKey, iv).update(Buffer.alloc(skip + len));
      return stream.subarray(skip);
    },
  };
}

const HASH_CHUNK = 256 * 1024;

/** sha256 (hex) of `bytes` bytes of `content` from `from`. */
export function contentSha256(content: FileContent, bytes: number, from = 0): string {
  const hash = createHash('sha256');
  for (let pos = 0; pos < bytes; pos += HASH_CHUNK) hash.update(content.at(from + pos, Math.min(HASH_CHUNK, bytes - pos)));
  return hash.digest('hex');
}
