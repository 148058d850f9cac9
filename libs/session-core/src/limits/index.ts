export { withLimits } from './limitedStorage';
export { LimitError, limitHit, type LimitName } from './limitError';
export { bytesAvailable, localDiskSpace, quotaDiskSpace, type DiskSpace } from './space';
export { TokenBucket, BURST_MS } from './tokenBucket';
export { localShares, TransferLimiter, QuotaReservation, transferGates, type LimitsContext } from './transferLimiter';
