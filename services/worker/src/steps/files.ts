// What the steps do with files, on the storage seam (the local disk or object storage alike).
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { basenameOf, dirnameOf, statIfExists, StorageError, type FileStat, type Storage } from '@ftp/storage';
import { PermanentStepError } from './errors';

export type ChecksumAlgorithm = 'sha256' | 'md5';

export interface Digests {
  bytes: number;
  sha256: string;
  md5?: string;
}

/** The data-root key of a storage path (`/alice/x.csv` → `alice/x.csv`): what results, logs and webhooks show. */
export const keyOf = (path: string) => path.replace(/^\/+/, '');

/** The storage path of a data-root key, refused for good when it could lead anywhere else. */
export function pathOfKey(key: string): string {
  if (key.includes('\0') || key.startsWith('/') || key.split('/').includes('..')) {
    throw new PermanentStepError(`storage key "${key}" is outside the data root`);
  }
  return `/${key.split('/').filter((s) => s !== '' && s !== '.').join('/')}`;
}

export const joinPath = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);
export { basenameOf, dirnameOf };

export const isStorageError = (err: unknown, code: StorageError['code']) => err instanceof StorageError && err.code === code;

/**
 * Storage refusals that running the job again cannot change become PermanentStepErrors: a path leading out of the data
 * root (a symlink), a name the storage never takes, a file where a folder must be. Unreachable stores, full disks and
 * quotas stay retryable.
 */
const PERMANENT_CODES = new Set<StorageError['code']>(['denied', 'bad-name', 'path-too-long', 'not-a-directory', 'is-a-directory']);

export function asStepError(err: unknown): unknown {
  if (err instanceof StorageError && PERMANENT_CODES.has(err.code)) return new PermanentStepError(`storage: ${err.message}`, { cause: err });
  return err;
}

/**
 * The published file or folder at `path`, or undefined. An upload running under the same name (stat reports it as
 * `partial`) is not the file: the file's own size is then read off an open.
 */
export async function publishedAt(storage: Storage, path: string): Promise<FileStat | undefined> {
  const stat = await statIfExists(storage, path);
  if (!stat?.partial) return stat;
  const download = await storage.openRead(path).catch((err: unknown) => (isStorageError(err, 'not-found') ? undefined : Promise.reject(err)));
  if (!download) return undefined;
  download.stream.destroy();
  return { ...stat, size: download.size, partial: false };
}

/** Reads the file once, streaming, feeding every chunk to each hash; sha256 first in `algorithms` is not required. */
export async function digestFile(storage: Storage, path: string, algorithms: readonly ChecksumAlgorithm[], signal?: AbortSignal): Promise<Digests> {
  const hashes: [ChecksumAlgorithm, Hash][] = algorithms.map((a) => [a, createHash(a)]);
  let bytes = 0;
  for await (const chunk of await readStream(storage, path, signal)) {
    bytes += chunk.length;
    for (const [, hash] of hashes) hash.update(chunk);
  }
  const digests: Digests = { bytes, sha256: '' };
  for (const [algorithm, hash] of hashes) digests[algorithm] = hash.digest('hex');
  return digests;
}

/** The file's bytes as a stream of Buffers, destroyed when `signal` aborts. */
export async function readStream(storage: Storage, path: string, signal?: AbortSignal): Promise<Iterable<Buffer> | AsyncIterable<Buffer>> {
  signal?.throwIfAborted();
  const download = await storage.openRead(path);
  if (download.data) return [download.data.subarray(0)];
  const stop = () => download.stream.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal?.addEventListener('abort', stop, { once: true });
  download.stream.once('close', () => signal?.removeEventListener('abort', stop));
  return download.stream as AsyncIterable<Buffer>;
}

/** A small file read whole (a checksum sidecar, a quarantine note); longer than `maxBytes` is an error. */
export async function readSmallFile(storage: Storage, path: string, maxBytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of await readStream(storage, path)) {
    size += chunk.length;
    if (size > maxBytes) throw new PermanentStepError(`${keyOf(path)}: longer than ${maxBytes} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts, size);
}

/** Writes a whole small file as an upload: readers see the old file or the new one, never half of it. */
export async function writeSmallFile(storage: Storage, path: string, data: string | Uint8Array): Promise<void> {
  const upload = await storage.openUpload(path, { kind: 'replace' });
  try {
    upload.stream.end(data);
    await once(upload.stream, 'finish');
    await upload.commit();
  } catch (err) {
    await upload.abort({ discard: true }).catch(() => undefined);
    throw err;
  }
}

/** mkdir -p: the folder and every missing one above it; a file in the way is a PermanentStepError. */
export async function makeFolders(storage: Storage, dir: string): Promise<void> {
  if (dir === '/') return;
  const stat = await statIfExists(storage, dir);
  if (stat?.type === 'dir') return;
  if (stat) throw new PermanentStepError(`${keyOf(dir)}: a file is in the way of this folder`);
  await makeFolders(storage, dirnameOf(dir));
  try {
    await storage.mkdir(dir);
  } catch (err) {
    // Another job made it meanwhile (two jobs filing into the same new day folder).
    if (!isStorageError(err, 'exists')) throw err;
  }
}

/** Deletes a file that may already be gone (a retry); an upload running under its name again is left alone. */
export async function deleteIfThere(storage: Storage, path: string): Promise<void> {
  await storage.delete(path, { keepUpload: true }).catch((err: unknown) => (isStorageError(err, 'not-found') ? undefined : Promise.reject(err)));
}
