// Shared helpers for the storage tests (not exported from the package).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach } from 'node:test';
import { createLocalStorage, type LocalStorageOptions } from './local';
import type { Storage, Upload, UploadStart } from './types';
import { StorageError, type StorageErrorCode } from './types';

export interface Fixture {
  /** Host directory served as `/`. */
  root: string;
  /** Host directory beside the root holding `secret.txt`, which no operation may reach. */
  outside: string;
  storage: Storage;
  cleanup(): Promise<void>;
}

export const SECRET = 'top secret\n';

let metadataIo: 'sync' | 'async' = 'async';

/** Every fixture made after this call uses the given metadata flavour (see local.sync.test.ts). */
export function useMetadataIo(flavour: 'sync' | 'async') {
  metadataIo = flavour;
}

export async function makeFixture(options: Pick<LocalStorageOptions, 'fsync' | 'limits'> = {}): Promise<Fixture> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'ftp-storage-test-'));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  await fsp.mkdir(root);
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'secret.txt'), SECRET);
  return {
    root,
    outside,
    storage: createLocalStorage({ root, metadataIo, ...options }),
    cleanup: () => fsp.rm(base, { recursive: true, force: true }),
  };
}

/**
 * A fresh fixture for every test of the calling file. With `checkFds`, every test must also give back every
 * descriptor it opened, on success and on failure paths alike.
 */
export function fixturePerTest(options: { checkFds?: boolean } = {}): Fixture {
  let current: Fixture;
  let fdsBefore: number | undefined;
  beforeEach(async () => {
    current = await makeFixture();
    fdsBefore = openFdCount();
  });
  afterEach(async () => {
    if (options.checkFds) assert.equal(openFdCount(), fdsBefore, 'file descriptors leaked');
    await current.cleanup();
  });
  return {
    get root() {
      return current.root;
    },
    get outside() {
      return current.outside;
    },
    get storage() {
      return current.storage;
    },
    cleanup: () => current.cleanup(),
  };
}

/** Open file descriptors of this process (Linux), to prove nothing leaks. */
export function openFdCount(): number | undefined {
  return fs.existsSync('/proc/self/fd') ? fs.readdirSync('/proc/self/fd').length : undefined;
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

/** Upload `data` and commit, the way a session does it. */
export async function uploadText(storage: Storage, vpath: string, data: string, start: UploadStart = { kind: 'replace' }): Promise<Upload> {
  const upload = await storage.openUpload(vpath, start);
  await pipeline(Readable.from([Buffer.from(data)]), upload.stream);
  await upload.commit();
  return upload;
}

/** Write `data` into an upload and then break the transfer (abort), leaving a partial. */
export async function interruptedUpload(storage: Storage, vpath: string, data: string, start: UploadStart = { kind: 'replace' }): Promise<void> {
  const upload = await storage.openUpload(vpath, start);
  await new Promise<void>((resolve, reject) => upload.stream.write(data, (err) => (err ? reject(err) : resolve())));
  await upload.abort();
}

/** assert.rejects matcher for a StorageError with `code`. */
export function storageCode(code: StorageErrorCode): (err: unknown) => boolean {
  return (err) => {
    if (!(err instanceof StorageError)) throw new Error(`expected StorageError(${code}), got ${String(err)}`);
    if (err.code !== code) throw new Error(`expected StorageError(${code}), got ${err.code}: ${err.message}`);
    return true;
  };
}
