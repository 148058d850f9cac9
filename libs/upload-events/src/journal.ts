import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@ftp/telemetry';

/** One deferred event: its job name and payload, as the outbox holds it. */
export interface JournalEntry {
  name: string;
  data: { uploadId: string };
}

/**
 * The outbox on disk: one file per deferred event (`<uploadId>.json`), written when the event is deferred and removed
 * once it is in the queue, so an edge that dies or restarts while Redis is away does not lose it: the next start (of
 * any replica sharing the directory) loads and delivers it. Replicas may deliver the same file twice; the add is
 * idempotent (job id = uploadId). Errors are logged, never thrown: the event is still in memory.
 */
export interface OutboxJournal {
  /** Creates the directory and reads what an earlier process left. */
  load(): Promise<JournalEntry[]>;
  /** Resolves once the file is written (or the write failed and was logged): never rejects. */
  save(entry: JournalEntry): Promise<void>;
  remove(uploadId: string): void;
  /** The event's file is there (its save went through). */
  has(uploadId: string): boolean;
  /** Resolves once every save and remove asked for so far is done. */
  settled(): Promise<void>;
}

/** Upload ids are UUIDs; anything else must not become a path. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function createOutboxJournal(dir: string, log: Logger): OutboxJournal {
  /** The last operation per upload id: a remove must not overtake the save it undoes (or the file would stay). */
  const chains = new Map<string, Promise<void>>();

  function chain(uploadId: string, what: string, op: () => Promise<void>): Promise<void> {
    if (!SAFE_ID.test(uploadId)) {
      if (what === 'save') log.warn({ uploadId }, 'upload events: not journaled, the upload id is not a safe file name');
      return Promise.resolve();
    }
    const next = (chains.get(uploadId) ?? Promise.resolve())
      .then(op)
      .catch((err: NodeJS.ErrnoException) => {
        if (what === 'remove' && err.code === 'ENOENT') return; // delivered by another replica, or never written
        log.error({ err: err.message, uploadId, dir }, `upload events: journal ${what} failed (the event is still held in memory)`);
      })
      .finally(() => {
        if (chains.get(uploadId) === next) chains.delete(uploadId);
      });
    chains.set(uploadId, next);
    return next;
  }

  const file = (uploadId: string) => join(dir, `${uploadId}.json`);

  return {
    async load() {
      await mkdir(dir, { recursive: true });
      const entries: JournalEntry[] = [];
      for (const name of (await readdir(dir)).sort()) {
        if (!name.endsWith('.json') || name.startsWith('.')) continue;
        const path = join(dir, name);
        try {
          const entry = JSON.parse(await readFile(path, 'utf8')) as JournalEntry;
          if (typeof entry?.name !== 'string' || typeof entry.data?.uploadId !== 'string') throw new Error('not an upload event');
          entries.push(entry);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // delivered meanwhile by another replica
          log.error({ err: (err as Error).message, file: path }, 'upload events: unreadable journal file, set aside as .bad');
          await rename(path, `${path}.bad`).catch(() => {});
        }
      }
      return entries;
    },
    save(entry) {
      const id = entry.data.uploadId;
      return chain(id, 'save', async () => {
        // Written aside, then renamed: a reader (another replica starting) never sees half a file.
        const temporary = join(dir, `.${id}.${process.pid}.tmp`);
        await writeFile(temporary, JSON.stringify(entry), { flush: true });
        await rename(temporary, file(id));
      });
    },
    remove(uploadId) {
      void chain(uploadId, 'remove', () => unlink(file(uploadId)));
    },
    has(uploadId) {
      return SAFE_ID.test(uploadId) && existsSync(file(uploadId));
    },
    async settled() {
      while (chains.size > 0) await Promise.all(chains.values());
    },
  };
}
