import { audit } from './access';
import type { CoreDeps, CoreSession } from './types';

/** One finished (or broken) file transfer, whatever the protocol. */
export interface TransferRecord {
  direction: 'upload' | 'download';
  /** Virtual path inside the user's root. */
  path: string;
  bytes: number;
  ms: number;
  result: 'ok' | 'aborted' | 'failed';
  /** How the bytes moved (FTP: passive, active, relayed; SFTP: ssh); undefined when no data moved at all. */
  channel?: string;
  /** 'A' for an FTP ASCII transfer, else 'I' (binary). */
  transferType: 'A' | 'I';
  /** How the bytes moved, where the front door can choose (FTP: stream, sendfile or splice). */
  io?: string;
}

/**
 * Everything a transfer leaves behind, the same for every front door: metrics, the audit line and the xferlog line.
 * The session's logger carries the user; metrics carry the protocol.
 */
export function recordTransfer(session: CoreSession, deps: CoreDeps, record: TransferRecord): void {
  const { metrics, xferlog } = deps;
  const { direction, result, bytes, ms } = record;
  const protocol = session.protocol;
  metrics.transfersTotal.inc({ protocol, direction, result });
  metrics.transferBytes.inc({ protocol, direction }, bytes);
  metrics.transferSeconds.observe({ protocol, direction }, ms / 1000);
  const user = session.user!;
  if (metrics.perUser) {
    metrics.perUser.transfers.inc({ user: user.name, direction, result });
    metrics.perUser.bytes.inc({ user: user.name, direction }, bytes);
  }
  if (record.io) metrics.transferIoBytes.inc({ direction, io: record.io }, bytes);
  audit(session, direction, { path: record.path, bytes, durationMs: ms, result, mode: record.transferType, data: record.channel, io: record.io, protocol });
  // A transfer refused before any data moved is no transfer to log, as in vsftpd.
  if (xferlog && record.channel) {
    xferlog.write({
      at: new Date(),
      durationMs: ms,
      remoteHost: session.clientAddress,
      bytes,
      path: record.path,
      type: record.transferType,
      direction,
      anonymous: user.anonymous,
      user: user.name,
      completed: result === 'ok',
    });
  }
}
