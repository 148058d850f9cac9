import type { Socket } from 'node:net';
import { finished } from 'node:stream/promises';
import type { Download, Upload } from '@ftp/storage';
import { canLend, lendSocket, MoveError, writeFlushed, type LentSocket, type ZeroCopy } from '@ftp/zero-copy';
import type { Session } from './state';
import type { DataLink } from './transfer';

/**
 * Downloads smaller than this go through streams: a native move costs a thread start and a few event-loop round
 * trips, which only pays off once there are bytes to save copies of.
 */
export const ZERO_COPY_MIN_BYTES = 64 * 1024;

/** Failures of a native move that moved nothing and mean "not here": the stream path takes over. */
const UNSUPPORTED = new Set(['EINVAL', 'ENOSYS', 'EOPNOTSUPP', 'ESTART']);

/**
 * The addon, where this transfer may use it: loaded (FTP_ZERO_COPY=auto and built), a binary transfer (ASCII
 * converts line ends in Node) on a clear-text data connection (TLS encrypts in Node). Hashing uploads and storages
 * without local files decide for themselves below.
 */
export function zeroCopyFor(session: Session): ZeroCopy | undefined {
  const zeroCopy = session.deps.zeroCopy;
  return zeroCopy && session.type === 'I' && session.protection === 'C' ? zeroCopy : undefined;
}

/** Closes `socket` with a TCP reset (RST), so its peer sees a broken connection, not an end of data. */
export function resetOrDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy(); // not connected (or its descriptor is lent out): nothing to reset
  }
}

/**
 * Sends a download's bytes with sendfile(2) from the storage's open file. Resolves true once all of them are in the
 * socket's kernel buffer and the socket has been ended after them (the FIN follows the data), as the stream path's
 * pipeline does; false when nothing was sent because the native path is not available here (the caller streams).
 * Rejects as the stream path would: AbortError on ABOR or a stall, the errno on a broken connection.
 */
export async function sendNatively(zeroCopy: ZeroCopy, source: Download, socket: Socket, signal: AbortSignal, link: DataLink): Promise<boolean> {
  const file = source.file;
  if (!file || file.length < ZERO_COPY_MIN_BYTES) return false;
  const lent = lendSocket(socket);
  if (!lent) return false;
  // A download's client sends nothing on its data connection; what it did is dropped, as the stream path never reads it.
  link.io = 'sendfile';
  try {
    await zeroCopy.sendFile(file.fd, lent.fd, file.position, file.length, { signal, onProgress: (n) => link.moved(n) });
  } catch (err) {
    lent.giveBack();
    if (err instanceof MoveError && err.bytes === 0 && UNSUPPORTED.has(err.code)) {
      link.io = 'stream';
      return false;
    }
    throw err;
  }
  lent.giveBack();
  // Node reads again, so that the client's close ends the socket; end() sends the FIN after the data.
  socket.resume();
  socket.end();
  await finished(socket, { readable: false });
  return true;
}

/**
 * Sends bytes already in memory (a small file the storage read whole) and ends the socket after them: resolves once
 * the FIN is queued after the last byte, as the stream path's pipeline does. Rejects on a broken connection, or with
 * AbortError on ABOR or a stall.
 */
export function sendWhole(data: Buffer, socket: Socket, signal: AbortSignal): Promise<void> {
  socket.end(data);
  return finished(socket, { readable: false, signal });
}

/**
 * Receives an upload into the storage's file at the upload's offset. Node reads the first ZERO_COPY_MIN_BYTES itself
 * and writes them positionally as they come: an upload that ends within them (most small files) needs no native move
 * (a thread start and its event-loop round trips cost more than the copy). A bigger one continues with splice(2)
 * socket → pipe → file until the client's EOF, after what Node read. The socket is closed afterwards. Resolves false
 * when the native path is not available (nothing was read: the caller streams); rejects as the stream path would,
 * with exact byte counts either way: what was read from the socket is written before any failure is reported.
 */
export async function receiveNatively(zeroCopy: ZeroCopy, upload: Upload, socket: Socket, signal: AbortSignal, link: DataLink): Promise<boolean> {
  if (!upload.receiveInto || !canLend(socket)) return false;
  const head = await readHead(socket, ZERO_COPY_MIN_BYTES, signal, (chunks, at) => upload.writeAt(upload.startOffset + at, chunks));
  let position = upload.startOffset + head.bytes;
  // A socket that can no longer be lent (closed meanwhile) is read to its end the same way.
  const lent = head.ended ? null : lendSocket(socket);
  if (!lent) {
    if (!head.ended) await readHead(socket, Infinity, signal, (chunks, at) => upload.writeAt(position + at, chunks));
    socket.destroy();
    return true;
  }
  link.io = 'splice';
  try {
    if (lent.buffered.length > 0) {
      await upload.writeAt(position, lent.buffered);
      for (const chunk of lent.buffered) position += chunk.length;
    }
    await upload.receiveInto((fd, wrote) =>
      zeroCopy.spliceToFile(lent.fd, fd, position, {
        signal,
        onProgress: (n) => {
          wrote(n);
          link.moved(n);
        },
      }),
    );
  } finally {
    lent.giveBack();
  }
  socket.destroy();
  return true;
}

/** What readHead read and stored: bytes, and whether the client's EOF came. */
interface Head {
  bytes: number;
  ended: boolean;
}

/**
 * Reads `socket` until its EOF or until at least `limit` bytes arrived (the rest stays in the socket for a native
 * move), handing every batch read to `store` with its offset from the start. Settles once every store settled: with
 * the first store failure, or else a socket error, a close without EOF, or `signal`'s reason (ABOR, a stall), so
 * that what was read from the socket is stored when the failure is reported.
 */
function readHead(socket: Socket, limit: number, signal: AbortSignal, store: (chunks: Buffer[], offset: number) => Promise<void>): Promise<Head> {
  const head: Head = { bytes: 0, ended: false };
  if (signal.aborted) return Promise.reject(signal.reason);
  if (socket.readableEnded) return Promise.resolve({ ...head, ended: true });
  if (socket.destroyed) return Promise.reject(prematureClose());
  const stores: Promise<void>[] = [];
  return new Promise((resolve, reject) => {
    const stop = (failure?: unknown) => {
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', stop);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      Promise.all(stores).then(() => (failure === undefined ? resolve(head) : reject(failure)), reject);
    };
    const onReadable = () => {
      const batch: Buffer[] = [];
      let bytes = 0;
      for (let chunk: Buffer | null; head.bytes + bytes < limit && (chunk = socket.read() as Buffer | null) !== null; ) {
        batch.push(chunk);
        bytes += chunk.length;
      }
      if (bytes > 0) {
        const stored = store(batch, head.bytes);
        stored.catch(() => undefined); // reported by stop(), once every store settled
        stores.push(stored);
        head.bytes += bytes;
      }
      if (head.bytes >= limit) stop();
    };
    const onEnd = () => {
      head.ended = true;
      stop();
    };
    const onClose = () => stop(prematureClose());
    const onAbort = () => stop(signal.reason);
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', stop);
    socket.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const prematureClose = () => Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/** Bytes a native relay moved each way (beyond what went through Node before it started). */
export interface RelayedBytes {
  fromClient: number;
  toClient: number;
}

/**
 * Relays `client` and `owner` into each other natively (splice both ways, one move per direction), each side's EOF
 * passed on as a FIN, the client's only once `beforeClientEnd` resolved; either one failing, or either socket being
 * destroyed, ends both with resets. Bytes Node had already read on either side are written first. Resolves undefined
 * when either socket cannot be lent (nothing changed: relay with streams), else a promise that settles once both
 * sockets are closed.
 */
export function relayNatively(zeroCopy: ZeroCopy, client: Socket, owner: Socket, beforeClientEnd: () => Promise<void>): Promise<RelayedBytes> | undefined {
  if (!canLend(client) || !canLend(owner)) return undefined;
  // Half-close must travel (an EOF Node already read must not end the other direction): as the stream relay does.
  client.allowHalfOpen = true;
  owner.allowHalfOpen = true;
  const fromClient = lendSocket(client)!;
  const fromOwner = lendSocket(owner)!;
  const controller = new AbortController();
  const stop = () => controller.abort();
  client.once('close', stop);
  owner.once('close', stop);
  const direction = async (from: LentSocket, to: Socket, toLent: LentSocket, beforeEnd?: () => Promise<void>): Promise<number> => {
    await writeFlushed(to, from.buffered);
    const { bytes } = await zeroCopy.spliceToSocket(from.fd, toLent.fd, { signal: controller.signal });
    await beforeEnd?.();
    to.end(); // the half-close travels: an upload ends with the client's FIN while the owner's reply may still come
    return bytes;
  };
  const broken = (err: unknown) => {
    stop();
    // Resets, not FINs: the owner must see a cut upload as cut (see relay.ts).
    resetOrDestroy(client);
    resetOrDestroy(owner);
    return err instanceof MoveError ? err.bytes : 0;
  };
  return Promise.all([
    direction(fromClient, owner, fromOwner, beforeClientEnd).catch(broken),
    direction(fromOwner, client, fromClient).catch(broken),
  ]).then(([up, down]) => {
    client.off('close', stop);
    owner.off('close', stop);
    fromClient.giveBack();
    fromOwner.giveBack();
    client.destroy();
    owner.destroy();
    return { fromClient: up, toClient: down };
  });
}
