import { SpanStatusCode } from '@opentelemetry/api';
import { startChildSpan } from '@ftp/telemetry';
import type { SFTPWrapper } from 'ssh2';
import { overBounds, maybeResume } from './flow';
import { createHandleTable } from './handles';
import { dirHandlers } from './handleDirs';
import { extensionHandlers } from './handleExtensions';
import { fileHandlers } from './handleFiles';
import { pathHandlers } from './handlePaths';
import { advertisedExtensions, FLOW } from './limits';
import { installSsh2Hooks } from './ssh2Hooks';
import type { Request, Session } from './state';
import { STATUS, toStatus } from './status';
import { releaseHandle } from './transfers';
import type { SftpContext, SftpSession } from './types';

/** Requests that are part of a file transfer, traced by its one span instead. */
const PER_PACKET = new Set(['READ', 'WRITE', 'READDIR']);

/**
 * Serve SFTP v3 on an accepted `sftp` subsystem stream for an authenticated user. Call it right after `accept()`,
 * before the client's INIT arrives (the VERSION reply lists our extensions). Every request is answered; a failure is
 * mapped to a status in one place (status.ts) and logged; nothing a client sends crashes the process.
 */
export function serveSftp(sftp: SFTPWrapper, ctx: SftpContext): SftpSession {
  const s: Session = { sftp, ctx, handles: createHandleTable(), hooks: undefined as never, writeBacklog: 0, inflight: 0, closed: false };
  const pause = pauseWatch(s);
  s.hooks = installSsh2Hooks(sftp, {
    extensions: advertisedExtensions({ diskSpace: ctx.diskSpace !== undefined }),
    log: ctx.log,
    shouldPause: () => overBounds(s) && pause.start(),
  });

  let ending = false;
  const dispatch = (op: string, id: number, run: (req: Request) => Promise<void>) => {
    if (s.closed) return;
    if (s.inflight >= FLOW.refuseInflight) {
      ctx.log.warn({ event: 'sftp-overload', op, inflight: s.inflight }, 'too many outstanding SFTP requests');
      return sftp.status(id, STATUS.FAILURE, 'Too many outstanding requests');
    }
    s.inflight++;
    const req: Request = { id, op };
    // Per file transfer and per metadata request, never per READ/WRITE packet (those are the transfer's).
    const span = ctx.traceContext && !PER_PACKET.has(op) ? startChildSpan(`sftp ${op}`, {}, ctx.traceContext) : undefined;
    run(req)
      .catch((err: unknown) => {
        span?.setStatus({ code: SpanStatusCode.ERROR, message: toStatus(err).message });
        fail(s, req, err);
      })
      .finally(() => {
        if (req.path) span?.setAttribute('sftp.path', req.path);
        span?.end();
        s.inflight--;
        maybeResume(s);
        if (ending && s.inflight === 0) sftp.end();
      });
  };

  const { OPEN, CLOSE, READ, WRITE, FSTAT, FSETSTAT } = fileHandlers;
  const { OPENDIR, READDIR, MKDIR, RMDIR, REALPATH } = dirHandlers;
  const { STAT, LSTAT, SETSTAT, REMOVE, RENAME, READLINK, SYMLINK } = pathHandlers;
  const { EXTENDED } = extensionHandlers;
  sftp
    .on('OPEN', (id, filename, flags, attrs) => dispatch('OPEN', id, (req) => OPEN(s, req, filename, flags, attrs)))
    .on('CLOSE', (id, handle) => dispatch('CLOSE', id, (req) => CLOSE(s, req, handle)))
    .on('READ', (id, handle, offset, length) => dispatch('READ', id, (req) => READ(s, req, handle, offset, length)))
    .on('WRITE', (id, handle, offset, data) => dispatch('WRITE', id, (req) => WRITE(s, req, handle, offset, data)))
    .on('FSTAT', (id, handle) => dispatch('FSTAT', id, (req) => FSTAT(s, req, handle)))
    .on('FSETSTAT', (id, handle, attrs) => dispatch('FSETSTAT', id, (req) => FSETSTAT(s, req, handle, attrs)))
    .on('OPENDIR', (id, path) => dispatch('OPENDIR', id, (req) => OPENDIR(s, req, path)))
    .on('READDIR', (id, handle) => dispatch('READDIR', id, (req) => READDIR(s, req, handle)))
    .on('MKDIR', (id, path) => dispatch('MKDIR', id, (req) => MKDIR(s, req, path)))
    .on('RMDIR', (id, path) => dispatch('RMDIR', id, (req) => RMDIR(s, req, path)))
    .on('REALPATH', (id, path) => dispatch('REALPATH', id, (req) => REALPATH(s, req, path)))
    .on('STAT', (id, path) => dispatch('STAT', id, (req) => STAT(s, req, path)))
    .on('LSTAT', (id, path) => dispatch('LSTAT', id, (req) => LSTAT(s, req, path)))
    .on('SETSTAT', (id, path, attrs) => dispatch('SETSTAT', id, (req) => SETSTAT(s, req, path, attrs)))
    .on('REMOVE', (id, path) => dispatch('REMOVE', id, (req) => REMOVE(s, req, path)))
    .on('RENAME', (id, from, to) => dispatch('RENAME', id, (req) => RENAME(s, req, from, to)))
    .on('READLINK', (id, path) => dispatch('READLINK', id, (req) => READLINK(s, req, path)))
    .on('SYMLINK', (id, target, link) => dispatch('SYMLINK', id, (req) => SYMLINK(s, req, target, link)))
    .on('EXTENDED', (id, name, data) => dispatch('EXTENDED', id, (req) => EXTENDED(s, req, name, data)));

  // Malformed packets, unknown packet types and oversized lengths: ssh2 emits this and closes the channel.
  sftp.on('error', (err: Error) => ctx.log.warn({ event: 'sftp-protocol-error', error: err.message }, 'SFTP protocol error: channel closed'));
  // The client sent EOF: answer what is in flight, then close (OpenSSH's `sftp -b` waits for our close).
  sftp.on('end', () => {
    ending = true;
    if (s.inflight === 0) sftp.end();
  });

  let released: Promise<void> | undefined;
  const release = () =>
    (released ??= (async () => {
      s.closed = true;
      pause.stop();
      await Promise.all(s.handles.takeAll().map((handle) => releaseHandle(s, handle)));
    })());
  const closed = new Promise<void>((resolve) => sftp.once('close', () => void release().then(resolve)));

  return {
    openTransfers: () => s.handles.transfers(),
    transfers: () =>
      s.handles.files().map((h) =>
        h.kind === 'read'
          ? { direction: 'download' as const, path: h.path, startedAt: h.startedAt, bytes: h.bytes }
          : { direction: 'upload' as const, path: h.path, startedAt: h.startedAt, bytes: h.writer.bytes() },
      ),
    closed,
    async close() {
      await release();
      sftp.end();
    },
  };
}

/** Answer a failed request with its status and log it (denials were logged where they were decided). */
function fail(s: Session, req: Request, err: unknown): void {
  const { code, message, level } = toStatus(err);
  s.ctx.log[level]({ event: 'sftp-failure', op: req.op, path: req.path, status: code, error: message, err: level === 'error' ? err : undefined }, 'SFTP request failed');
  s.sftp.status(req.id, code, message);
}

/**
 * While the session is paused (see ssh2Hooks), checks every FLOW.pollMs whether it may go on: progress on the disk
 * resumes it at once (flow.ts), but replies draining into the client's window raise no event.
 */
function pauseWatch(s: Session) {
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    timer = undefined;
    if (s.closed) return;
    if (overBounds(s)) timer = setTimeout(tick, FLOW.pollMs);
    else s.hooks.resume();
  };
  return {
    /** Always true, so that it reads `overBounds(s) && pause.start()`. */
    start(): true {
      timer ??= setTimeout(tick, FLOW.pollMs);
      return true;
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
