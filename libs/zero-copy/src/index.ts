export { loadZeroCopy, MoveError, type LoadOptions, type MoveEnd, type MoveOptions, type MoveResult, type ZeroCopy } from './zeroCopy';
export { canLend, lendSocket, writeFlushed, type LentSocket } from './socket';
