// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- declares an untyped ssh2 module for every project that compiles this file
/// <reference path="./ssh2-channel.d.ts" />
/**
 * The three things ssh2's server-side SFTP stream (1.17.0, pinned) offers no public way to do, done on its internals
 * in this one file:
 * 1. Extensions in the VERSION reply: ssh2 answers INIT with a fixed 9-byte VERSION (v3, no extensions). While the INIT
 *    is processed, the write of exactly those bytes to our channel is swapped for a VERSION that lists ours, and the
 *    channel's send window is charged for the extra bytes.
 * 2. EXTENDED_REPLY packets (limits@openssh.com, statvfs@openssh.com): ssh2 has handle/status/data/name/attrs only.
 *    sendPacket writes a raw packet with the same window and queueing rules as ssh2's own sendOrBuffer.
 * 3. Backpressure: ssh2 re-opens the channel window as soon as a packet is parsed, so a client may send WRITEs faster
 *    than the disk takes them. Our push() wrapper returns false while the session is over its bounds, which makes
 *    ssh2 stop re-opening the window (its CHANNEL_DATA handler checks that return value); resume() re-opens it with
 *    ssh2's own windowAdjust. Reply bytes waiting for the client's window are read from the stream's send queue.
 * 4. Window re-opening: ssh2 tops the window up only once it has shrunk to half (1 MiB of 2 MiB). On a long link that
 *    settles at one adjust per round trip, sent when the next round trip's first packet crosses the half, so the
 *    client never has more than ~1 MiB in flight: uploads ran at half of OpenSSH's rate (1 MiB per RTT against ~2;
 *    bench:links). Like OpenSSH's channel_check_window, the push() wrapper re-opens it as soon as WINDOW_STEP bytes
 *    were taken (not paused), so nearly the whole window stays in flight.
 * 5. A DISCONNECT with a description (sendDisconnect): ssh2's Connection.end() always sends "by application" with an
 *    empty one; its protocol's disconnect() takes a description in our patch (patches/ssh2).
 * If ssh2's internals ever look different, the hooks switch themselves off (a warning, no extensions, no
 * backpressure) instead of breaking sessions; the tests then fail loudly.
 */
import type { Connection, SFTPWrapper } from 'ssh2';
import ssh2Channel from 'ssh2/lib/Channel.js';
import type { SftpLogger } from './types';

interface Ssh2SftpInternals {
  push(data: Buffer | null): boolean | undefined;
  _protocol: { channelData(id: number, data: Buffer): void };
  _buffer: Buffer[];
  _waitWindow: boolean;
  _waitChanDrain?: boolean;
  outgoing: { id: number; window: number; packetSize: number; state: string };
  incoming: { window: number; state: string };
  readable: boolean;
}

/**
 * READ replies without a copy (patches/ssh2): a Buffer marked with this symbol owns the DATA_HEADER_BYTES before it,
 * where ssh2's data() writes the DATA header, and the packet goes out as is. Without the patch ssh2 copies it as usual.
 */
const DATA_HEADROOM = Symbol.for('ssh2.sftp.dataHeadroom');
/** uint32 length, byte type, uint32 request id, uint32 data length. */
export const DATA_HEADER_BYTES = 13;

/** A buffer to read `length` file bytes into at DATA_HEADER_BYTES; dataView() then hands them to sftp.data(). */
export function allocWithDataHeadroom(length: number): Buffer {
  // Its own memory (never a slice of Node's shared pool): the bytes before the data are ours to overwrite.
  return Buffer.allocUnsafeSlow(DATA_HEADER_BYTES + length);
}

export function dataView(buffer: Buffer, length: number): Buffer {
  const view = buffer.subarray(DATA_HEADER_BYTES, DATA_HEADER_BYTES + length);
  (view as Buffer & Record<symbol, boolean>)[DATA_HEADROOM] = true;
  return view;
}

const SSH_FXP_VERSION = 2;
const SSH_FXP_EXTENDED_REPLY = 201;
const PLAIN_VERSION = Buffer.from([0, 0, 0, 5, SSH_FXP_VERSION, 0, 0, 0, 3]);

export interface Ssh2Hooks {
  /** False when ssh2's internals did not look as expected: no extensions, no backpressure. */
  readonly active: boolean;
  /** Send an EXTENDED_REPLY with `body` for request `reqid`. */
  sendExtendedReply(reqid: number, body: Buffer): void;
  /** Reply bytes queued because the client's window is full. */
  outboundBacklog(): number;
  /** Re-open the channel window if a pause (shouldPause said yes while data came in) closed it. */
  resume(): void;
}

function looksLikeSsh2(s: Partial<Ssh2SftpInternals>): s is Ssh2SftpInternals {
  return (
    typeof s.push === 'function' &&
    typeof s._protocol?.channelData === 'function' &&
    Array.isArray(s._buffer) &&
    typeof s.outgoing?.window === 'number' &&
    typeof s.outgoing.packetSize === 'number' &&
    typeof s.incoming?.window === 'number' &&
    typeof ssh2Channel?.windowAdjust === 'function' &&
    typeof ssh2Channel.MAX_WINDOW === 'number'
  );
}

/**
 * Bytes taken from the channel window after which it is re-opened (CHANNEL_WINDOW_ADJUST back to ssh2's MAX_WINDOW):
 * an eighth of the window, so at least 7/8 of it is in flight on a long link, with one adjust per 256 KiB (about one
 * per 255 KiB WRITE). OpenSSH re-opens after 3 packets (96 KiB); ssh2 alone after half (1 MiB).
 */
export const WINDOW_STEP = 256 * 1024;

function reopenWindow(s: Ssh2SftpInternals) {
  if (ssh2Channel.MAX_WINDOW - s.incoming.window >= WINDOW_STEP) ssh2Channel.windowAdjust(s);
}

/** Install the hooks on a fresh SFTP stream, before its INIT arrives (right after `accept()`). */
export function installSsh2Hooks(
  sftp: SFTPWrapper,
  options: { extensions: Array<[string, string]>; shouldPause: () => boolean; log: SftpLogger },
): Ssh2Hooks {
  const s = sftp as unknown as Partial<Ssh2SftpInternals>;
  if (!looksLikeSsh2(s)) {
    options.log.warn({ event: 'sftp-ssh2-internals' }, 'ssh2 internals changed: no SFTP extensions, no backpressure');
    return { active: false, sendExtendedReply: () => undefined, outboundBacklog: () => 0, resume: () => undefined };
  }
  advertiseExtensions(s, encodeVersion(options.extensions), options.log);

  const push = s.push.bind(s);
  s.push = (data) => {
    const ret = push(data);
    if (ret === false || data === null) return ret;
    if (options.shouldPause()) return false;
    reopenWindow(s);
    return ret;
  };

  return {
    active: true,
    sendExtendedReply(reqid, body) {
      const packet = Buffer.allocUnsafe(9 + body.length);
      packet.writeUInt32BE(5 + body.length, 0);
      packet[4] = SSH_FXP_EXTENDED_REPLY;
      packet.writeUInt32BE(reqid, 5);
      body.copy(packet, 9);
      sendPacket(s, packet);
    },
    outboundBacklog() {
      let bytes = 0;
      for (const b of s._buffer) bytes += b.length;
      return bytes;
    },
    resume() {
      if (!s._waitChanDrain) return;
      s._waitChanDrain = false;
      reopenWindow(s);
    },
  };
}

/** VERSION 3 followed by (name, data) string pairs (draft-ietf-secsh-filexfer-02 §4). */
function encodeVersion(extensions: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [Buffer.from([SSH_FXP_VERSION, 0, 0, 0, 3])];
  for (const [name, data] of extensions) parts.push(sshString(name), sshString(data));
  const body = Buffer.concat(parts);
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}

function sshString(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

/**
 * Swap ssh2's plain VERSION for ours when it is written. ssh2 charged the window for 9 bytes before calling
 * channelData; the extra bytes are charged here, and if the window or packet size cannot take them (never seen: the
 * VERSION is the channel's first data) the plain VERSION goes out and clients do without the extensions.
 */
function advertiseExtensions(s: Ssh2SftpInternals, version: Buffer, log: SftpLogger): void {
  const protocol = s._protocol;
  const original = protocol.channelData;
  let active = true;
  const swap = function (this: unknown, id: number, data: Buffer) {
    if (active && id === s.outgoing.id && data.length === PLAIN_VERSION.length && data.equals(PLAIN_VERSION)) {
      done();
      const extra = version.length - data.length;
      if (s.outgoing.window >= extra && version.length <= s.outgoing.packetSize) {
        s.outgoing.window -= extra;
        data = version;
      } else {
        log.warn({ event: 'sftp-version-plain' }, 'no room for the SFTP extensions in the VERSION reply');
      }
    }
    return original.call(this, id, data);
  };
  // Another channel of the same connection may have wrapped channelData after us: then stay as a pass-through.
  const done = () => {
    active = false;
    if (protocol.channelData === swap) protocol.channelData = original;
  };
  protocol.channelData = swap;
  (s as unknown as SFTPWrapper).once('ready', done).once('close', done);
}

/** ssh2's sendOrBuffer for a packet it cannot build itself: now if the window takes all of it, else after what is queued. */
function sendPacket(s: Ssh2SftpInternals, packet: Buffer): void {
  if (s.outgoing.state !== 'open') return;
  // A non-empty queue means ssh2 waits for a window adjust and will drain the queue (ours included) in order.
  if (s._buffer.length > 0 || s._waitWindow) {
    s._buffer.push(packet);
    return;
  }
  if (s.outgoing.window >= packet.length && packet.length <= s.outgoing.packetSize) {
    s.outgoing.window -= packet.length;
    s._protocol.channelData(s.outgoing.id, packet);
    return;
  }
  // A nearly closed window and nothing queued (so ssh2 is not waiting): try again shortly. Replies here are tiny.
  setTimeout(() => sendPacket(s, packet), 5).unref();
}

/** SSH_MSG_DISCONNECT reason codes (RFC 4253 section 11.1) that the server sends. */
export const DISCONNECT = { SERVICE_NOT_AVAILABLE: 7, BY_APPLICATION: 11 } as const;

/**
 * Sends SSH_MSG_DISCONNECT with `code` and `description` (the client shows it: OpenSSH prints "Received disconnect
 * from …: 7: Service temporarily unavailable, try again later") and ends the socket after it. Falls back to ssh2's
 * plain end() when its internals are not as expected.
 */
export function sendDisconnect(connection: Connection, code: number, description: string): void {
  const c = connection as unknown as { _protocol?: { disconnect?: (code: number, description?: string) => void }; _sock?: { writable: boolean; end(): void } };
  if (typeof c._protocol?.disconnect !== 'function' || !c._sock) return void connection.end();
  if (!c._sock.writable) return;
  c._protocol.disconnect(code, description);
  c._sock.end();
}
