// Test support for the step tests (not exported from the package): a fresh data root per test on each storage backend
// (a local folder, a key prefix of a bucket on the shared radosgw), and ways to look at it past the storage seam.
import { AssertionError } from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { Dirent } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { after, afterEach, before, beforeEach } from 'node:test';
import { createLocalStorage, dirnameOf, isPartialName, statIfExists, type Storage } from '@ftp/storage';
import { createLogger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';
import { s3Fixture, writeSome, type S3Fixture } from '../../../../libs/storage/src/s3/testSupport';
import { sharedRadosgw } from '../../../../test/support/radosgw';
import { bucketView, type BucketView } from '../../../../test/support/s3Bucket';
import { pathOfKey } from './files';
import type { StepContext } from './types';

export type BackendName = 'local' | 's3';

/** Every backend a step runs on: `for (const backend of backends) describe(backend, () => { … })`. */
export const backends: readonly BackendName[] = ['local', 's3'];

export interface DataRoot {
  backend: BackendName;
  /** The whole data root, as the worker gets it. */
  storage: Storage;
  /** local: the host folder that is `/` of `storage`. */
  dir?: string;
  /** local: a host folder beside the data root, which no step may reach. */
  outside?: string;
  /**
   * Everything the data root holds, read past the storage seam (the disk, or the bucket with its own client): the keys
   * of the files, sorted, and an upload in progress as `<key> (partial)`. Folders are not listed.
   */
  stored(): Promise<string[]>;
}

const PARTIAL_SUFFIX = '.ftp-partial';

/** Call inside a describe(): a fresh, empty data root on `backend` for every test of it. */
export function dataRootPerTest(backend: BackendName): DataRoot {
  return backend === 'local' ? localRootPerTest() : s3RootPerTest();
}

function localRootPerTest(): DataRoot {
  let base: string;
  let root: DataRoot;
  beforeEach(async () => {
    base = await fsp.mkdtemp(path.join(os.tmpdir(), 'worker-steps-'));
    const dir = path.join(base, 'data');
    const outside = path.join(base, 'outside');
    await Promise.all([fsp.mkdir(dir), fsp.mkdir(outside)]);
    root = { backend: 'local', storage: createLocalStorage({ root: dir }), dir, outside, stored: () => storedOnDisk(dir) };
  });
  afterEach(() => fsp.rm(base, { recursive: true, force: true }));
  return current(() => root);
}

function s3RootPerTest(): DataRoot {
  let s3: S3Fixture;
  let view: BucketView;
  let root: DataRoot;
  before(async () => {
    s3 = await s3Fixture();
    view = bucketView(await sharedRadosgw(), s3.bucket);
  });
  after(async () => {
    view?.close();
    await s3?.close();
  });
  beforeEach(() => {
    const storage = s3.storage();
    root = { backend: 's3', storage, stored: () => storedInBucket(view, storage.prefix) };
  });
  return current(() => root);
}

/** The DataRoot of the test running now. */
function current(get: () => DataRoot): DataRoot {
  return {
    get backend() {
      return get().backend;
    },
    get storage() {
      return get().storage;
    },
    get dir() {
      return get().dir;
    },
    get outside() {
      return get().outside;
    },
    stored: () => get().stored(),
  };
}

async function storedOnDisk(dir: string, key = ''): Promise<string[]> {
  const found: string[] = [];
  const entries: Dirent[] = await fsp.readdir(path.join(dir, key), { withFileTypes: true });
  for (const entry of entries) {
    const at = key ? `${key}/${entry.name}` : entry.name;
    if (entry.isDirectory()) found.push(...(await storedOnDisk(dir, at)));
    else if (isPartialName(entry.name)) found.push(`${key ? `${key}/` : ''}${entry.name.slice(1, -PARTIAL_SUFFIX.length)} (partial)`);
    else found.push(at);
  }
  return found.sort();
}

async function storedInBucket(view: BucketView, prefix: string): Promise<string[]> {
  const [objects, uploads] = await Promise.all([view.objects(prefix), view.openUploads(prefix)]);
  const files = [...objects.keys()].filter((key) => !key.endsWith('/')).map((key) => key.slice(prefix.length));
  return [...files, ...uploads.map((u) => `${u.key.slice(prefix.length)} (partial)`)].sort();
}

// ---------------------------------------------------------------------------------------------------------------
// Files through the storage.

/** mkdir -p; a folder another caller made meanwhile is fine (uploads set up at once). */
export async function makeDirs(storage: Storage, dir: string): Promise<void> {
  if (dir === '/' || (await statIfExists(storage, dir))?.type === 'dir') return;
  await makeDirs(storage, dirnameOf(dir));
  await storage.mkdir(dir).catch(async (err: unknown) => {
    if ((await statIfExists(storage, dir))?.type !== 'dir') throw err;
  });
}

/** A whole file at `path` (its folders made first), published as an upload is. */
export async function putFile(storage: Storage, path: string, content: string | Buffer): Promise<void> {
  await makeDirs(storage, dirnameOf(path));
  const upload = await storage.openUpload(path, { kind: 'replace' });
  await writeSome(upload, Buffer.from(content));
  await upload.commit();
}

/**
 * An upload in progress at `path` that holds `bytes` so far (a partial: another client's upload under the same name).
 * On object storage only whole parts are kept, so more than one part (5 MiB in tests) must be written.
 */
export async function startUpload(storage: Storage, path: string, bytes: Buffer): Promise<void> {
  await makeDirs(storage, dirnameOf(path));
  const upload = await storage.openUpload(path, { kind: 'replace' });
  await writeSome(upload, bytes);
  await upload.abort(); // keeps the partial, as a broken connection does
}

export async function readBytes(storage: Storage, path: string): Promise<Buffer> {
  const download = await storage.openRead(path);
  if (download.data) return download.data; // a small local file, read whole and closed
  const chunks: Buffer[] = [];
  for await (const chunk of download.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function readText(storage: Storage, path: string): Promise<string> {
  const download = await storage.openRead(path);
  if (download.data) return download.data.toString('utf8');
  return text(download.stream);
}

/** The names in a folder, as `list` shows them (folders with a trailing `/`, uploads in progress left out). */
export async function names(storage: Storage, dir: string): Promise<string[]> {
  return (await storage.list(dir)).map((e) => (e.type === 'dir' ? `${e.name}/` : e.name));
}

/**
 * Runs `sha256sum -c` (or `md5sum -c`, by the sidecar's extension) on `sidecar`, in the folder itself on a local disk,
 * else in a temporary folder holding a copy of every file of the storage folder. Rejects when a line does not check.
 */
export async function checkSidecar(root: DataRoot, sidecarPath: string): Promise<string> {
  const dir = dirnameOf(sidecarPath);
  const sidecar = sidecarPath.slice(dir.length + (dir === '/' ? 0 : 1));
  const tool = sidecar.endsWith('.md5') ? 'md5sum' : 'sha256sum';
  if (root.dir) return (await run(tool, ['-c', '--strict', sidecar], { cwd: path.join(root.dir, dir) })).stdout;
  const copy = await fsp.mkdtemp(path.join(os.tmpdir(), 'worker-sidecar-'));
  try {
    for (const entry of await root.storage.list(dir)) {
      if (entry.type === 'file') await fsp.writeFile(path.join(copy, entry.name), await readBytes(root.storage, `${dir}/${entry.name}`));
    }
    return (await run(tool, ['-c', '--strict', sidecar], { cwd: copy })).stdout;
  } finally {
    await fsp.rm(copy, { recursive: true, force: true });
  }
}

const run = promisify(execFile);

/** What `running` rejected with; an AssertionError when it did not reject. */
export async function failureOf(running: Promise<unknown>): Promise<unknown> {
  const outcome = await running.then(
    () => ({ failed: false as const }),
    (err: unknown) => ({ failed: true as const, err }),
  );
  if (!outcome.failed) throw new AssertionError({ message: 'expected a failure, it succeeded' });
  return outcome.err;
}

// ---------------------------------------------------------------------------------------------------------------
// Step contexts.

const silent = createLogger({ level: 'silent' });

/** The context the pipeline gives a step for `event` on `storage`: the file at its storage key, nothing run before. */
export function stepContext(storage: Storage, event: UploadEvent, extra: Partial<StepContext> = {}): StepContext {
  return { event, storage, path: pathOfKey(event.storageKey), previous: {}, log: silent, signal: new AbortController().signal, ...extra };
}
