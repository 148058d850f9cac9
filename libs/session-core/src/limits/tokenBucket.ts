/**
 * A local token bucket that may go into debt: `take(n)` always takes, then says how long to wait until the debt is paid
 * back at `rate` bytes/s. A chunk bigger than the bucket still passes (after its wait), so callers need not split
 * their chunks. Used for the per-session caps and for a user's local share while the cluster state is away.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    private readonly now: () => number = Date.now,
    private readonly capacity = (rate * BURST_MS) / 1000,
  ) {
    this.tokens = this.capacity;
    this.last = now();
  }

  /** Ms to wait after taking `n` bytes (0 when the bucket held them). */
  take(n: number): number {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }
}

/**
 * A bucket holds 200 ms of its cap: a transfer that paused may burst that much, so any 5 s window stays within 4 % of
 * the cap, and at low caps a 64 KiB chunk still fits in a few refills.
 */
export const BURST_MS = 200;
