import type { Socket } from 'node:net';
import { context, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { startChildSpan } from '@ftp/telemetry';
import { clientBytesRead } from '@ftp/session-core';
import { failureLevel, FtpError, storageFailure, toFtpError } from './errors';
import { openDataConnection } from './dataChannel';
import { dataProtectionRequired } from './handleTls';
import type { ActiveTransfer, Session } from './state';
import type { DataMode } from './types';

export interface TransferInfo {
  direction: ActiveTransfer['direction'];
  /** Virtual path, for logs and STAT. */
  path: string;
  /** Text of the 150 reply. */
  opening: string;
  /** Text of the 226 reply. */
  done?: string;
}

export interface TransferOutcome {
  ok: boolean;
  /** Bytes on the data connection. */
  bytes: number;
  ms: number;
  result: 'ok' | 'aborted' | 'failed';
  /** How the data connection was made; undefined when none was. */
  mode?: DataMode;
  /** How the bytes moved; undefined when no data connection was made. */
  io?: TransferIo;
}

/** How a transfer's bytes moved: through Node streams, or natively (zero-copy) with sendfile or splice. */
export type TransferIo = 'stream' | 'sendfile' | 'splice';

/**
 * What a transfer body tells the transfer about bytes it moves outside the socket's own counters (natively, on a
 * descriptor lent to the zero-copy addon): how, and how many, so that byte counts stay exact and the stall timer
 * knows the connection is alive.
 */
export interface DataLink {
  /** Set by a body that does not move the bytes through the socket's streams. */
  io: TransferIo;
  /** Counts `bytes` moved natively and restarts the stall timer. */
  moved(bytes: number): void;
  /**
   * Set for a connection a peer relayed: its EOF is the client's clean end only if the relaying peer recorded it so
   * (a relaying replica that dies ends its side with a FIN too). See relayEndedCleanly.
   */
  relayEnd?: string;
}

/**
 * Runs one data transfer around `body`: 150, open the data connection, move the bytes, then 226 — or 425/426/45x,
 * with ABOR answered 426 then 226. `body` gets the socket and an AbortSignal that fires on ABOR, a closed control
 * connection or a stalled data connection. The session stays usable whatever happens.
 * Traced as one `ftp transfer` span under the command's (attributes set once, at the end: nothing per chunk); `body`
 * runs inside it, so what it calls (the upload event) joins the transfer's trace.
 */
export async function runTransfer(
  session: Session,
  info: TransferInfo,
  body: (socket: Socket, signal: AbortSignal, link: DataLink) => Promise<void>,
): Promise<TransferOutcome> {
  const parent = session.currentContext;
  const span = startChildSpan(
    'ftp transfer',
    {
      attributes: {
        'ftp.session.id': session.id,
        'ftp.transfer.direction': info.direction,
        'ftp.path': info.path,
        'ftp.transfer.type': session.type === 'A' ? 'ascii' : 'binary',
        'ftp.transfer.tls': session.protection === 'P',
        ...(session.restOffset > 0 ? { 'ftp.transfer.offset': session.restOffset } : {}),
      },
    },
    parent,
  );
  session.currentContext = trace.setSpan(parent, span);
  let outcome: TransferOutcome;
  try {
    outcome = await context.with(session.currentContext, () => transfer(session, info, body, span));
  } finally {
    session.currentContext = parent;
  }
  span.setAttributes({
    'ftp.transfer.bytes': outcome.bytes,
    'ftp.transfer.duration_ms': outcome.ms,
    'ftp.transfer.result': outcome.result,
  });
  if (outcome.mode) span.setAttributes({ 'ftp.transfer.mode': outcome.mode, 'ftp.transfer.io': outcome.io ?? 'stream' });
  if (!outcome.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: `transfer ${outcome.result}` });
  span.end();
  return outcome;
}

async function transfer(
  session: Session,
  info: TransferInfo,
  body: (socket: Socket, signal: AbortSignal, link: DataLink) => Promise<void>,
  span: Span,
): Promise<TransferOutcome> {
  const controller = new AbortController();
  const started = Date.now();
  let socket: Socket | undefined;
  let nativeBytes = 0;
  const transfer: ActiveTransfer = {
    aborted: false,
    direction: info.direction,
    path: info.path,
    startedAt: started,
    abort() {
      transfer.aborted = true;
      controller.abort();
    },
    // The session's record shows it while the transfer runs (the sessions API's live bytes), native moves included.
    bytes: () => (socket ? clientBytes(socket) : 0) + nativeBytes,
  };
  if (dataProtectionRequired(session) && session.protection !== 'P') {
    session.log.info({ path: info.path }, 'transfer refused: data connection must be protected (PROT P)');
    session.reply(521, 'Data connections must be protected: use PROT P');
    return { ok: false, bytes: 0, ms: 0, result: 'failed' };
  }
  session.transfer = transfer;
  session.reply(150, info.opening);
  let mode: DataMode | undefined;
  const link: DataLink = {
    io: 'stream',
    moved(bytes) {
      nativeBytes += bytes;
      // Native bytes are no activity Node sees on the socket: the stall timer starts over here (same callback).
      if (!socket?.destroyed) socket?.setTimeout(session.deps.settings.stallTimeout * 1000);
    },
  };
  let result: TransferOutcome['result'] = 'failed';
  try {
    let relayEnd: string | undefined;
    ({ socket, mode, relayEnd } = await openDataConnection(session, controller.signal));
    link.relayEnd = relayEnd;
    if (span.isRecording()) span.setAttributes({ 'network.peer.address': socket.remoteAddress ?? '', 'network.peer.port': socket.remotePort ?? 0 });
    const stalled = session.deps.settings.stallTimeout * 1000;
    socket.setTimeout(stalled, () => {
      session.log.warn({ path: info.path }, 'transfer stalled: closing data connection');
      controller.abort();
    });
    await body(socket, controller.signal, link);
    // Done, even if the control connection closed meanwhile: an upload's body commits only while the session is
    // open (commit's stillWanted), so a close seen now came after the file was published; it is logged as what it is.
    result = 'ok';
    if (session.closed) session.log.info({ path: info.path }, 'transfer complete, but the control connection closed before its 226');
    else session.reply(226, info.done ?? 'Transfer complete');
  } catch (err) {
    socket?.destroy();
    if (transfer.aborted && !session.closed) {
      result = 'aborted';
      session.reply(426, 'Transfer aborted');
      session.reply(226, 'ABOR successful');
    } else if (err instanceof FtpError || !isNetworkError(err, socket)) {
      const reply = toFtpError(err);
      session.log[failureLevel(err)]({ err, path: info.path, reply: reply.code }, 'transfer failed');
      session.reply(reply.code, reply.message);
    } else {
      session.log.info({ err: (err as Error).message, path: info.path }, 'data connection broke during transfer');
      session.reply(426, 'Data connection closed; transfer aborted');
    }
  } finally {
    session.transfer = undefined;
  }
  const bytes = transfer.bytes();
  if (info.direction === 'upload') session.bytesIn += bytes;
  else session.bytesOut += bytes;
  return { ok: result === 'ok', bytes, ms: Date.now() - started, result, mode, io: socket ? link.io : undefined };
}

/** Storage errors carry their own reply; anything else that broke while a socket was open is the network's doing. */
function isNetworkError(err: unknown, socket: Socket | undefined): boolean {
  return socket !== undefined && !storageFailure(err);
}

/** Bytes the client sent and got on a data connection: not the PROXY headers a balancer or a relaying replica put first. */
const clientBytes = (socket: Socket) => clientBytesRead(socket) + socket.bytesWritten;
