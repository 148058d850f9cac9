import { StorageError, type FileStat, type Storage } from './types';

/**
 * stat, or undefined when nothing is there; other failures are thrown. A name with only an interrupted upload is
 * there (`partial: true`): callers decide whether that counts.
 */
export async function statIfExists(storage: Pick<Storage, 'stat'>, path: string): Promise<FileStat | undefined> {
  try {
    return await storage.stat(path);
  } catch (err) {
    if (err instanceof StorageError && err.code === 'not-found') return undefined;
    throw err;
  }
}

/** `Storage.list` from `listEntries`: the batches collected in one array, for every backend. */
export async function listAll(storage: Pick<Storage, 'listEntries'>, path: string): Promise<FileStat[]> {
  const all: FileStat[] = [];
  for await (const batch of await storage.listEntries(path)) all.push(...batch);
  return all;
}
