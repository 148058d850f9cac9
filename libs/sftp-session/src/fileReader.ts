import type { Readable } from 'node:stream';
import type { Download } from '@ftp/storage';
import { allocWithDataHeadroom, DATA_HEADER_BYTES, dataView } from './ssh2Hooks';

/** Serves READ requests of one handle from a stream that reads ahead; a READ elsewhere than where it stands reopens it. */
export interface FileReader {
  /**
   * Up to `length` bytes at `offset` (fewer only at the end), or null past the end. Calls run one at a time, in call
   * order; `ready`, if given, is awaited at the start of this call's turn (to hold it while replies pile up).
   */
  read(offset: number, length: number, ready?: () => Promise<void>): Promise<Buffer | null>;
  /** Stop reading and close the file; reads still queued resolve null. */
  close(): void;
}

export function createFileReader(first: Download, reopen: (offset: number) => Promise<Download>): FileReader {
  return first.readAt ? positionalReader(first, first.readAt) : streamReader(first, reopen);
}

/**
 * Each READ is one positional read straight into its reply's buffer (no read-ahead stream, no copy): the client's
 * requests in flight are the read-ahead. Reads stop at the size the file had when it was opened, as the stream did.
 */
function positionalReader(download: Download, readAt: NonNullable<Download['readAt']>): FileReader {
  let closed = false;
  const readNow = async (offset: number, length: number): Promise<Buffer | null> => {
    const wanted = Math.min(length, download.size - offset);
    if (closed || wanted <= 0) return null;
    const buffer = allocWithDataHeadroom(wanted);
    let got = 0;
    while (got < wanted && !closed) {
      const bytes = await readAt(buffer, DATA_HEADER_BYTES + got, wanted - got, offset + got);
      if (bytes === 0) break;
      got += bytes;
    }
    return got === 0 || closed ? null : dataView(buffer, got);
  };
  const turns = oneAtATime(readNow, () => closed);
  return {
    read: turns.read,
    close() {
      closed = true;
      // After the read in flight: closing its fd under it could let the number name another file meanwhile.
      void turns.settled().then(() => download.stream.destroy());
    },
  };
}

/**
 * Runs `readNow` for one read at a time, in call order, awaiting the read's `ready` at the start of its turn. A read
 * cut short by close() (its file closed under it) is an end (null), not an error.
 */
function oneAtATime(readNow: (offset: number, length: number) => Promise<Buffer | null>, closed: () => boolean) {
  let queue: Promise<unknown> = Promise.resolve();
  return {
    read(offset: number, length: number, ready?: () => Promise<void>): Promise<Buffer | null> {
      const result = queue
        .then(async () => {
          if (ready) await ready();
          return readNow(offset, length);
        })
        .catch((err: unknown) => (closed() ? null : Promise.reject(err)));
      queue = result.catch(() => undefined);
      return result;
    },
    /** Resolves once no read is in flight or queued. */
    settled: () => queue,
  };
}

function streamReader(first: Download, reopen: (offset: number) => Promise<Download>): FileReader {
  let stream: Readable = first.stream;
  let chunks: AsyncIterator<Buffer> = stream[Symbol.asyncIterator]();
  let position = 0;
  let leftover: Buffer | undefined;
  let closed = false;

  const moveTo = async (offset: number) => {
    stream.destroy();
    const next = await reopen(offset);
    if (closed) {
      next.stream.destroy();
      return;
    }
    stream = next.stream;
    chunks = stream[Symbol.asyncIterator]();
    position = offset;
    leftover = undefined;
  };

  const readNow = async (offset: number, length: number): Promise<Buffer | null> => {
    if (closed) return null;
    if (offset !== position) await moveTo(offset);
    const parts: Buffer[] = [];
    let got = 0;
    while (got < length && !closed) {
      let chunk = leftover;
      leftover = undefined;
      if (!chunk) {
        const next = await chunks.next();
        if (next.done) break;
        chunk = next.value;
      }
      const wanted = length - got;
      if (chunk.length > wanted) {
        leftover = chunk.subarray(wanted);
        chunk = chunk.subarray(0, wanted);
      }
      parts.push(chunk);
      got += chunk.length;
    }
    position += got;
    if (got === 0) return null;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, got);
  };

  return {
    read: oneAtATime(readNow, () => closed).read,
    close() {
      closed = true;
      leftover = undefined;
      stream.destroy();
    },
  };
}
