import { utcDay, type ByteBudgets, type TransferDirection, type UsageLedger } from '@ftp/cluster-state';
import type { EffectiveLimits } from '@ftp/identity';
import type { EdgeMetrics, Logger } from '@ftp/telemetry';
import { limitHit } from './limitError';
import { setTimeout as sleep } from 'node:timers/promises';
import { BURST_MS, TokenBucket } from './tokenBucket';

/** What the limits need from the edge: the shared state, this replica's name, metrics and a log. */
export interface LimitsContext {
  budgets: ByteBudgets;
  usage: UsageLedger;
  replicaId: string;
  metrics: Pick<EdgeMetrics, 'limitHits' | 'limitThrottledSeconds' | 'limitFallback' | 'perUser'>;
  log: Logger;
  now?: () => number;
  /**
   * This replica's local shares of user caps while the cluster state is away, by user and direction: one bucket for all
   * of a user's transfers here, or N transfers would get N shares. One map per replica (see localShares()).
   */
  localShares: Map<string, TokenBucket>;
}

/** The map of local shares a replica keeps for LimitsContext.localShares. */
export const localShares = () => new Map<string, TokenBucket>();

/** One of the gates a transfer's bytes pass: each `acquire(n)` resolves when `n` more bytes may move. */
export interface Gate {
  acquire(n: number): Promise<void>;
  /** The transfer ended: give back what was taken and not used. Never throws. */
  finish(): Promise<void>;
}

const MiB = 1024 * 1024;
/** How far ahead a transfer takes from the user's shared budget: 100 ms of the cap (~10 Redis calls/s), 16 MiB uncapped. */
const leaseSize = (bytesPerSecond: number) => (bytesPerSecond > 0 ? Math.max(16 * 1024, Math.floor(bytesPerSecond / 10)) : 16 * MiB);
/** How often a transfer on its local share asks the cluster state again. */
const FALLBACK_RETRY_MS = 1000;

/**
 * The user's cap and daily volume, shared by all of its transfers on every replica: bytes are taken from the cluster
 * state a lease at a time, never per data chunk. While the cluster state does not answer, the transfer runs on its
 * local share (the cap divided by the replicas that were moving the user's bytes), and the daily volume is not counted.
 */
class SharedBudget implements Gate {
  private held = 0;
  private day: string;
  private replicas = 1;
  private fallback?: TokenBucket;
  private retryAt = 0;
  /** After a partial grant, when the bucket will hold a whole lease: asking sooner would only get crumbs. */
  private refilledAt = 0;

  constructor(
    private readonly ctx: LimitsContext,
    private readonly user: string,
    private readonly direction: TransferDirection,
    private readonly bytesPerSecond: number,
    private readonly dailyBytes: number,
    private readonly now: () => number,
  ) {
    this.day = utcDay(now());
  }

  async acquire(n: number): Promise<void> {
    while (this.held < n) {
      if (this.fallback && this.now() < this.retryAt) {
        const wait = this.fallback.take(n - this.held);
        this.held = n;
        if (wait > 0) await this.wait(wait);
        break;
      }
      const early = this.refilledAt - this.now();
      if (early > 0) await this.wait(early);
      const want = Math.max(n - this.held, leaseSize(this.bytesPerSecond));
      let grant;
      try {
        this.day = utcDay(this.now());
        grant = await this.ctx.budgets.take({
          user: this.user,
          direction: this.direction,
          replicaId: this.ctx.replicaId,
          want,
          bytesPerSecond: this.bytesPerSecond,
          burstMs: BURST_MS,
          dailyBytes: this.dailyBytes,
        });
      } catch (err) {
        this.enterFallback(err);
        continue;
      }
      this.leaveFallback();
      this.replicas = Math.max(1, grant.replicas);
      this.held += grant.granted;
      this.refilledAt = grant.limitedBy === 'bandwidth' ? this.now() + Math.max(2, Math.min(1000, grant.retryAfterMs ?? 10)) : 0;
      if (this.held >= n) break;
      if (grant.limitedBy === 'daily') {
        const limit = this.direction === 'upload' ? 'daily_upload_bytes' : 'daily_download_bytes';
        // The day's last bytes still go: the caller may pass that much of its chunk.
        const allowed = this.held;
        this.held = 0;
        throw limitHit(this.ctx, limit, `Daily ${this.direction} limit of ${this.dailyBytes} bytes reached`, allowed);
      }
    }
    this.held -= n;
  }

  private async wait(ms: number) {
    this.ctx.metrics.limitThrottledSeconds.inc({ direction: this.direction, limit: 'bandwidth' }, ms / 1000);
    await sleep(ms);
  }

  private enterFallback(err: unknown) {
    this.retryAt = this.now() + FALLBACK_RETRY_MS;
    if (this.fallback) return;
    // No cap (a daily volume only): the local share lets bytes through unthrottled and uncounted.
    const share = this.bytesPerSecond > 0 ? this.bytesPerSecond / this.replicas : Number.MAX_SAFE_INTEGER;
    const key = `${this.direction}:${this.user}`;
    let bucket = this.ctx.localShares.get(key);
    if (bucket?.rate !== share) this.ctx.localShares.set(key, (bucket = new TokenBucket(share, this.now)));
    this.fallback = bucket;
    this.ctx.metrics.limitFallback.inc();
    this.ctx.log.warn({ err, direction: this.direction, share: Math.round(share), replicas: this.replicas }, 'cluster state unavailable: transfer limited to its local share of the user cap');
  }

  private leaveFallback() {
    if (!this.fallback) return;
    this.fallback = undefined;
    this.ctx.metrics.limitFallback.dec();
    this.ctx.log.info({ direction: this.direction }, 'cluster state back: transfer takes from the shared user cap again');
  }

  async finish() {
    if (this.fallback) this.leaveFallback();
    const unused = this.held;
    this.held = 0;
    if (unused > 0) await this.ctx.budgets.refund(this.user, this.direction, unused, this.day).catch(() => undefined);
  }
}

/** The per-session cap: local to the session, so no shared state. */
class SessionCap implements Gate {
  constructor(
    private readonly bucket: TokenBucket,
    private readonly ctx: LimitsContext,
    private readonly direction: TransferDirection,
  ) {}

  async acquire(n: number) {
    const wait = this.bucket.take(n);
    if (wait <= 0) return;
    this.ctx.metrics.limitThrottledSeconds.inc({ direction: this.direction, limit: 'session' }, wait / 1000);
    await sleep(wait);
  }

  async finish() {}
}

/** Reserve quota before the bytes land, a MiB at a time, so uploads of one user on several replicas share one quota. */
const QUOTA_CHUNK = MiB;
/** A reservation not renewed for this long (its replica died) stops counting. */
const RESERVATION_TTL_MS = 10 * 60_000;

export class QuotaReservation implements Gate {
  private held = 0;
  private failOpen = false;

  constructor(
    private readonly ctx: LimitsContext,
    private readonly user: string,
    readonly uploadId: string,
    private readonly quotaBytes: number,
    /** The size of the file the upload replaces: room it may reuse. */
    private readonly credit: number,
  ) {}

  async acquire(n: number) {
    while (this.held < n && !this.failOpen) {
      let got: number;
      try {
        got = await this.ctx.usage.reserve(this.user, this.uploadId, Math.max(n - this.held, QUOTA_CHUNK), { bytes: this.quotaBytes, credit: this.credit }, RESERVATION_TTL_MS);
      } catch (err) {
        // A running upload is not failed for a Redis outage: it goes on unreserved, and the next quota scan settles it.
        this.failOpen = true;
        this.ctx.log.warn({ err }, 'cluster state unavailable: upload continues without quota reservation');
        break;
      }
      if (got === 0) {
        throw limitHit(this.ctx, 'quota_bytes', `Quota of ${this.quotaBytes} bytes reached`);
      }
      this.held += got;
    }
    this.held = Math.max(0, this.held - n);
  }

  async finish() {
    await this.ctx.usage.release(this.user, this.uploadId).catch(() => undefined);
  }
}

/**
 * What one transfer's bytes pass, in order: room in the quota (uploads: for the bytes the file grows by), the user's
 * shared budget and the session's cap (for every byte moved).
 */
export class TransferLimiter {
  constructor(
    private readonly gates: Gate[],
    private readonly quota?: QuotaReservation,
  ) {}

  get empty() {
    return this.gates.length === 0 && !this.quota;
  }

  async acquire(bytes: number, growth = bytes): Promise<void> {
    if (this.quota && growth > 0) await this.quota.acquire(growth);
    if (bytes > 0) for (const gate of this.gates) await gate.acquire(bytes);
  }

  finish(): Promise<void> {
    return Promise.all([...this.gates, ...(this.quota ? [this.quota] : [])].map((g) => g.finish())).then(() => undefined);
  }
}

/** The gates of one direction of a user's transfer; none when nothing limits it (the transfer then skips limiting). */
export function transferGates(
  ctx: LimitsContext,
  user: string,
  limits: EffectiveLimits,
  direction: TransferDirection,
  sessionBucket: TokenBucket | undefined,
): Gate[] {
  const now = ctx.now ?? Date.now;
  const [rate, daily] = direction === 'upload' ? [limits.bandwidthUp, limits.dailyUploadBytes] : [limits.bandwidthDown, limits.dailyDownloadBytes];
  const gates: Gate[] = [];
  if (rate > 0 || daily > 0) gates.push(new SharedBudget(ctx, user, direction, rate, daily, now));
  if (sessionBucket) gates.push(new SessionCap(sessionBucket, ctx, direction));
  return gates;
}
