import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import {
  asciiFromNetwork,
  asciiToNetwork,
  formatEpsvReply,
  formatPasvReply,
  parseEprtArgument,
  parseEpsvArgument,
  parsePortArgument,
} from '@ftp/protocol';
import { can } from '@ftp/identity';
import type { UploadStart } from '@ftp/storage';
import { FtpError } from './errors';
import { abortedEvent, completedEvent, recordTransfer, uploadContext } from '@ftp/session-core';
import { requirePermission, resolvePath, storageOf } from './access';
import { disposeData, preparePassive, prepareActive } from './dataChannel';
import type { Handler, Session } from './state';
import { relayEndedCleanly } from './relay';
import { runTransfer, type TransferOutcome } from './transfer';
import { receiveNatively, sendNatively, sendWhole, zeroCopyFor } from './zeroCopyIo';

const PASV: Handler = async (session) => {
  if (session.epsvAll) throw new FtpError(503, 'Only EPSV is allowed after EPSV ALL');
  const host = session.deps.settings.pasvAddress || session.localAddress;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(host)) throw new FtpError(522, 'PASV needs IPv4; use EPSV');
  const port = await preparePassive(session);
  session.reply(227, formatPasvReply(host, port));
};

const EPSV: Handler = async (session, arg) => {
  const parsed = parseEpsvArgument(arg);
  if (!parsed) throw new FtpError(501, 'Usage: EPSV [1|2|ALL]');
  if (parsed.kind === 'all') {
    session.epsvAll = true;
    session.reply(200, 'EPSV ALL accepted');
    return;
  }
  const family = session.localAddress.includes(':') ? 2 : 1;
  if (parsed.kind === 'family' && parsed.family !== family) throw new FtpError(522, `Network protocol not supported, use (${family})`);
  const port = await preparePassive(session);
  session.reply(229, formatEpsvReply(port));
};

/** PORT and EPRT differ only in how the client writes its address. */
function activeMode(verb: string, parse: (arg: string) => { host: string; port: number } | null): Handler {
  return (session, arg) => {
    if (session.epsvAll) throw new FtpError(503, 'Only EPSV is allowed after EPSV ALL');
    const target = parse(arg);
    if (!target) throw new FtpError(501, `Malformed ${verb} argument`);
    prepareActive(session, target.host, target.port);
    session.reply(200, `${verb} command successful`);
  };
}

const PORT = activeMode('PORT', parsePortArgument);
const EPRT = activeMode('EPRT', parseEprtArgument);

const REST: Handler = (session, arg) => {
  if (!/^\d{1,15}$/.test(arg)) throw new FtpError(501, 'REST needs a byte offset');
  session.restOffset = Number(arg);
  session.reply(350, `Restarting at ${session.restOffset}. Send STOR, APPE or RETR`);
};

/** Counts, audits and meters a finished transfer (and writes its xferlog line); only a completed one counts as an upload. */
function recordFtpTransfer(session: Session, direction: 'upload' | 'download', path: string, outcome: TransferOutcome) {
  recordTransfer(session, session.deps, {
    direction,
    path,
    bytes: outcome.bytes,
    ms: outcome.ms,
    result: outcome.result,
    channel: outcome.mode,
    transferType: session.type,
    io: outcome.io,
  });
}

const RETR: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  requirePermission(session, path, 'download');
  const offset = session.restOffset;
  const source = await storageOf(session).openRead(path, offset);
  if (offset > source.size) {
    source.stream.destroy();
    throw new FtpError(554, 'Restart offset is past the end of the file');
  }
  const mode = session.type === 'A' ? 'ASCII' : 'BINARY';
  const outcome = await runTransfer(
    session,
    { direction: 'download', path, opening: `Opening ${mode} mode data connection for ${arg} (${source.size - offset} bytes)` },
    async (socket, signal, link) => {
      if (session.type === 'A') return pipeline(source.stream, asciiToNetwork(), socket, { signal });
      // A small file the storage already read whole: one write, then the FIN.
      if (source.data) return sendWhole(source.data, socket, signal);
      // Clear-text binary from a local file: sendfile, off the event loop (streams where it is not available).
      const zeroCopy = zeroCopyFor(session);
      if (zeroCopy && (await sendNatively(zeroCopy, source, socket, signal, link))) return;
      return pipeline(source.stream, socket, { signal });
    },
  );
  // The stream closes the file; a native send never consumed it.
  if (!outcome.ok || outcome.io !== 'stream') source.stream.destroy();
  recordFtpTransfer(session, 'download', path, outcome);
};

/** Uploading to a path needs `upload` for a new file and `overwrite` for an existing one; most users have both. */
async function requireUploadPermission(session: Session, path: string) {
  const user = session.user!;
  if (can(user, path, 'upload') && can(user, path, 'overwrite')) return;
  const exists = await storageOf(session).stat(path).then(
    () => true,
    () => false,
  );
  requirePermission(session, path, exists ? 'overwrite' : 'upload');
}

/**
 * STOR, APPE and STOU share this: atomic, resumable upload of `path`. It is opened before the 150 so that a bad
 * target fails first; an upload aborted before its first byte leaves the disk as it was. With upload events on, a
 * committed upload is announced before its 226, so no client sees success for an upload the workers never hear of.
 */
async function store(session: Session, path: string, start: UploadStart, opening: string, done?: string) {
  await requireUploadPermission(session, path);
  const { uploads } = session.deps;
  const startedAt = Date.now();
  const upload = await storageOf(session).openUpload(path, start, session.allocated);
  // Object storage resumes only at a complete part (SIZE reports that offset): the client's bytes from its REST offset
  // would land in the wrong place, so it is told where it can restart instead.
  if (start.kind === 'resume' && upload.startOffset !== start.offset) {
    await upload.abort();
    throw new FtpError(554, `Cannot restart at ${start.offset}: this upload can continue at ${upload.startOffset} (send REST ${upload.startOffset})`);
  }
  const context = uploads ? uploadContext(session.deps, path, startedAt, upload.startOffset, { sequential: true }) : undefined;
  let committed = false;
  const outcome = await runTransfer(session, { direction: 'upload', path, opening, done }, async (socket, signal, link) => {
    // Clear-text binary into a local file, not hashed: splice, off the event loop (streams where it is not available).
    const zeroCopy = context?.hasher ? undefined : zeroCopyFor(session);
    if (!zeroCopy || !(await receiveNatively(zeroCopy, upload, socket, signal, link))) {
      const between: NodeJS.ReadWriteStream[] = [];
      if (session.type === 'A') between.push(asciiFromNetwork());
      if (context?.hasher) between.push(context.hasher.stream); // after the conversion: the hash is of the bytes stored
      await pipeline([socket, ...between, upload.stream], { signal });
    }
    // A relaying replica that died ended the stream as a clean EOF would: only its record of the client's end counts.
    if (link.relayEnd) {
      // Under TLS the EOF is the client's close_notify, which may come before its TCP end (what the relaying replica
      // records), and a client may wait for ours before it closes: ours goes first, then the record is awaited.
      if (!socket.destroyed) socket.end();
      if (!(await relayEndedCleanly(session, link.relayEnd))) throw new FtpError(426, 'Data connection broken on the way; transfer aborted, resume it');
    }
    // A client that vanished mid-upload also ends the data stream (in stream mode EOF means "complete"), so the
    // control connection is checked at the last moment, after the flush, which gives a close sent together with the
    // data EOF time to arrive (at least one turn of the event loop). Its bytes then stay a resumable partial.
    await new Promise((resolve) => setImmediate(resolve));
    await upload.commit(() => !session.closed);
    committed = true;
    // One Redis round trip; never throws (while Redis is away the event waits in the publisher's outbox).
    if (uploads && context) await uploads.publishCompleted(completedEvent(session, session.deps, context, upload.startOffset + upload.bytesWritten()));
  });
  if (!outcome.ok) await upload.abort();
  if (!outcome.ok && !committed && uploads && context) {
    const reason = session.closed ? 'disconnected' : outcome.result === 'aborted' ? 'aborted' : 'failed';
    await uploads.publishAborted(await abortedEvent(session, session.deps, storageOf(session), context, reason));
  }
  recordFtpTransfer(session, 'upload', path, outcome);
}

const STOR: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  const offset = session.restOffset;
  await store(session, path, offset > 0 ? { kind: 'resume', offset } : { kind: 'replace' }, `Ok to send data for ${arg}`);
};

const APPE: Handler = async (session, arg) => {
  const path = resolvePath(session, arg);
  await store(session, path, { kind: 'append' }, `Ok to append data to ${arg}`);
};

/** STOU: store under a name the server picks (RFC 1123 reply form "150 FILE: name"). */
const STOU: Handler = async (session, arg) => {
  const base = arg ? arg.replace(/[/\\]/g, '_') : 'upload';
  const name = `${base}.${randomBytes(6).toString('hex')}`;
  const path = resolvePath(session, name);
  await store(session, path, { kind: 'replace' }, `FILE: ${name}`, `Transfer complete (unique file name: ${name})`);
};

/** ABOR with no transfer running (a running one is aborted by the control loop before this queue is reached). */
const ABOR: Handler = (session) => {
  disposeData(session);
  session.reply(226, 'No transfer to abort');
};

const TYPE: Handler = (session, arg) => {
  const value = arg.toUpperCase().replace(/\s+/g, ' ').trim();
  if (value === 'I' || value === 'L 8') session.type = 'I';
  else if (value === 'A' || value === 'A N') session.type = 'A';
  else throw new FtpError(504, `TYPE ${arg} not supported`);
  session.reply(200, `Switching to ${session.type === 'A' ? 'ASCII' : 'Binary'} mode`);
};

const MODE: Handler = (session, arg) => {
  if (arg.toUpperCase() !== 'S') throw new FtpError(504, 'Only MODE S is supported');
  session.reply(200, 'Mode set to S');
};

const STRU: Handler = (session, arg) => {
  if (arg.toUpperCase() !== 'F') throw new FtpError(504, 'Only STRU F is supported');
  session.reply(200, 'Structure set to F');
};

export const transferHandlers: Record<string, Handler> = {
  PASV,
  EPSV,
  PORT,
  EPRT,
  REST,
  RETR,
  STOR,
  APPE,
  STOU,
  ABOR,
  TYPE,
  MODE,
  STRU,
};
