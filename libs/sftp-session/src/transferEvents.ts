import { context, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { abortedEvent, completedEvent, recordTransfer, uploadContext } from '@ftp/session-core';
import type { Storage } from '@ftp/storage';
import { startChildSpan } from '@ftp/telemetry';
import type { SshDeps, SshSession } from './frontDoor';
import type { SftpContext, SftpTransfer } from './types';

/**
 * What a finished SFTP file transfer leaves behind, through the same core as FTP's: one `sftp transfer` span (open to
 * close, never one per READ/WRITE), the upload event (built inside that span, so the worker continues its trace), the
 * transfer metrics, audit line and xferlog line.
 */
export function transferHooks(session: SshSession, deps: SshDeps, storage: Storage): Pick<SftpContext, 'onUploadCommitted' | 'onTransferEnded'> {
  /** Spans of uploads that were published: the event was sent inside them, they end with the transfer's record. */
  const published = new Map<string, Span>();
  const key = (t: SftpTransfer) => `${t.path}\0${t.startedAt.getTime()}`;
  return {
    async onUploadCommitted(transfer) {
      const span = transferSpan(session, transfer);
      published.set(key(transfer), span);
      if (!deps.uploads) return;
      const events = uploadContext(deps, transfer.path, transfer.startedAt.getTime(), transfer.startOffset, { sequential: false });
      const event = context.with(trace.setSpan(session.currentContext, span), () => completedEvent(session, deps, events, transfer.size));
      await deps.uploads.publishCompleted(event);
    },
    onTransferEnded(transfer) {
      const span = published.get(key(transfer)) ?? transferSpan(session, transfer);
      published.delete(key(transfer));
      span.setAttributes({ 'sftp.transfer.bytes': transfer.bytes, 'sftp.transfer.result': transfer.result });
      if (transfer.result !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: `transfer ${transfer.result}` });
      span.end();
      if (transfer.direction === 'upload') session.bytesIn += transfer.bytes;
      else session.bytesOut += transfer.bytes;
      recordTransfer(session, deps, {
        direction: transfer.direction,
        path: transfer.path,
        bytes: transfer.bytes,
        ms: transfer.durationMs,
        result: transfer.result,
        channel: 'ssh',
        transferType: 'I',
      });
      if (transfer.direction === 'upload' && transfer.result !== 'ok' && deps.uploads) {
        const reason = session.closed ? 'disconnected' : transfer.result === 'aborted' ? 'aborted' : 'failed';
        const events = uploadContext(deps, transfer.path, transfer.startedAt.getTime(), transfer.startOffset, { sequential: false });
        void abortedEvent(session, deps, storage, events, reason).then((event) => deps.uploads!.publishAborted(event));
      }
    },
  };
}

function transferSpan(session: SshSession, transfer: SftpTransfer): Span {
  return startChildSpan(
    'sftp transfer',
    {
      startTime: transfer.startedAt,
      attributes: { 'sftp.session.id': session.id, 'sftp.transfer.direction': transfer.direction, 'sftp.path': transfer.path, 'sftp.transfer.offset': transfer.startOffset },
    },
    session.currentContext,
  );
}
