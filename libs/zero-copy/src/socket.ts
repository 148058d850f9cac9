import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** What Node keeps of a TCP socket's libuv handle (internal, stable since Node 0.x on Unix). */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?(): number;
}

const NOTHING = Buffer.alloc(0);

/** A Node socket whose descriptor is lent to native code: Node neither reads it nor may write it meanwhile. */
export interface LentSocket {
  fd: number;
  /** Bytes Node had already read from the socket (they come before anything the descriptor still holds). */
  buffered: Buffer[];
  /** Gives the socket back to Node, reading again if it was reading when lent (else once resumed). Idempotent. */
  giveBack(): void;
}

/**
 * Lends a clear-text TCP socket's descriptor to native code. Node stops reading it (the handle's readStop, and a
 * `_read` that starts nothing), so the kernel's bytes are left for the native side; what Node had already read is
 * handed over in `buffered`. Node still owns the descriptor: it must not be closed while lent (a native move works on
 * its own duplicate anyway). Returns null when there is no descriptor to lend: TLS, a closed socket, pending writes
 * (they would reach the peer after native bytes: wait for them first, e.g. writeFlushed), or a platform without one.
 */
export function lendSocket(socket: Socket): LentSocket | null {
  const handle = lendableHandle(socket);
  if (!handle?.readStop || handle.fd === undefined) return null;
  // A read Node had started stays pending in the stream while lent (it waits for bytes): giveBack starts the handle again.
  const wasReading = handle.reading === true;
  socket.pause();
  handle.readStop();
  handle.reading = false;
  const readable = socket as unknown as { _read: (size: number) => void };
  const hadOwnRead = Object.prototype.hasOwnProperty.call(socket, '_read');
  const ownRead = readable._read;
  // While lent, a read() must not start the handle reading again (net.Socket's _read would). Pushing nothing
  // answers the read all the same (the stream does not stay "reading", so it reads again once given back).
  readable._read = () => void socket.push(NOTHING);
  const buffered: Buffer[] = [];
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) buffered.push(chunk);
  let lent = true;
  return {
    fd: handle.fd,
    buffered,
    giveBack() {
      if (!lent) return;
      lent = false;
      if (hadOwnRead) readable._read = ownRead;
      else delete (readable as Partial<typeof readable>)._read;
      if (wasReading && !socket.destroyed) readable._read(socket.readableHighWaterMark);
    },
  };
}

/** Whether lendSocket would lend `socket` now (so that two sockets can be checked before either is lent). */
export function canLend(socket: Socket): boolean {
  return lendableHandle(socket) !== undefined;
}

function lendableHandle(socket: Socket): StreamHandle | undefined {
  if (socket instanceof TLSSocket || socket.destroyed || socket.connecting || socket.writableLength > 0) return undefined;
  const handle = (socket as unknown as { _handle?: StreamHandle })._handle;
  if (!handle || typeof handle.fd !== 'number' || handle.fd < 0 || typeof handle.readStop !== 'function') return undefined;
  return handle;
}

/** Writes `chunks` to `socket` and resolves once all of them were handed to the kernel (the last write's callback ran). */
export function writeFlushed(socket: Socket, chunks: readonly Uint8Array[]): Promise<void> {
  const last = chunks.length - 1;
  if (last < 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    chunks.forEach((chunk, i) => socket.write(chunk, i === last ? (err) => (err ? reject(err) : resolve()) : undefined));
  });
}
