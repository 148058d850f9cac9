import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { storageError } from '../errors';
import { StorageError, type Download } from '../types';
import { s3Error } from './errors';
import type { S3Context } from './objects';

/**
 * A jump forward by less than this is read through rather than answered with a new GET: a GET costs a round trip,
 * and SFTP clients with many READs in flight sometimes answer one out of order.
 */
const SKIP_LIMIT = 1024 * 1024;
/** What the download stream holds ahead of its reader (the GET's socket buffers hold more). */
const STREAM_BUFFER = 256 * 1024;

/** A GET from `position` to the end: its body and the whole object's size; 'past-end' when there is no byte there. */
export async function getFrom(ctx: S3Context, key: string, position: number): Promise<{ body: Readable; size: number } | 'past-end'> {
  try {
    const out = await ctx.client.send(
      new GetObjectCommand({ Bucket: ctx.bucket, Key: key, Range: position > 0 ? `bytes=${position}-` : undefined }),
    );
    const body = out.Body as Readable;
    const total = /\/(\d+)$/.exec(out.ContentRange ?? '')?.[1];
    return { body, size: total !== undefined ? Number(total) : (out.ContentLength ?? 0) + position };
  } catch (err) {
    const mapped = s3Error(err);
    if (mapped.code === 'invalid-offset') return 'past-end';
    throw mapped;
  }
}

/** A download of nothing (opened at or past the end). */
export function emptyDownload(size: number): Download {
  return { stream: Readable.from([]), size, readAt: async () => 0 };
}

/** Where positional reads stand: the GET they read from, its position, and the rest of a chunk a read did not need. */
interface ReadCursor {
  body: Readable;
  position: number;
  leftover?: Buffer;
}

/**
 * The Download of an object opened at `offset` with its first GET (`body`). `stream` relays that GET (S3 has no file
 * descriptor: no `file`, no `data`). `readAt` serves positional reads from a read-ahead GET: the first one from the
 * same GET when it starts where that one does, each next one from where the last ended, so an SFTP client reading a
 * file in order costs one GET, not one per 32 KiB READ; a read elsewhere opens a new GET there (`Range: bytes=n-`).
 * Destroying `stream` closes whichever GET is open.
 */
export function rangedDownload(ctx: S3Context, key: string, size: number, body: Readable, offset: number): Download {
  const state = {
    closed: false,
    /** The first GET until the stream relays it or readAt adopts it. */
    first: body as Readable | undefined,
    relaying: false,
    cursor: undefined as ReadCursor | undefined,
  };
  // Until someone reads it, an error on the first GET (its socket timing out) must not go unhandled.
  body.on('error', () => undefined);

  const close = () => {
    state.closed = true;
    state.first?.destroy();
    state.cursor?.body.destroy();
    state.first = undefined;
    state.cursor = undefined;
  };

  const stream = new Readable({
    highWaterMark: STREAM_BUFFER,
    read() {
      if (state.relaying) return void state.first?.resume();
      state.relaying = true;
      const source = state.first;
      if (!source) return void this.destroy(storageError('io', new Error('download already read positionally')));
      if (source.errored) return void this.destroy(s3Error(source.errored));
      source.on('data', (chunk: Buffer) => {
        if (!this.push(chunk)) source.pause();
      });
      source.on('end', () => this.push(null));
      source.on('error', (err) => this.destroy(s3Error(err)));
    },
    destroy(err, done) {
      close();
      done(err);
    },
  });

  const openAt = async (position: number): Promise<ReadCursor> => {
    state.cursor?.body.destroy();
    state.cursor = undefined;
    const got = await getFrom(ctx, key, position);
    if (got === 'past-end') return { body: Readable.from([]), position };
    got.body.on('error', () => undefined); // read() reports it
    if (state.closed) got.body.destroy();
    return { body: got.body, position };
  };

  const cursorAt = async (position: number): Promise<ReadCursor> => {
    let c = state.cursor;
    if (!c && state.first && !state.relaying && position === offset) {
      c = { body: state.first, position: offset };
      state.first = undefined; // adopted: the positional reads own it now
    } else if (state.first && !state.relaying) {
      state.first.destroy(); // positional reads elsewhere: the first GET is not needed
      state.first = undefined;
    }
    if (c && position > c.position && position - c.position <= SKIP_LIMIT) {
      while (c.position < position) {
        const chunk = await nextChunk(c);
        if (!chunk) break;
        const n = Math.min(chunk.length, position - c.position);
        if (n < chunk.length) c.leftover = chunk.subarray(n);
        c.position += n;
      }
    }
    if (!c || c.position !== position) c = await openAt(position);
    state.cursor = c;
    return c;
  };

  const readAt = async (buffer: Buffer, at: number, length: number, position: number): Promise<number> => {
    if (state.closed) throw storageError('io', new Error('download closed'));
    if (!Number.isSafeInteger(position) || position < 0) throw storageError('invalid-offset');
    const wanted = Math.min(length, size - position);
    if (wanted <= 0) return 0;
    let c = await cursorAt(position);
    let got = 0;
    let retried = false;
    while (got < wanted) {
      let chunk: Buffer | null;
      try {
        chunk = await nextChunk(c);
      } catch (err) {
        // A GET left idle between two reads may have timed out: one new GET from where it stood.
        if (retried || state.closed) throw s3Error(err);
        retried = true;
        c = state.cursor = await openAt(c.position);
        continue;
      }
      if (!chunk) break; // the object got shorter since it was opened
      const n = Math.min(chunk.length, wanted - got);
      chunk.copy(buffer, at + got, 0, n);
      if (n < chunk.length) c.leftover = chunk.subarray(n);
      got += n;
      c.position += n;
    }
    return got;
  };

  return { stream, size, readAt };
}

/** The next chunk of the cursor's GET (its leftover first), null at its end. */
async function nextChunk(c: ReadCursor): Promise<Buffer | null> {
  if (c.leftover) {
    const chunk = c.leftover;
    c.leftover = undefined;
    return chunk;
  }
  for (;;) {
    const chunk = c.body.read() as Buffer | null;
    if (chunk !== null) return chunk;
    if (c.body.errored) throw c.body.errored;
    if (c.body.readableEnded) return null;
    if (c.body.destroyed) throw new StorageError('io', 'download closed');
    await readableOrDone(c.body);
  }
}

function readableOrDone(body: Readable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      body.off('readable', done);
      body.off('end', done);
      body.off('error', done);
      body.off('close', done);
      resolve();
    };
    body.on('readable', done);
    body.on('end', done);
    body.on('error', done);
    body.on('close', done);
  });
}
