export { withLimits } from './limitedStorage';
export { LimitError, limitHit, type LimitName } from './limitError';
export { bytesAvailable, localDiskSpace, quotaDiskSpace, type DiskSpace } from './space';
export { localShares, type LimitsContext } from './transferLimiter';
