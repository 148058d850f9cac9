import { StorageError } from '@ftp/storage';
import type { EdgeMetrics, Logger } from '@ftp/telemetry';

/** The limits whose hits are counted (`ftp_limit_hits_total{limit}`), named as in the user model. */
export type LimitName = 'quota_bytes' | 'quota_files' | 'daily_upload_bytes' | 'daily_download_bytes' | 'sessions_per_minute' | 'sessions_per_minute_per_ip';

/**
 * A limit stopped a transfer or refused an operation. A StorageError 'quota', so both front doors already reply to it
 * (FTP 552, SFTP FAILURE) with its message, which names the limit and never a path.
 */
export class LimitError extends StorageError {
  constructor(
    readonly limit: LimitName,
    message: string,
    /** Bytes of the refused chunk that were still within the limit (a daily volume's last bytes), 0 for none. */
    readonly allowed = 0,
  ) {
    super('quota', message);
  }
}

/** A limit was hit: counted, logged for the audit trail (the session's logger carries user and session), and thrown. */
export function limitHit(ctx: { metrics: Pick<EdgeMetrics, 'limitHits'>; log: Logger }, limit: LimitName, message: string, allowed = 0): LimitError {
  ctx.metrics.limitHits.inc({ limit });
  ctx.log.warn({ event: 'limit', limit }, message);
  return new LimitError(limit, message, allowed);
}
