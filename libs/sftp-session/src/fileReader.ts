import type { Readable } from 'node:stream';
import type { Download } from '@ftp/storage';

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
  let stream: Readable = first.stream;
  let chunks: AsyncIterator<Buffer> = stream[Symbol.asyncIterator]();
  let position = 0;
  let leftover: Buffer | undefined;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();

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
    read(offset, length, ready) {
      // A read cut short by close() (the stream destroyed under it) is an end, not an error.
      const result = queue
        .then(async () => {
          if (ready) await ready();
          return readNow(offset, length);
        }).catch((err: unknown) => (closed ? null : Promise.reject(err)));
      queue = result.catch(() => undefined);
      return result;
    },
    close() {
      closed = true;
      leftover = undefined;
      stream.destroy();
    },
  };
}
