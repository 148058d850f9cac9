import type { FileStat, Upload } from '@ftp/storage';
import type { FileReader } from './fileReader';
import type { FileWriter } from './fileWriter';
import { LIMITS } from './limits';
import { SftpError, STATUS } from './status';

interface HandleBase {
  /** Virtual path the handle was opened on. */
  path: string;
  startedAt: Date;
}

export interface ReadHandle extends HandleBase {
  kind: 'read';
  reader: FileReader;
  /** Size of the file when it was opened. */
  size: number;
  /** Bytes sent in DATA replies. */
  bytes: number;
}

export interface WriteHandle extends HandleBase {
  kind: 'write';
  upload: Upload;
  writer: FileWriter;
  /** A modification time asked for by FSETSTAT, applied once the upload is published (the name does not exist before). */
  mtime?: Date;
}

export interface DirHandle extends HandleBase {
  kind: 'dir';
  /** The listing, in batches as the storage makes them. */
  batches: AsyncIterator<FileStat[]>;
  /** Entries of a batch not yet sent. */
  pending: FileStat[];
  /** One READDIR at a time per handle. */
  busy: boolean;
}

export type Handle = ReadHandle | WriteHandle | DirHandle;

/** Open handles of one session. Handles are 4-byte counters, never reused while open; the table is capped. */
export interface HandleTable {
  /** Throws FAILURE when the table is full (check before opening anything). */
  reserve(): void;
  add(handle: Handle): Buffer;
  get(id: Buffer): Handle | undefined;
  /** Remove and return the handle: the first CLOSE wins, later requests on it find nothing. */
  take(id: Buffer): Handle | undefined;
  /** Remove and return every handle (session end). */
  takeAll(): Handle[];
  /** Open file handles (transfers). */
  transfers(): number;
  /** The open file handles, oldest first (for the live view of transfers). */
  files(): (ReadHandle | WriteHandle)[];
}

export function createHandleTable(max: number = LIMITS.maxOpenHandles): HandleTable {
  const open = new Map<number, Handle>();
  let next = 0;
  const keyOf = (id: Buffer) => (id.length === 4 ? id.readUInt32BE(0) : -1);
  return {
    reserve() {
      if (open.size >= max) throw new SftpError(STATUS.FAILURE, `Too many open handles (at most ${max})`);
    },
    add(handle) {
      this.reserve();
      while (open.has(next)) next = (next + 1) >>> 0;
      const key = next;
      next = (next + 1) >>> 0;
      open.set(key, handle);
      const id = Buffer.allocUnsafe(4);
      id.writeUInt32BE(key, 0);
      return id;
    },
    get: (id) => open.get(keyOf(id)),
    take(id) {
      const key = keyOf(id);
      const handle = open.get(key);
      open.delete(key);
      return handle;
    },
    takeAll() {
      const all = [...open.values()];
      open.clear();
      return all;
    },
    transfers: () => [...open.values()].filter((h) => h.kind !== 'dir').length,
    files: () => [...open.values()].filter((h): h is ReadHandle | WriteHandle => h.kind !== 'dir'),
  };
}

/** The handle `id` names, of one of the wanted kinds; FAILURE otherwise (OpenSSH answers a bad handle the same way). */
export function handleOf<K extends Handle['kind']>(table: HandleTable, id: Buffer, ...kinds: K[]): Extract<Handle, { kind: K }> {
  const handle = table.get(id);
  if (!handle) throw new SftpError(STATUS.FAILURE, 'Invalid handle');
  if (!kinds.includes(handle.kind as K)) throw new SftpError(STATUS.FAILURE, `Handle is not open for this (${handle.kind})`);
  return handle as Extract<Handle, { kind: K }>;
}
