/** The time windows of the shared limits, the same for every implementation (the Lua scripts interpolate them). */

/** The per-minute session rates (AdmissionLimits.sessionsPerMinutePerAddress, UserLimits.sessionsPerMinute) look back this far. */
export const RATE_WINDOW_MS = 60_000;

/** A replica counts as moving a user's bytes (ByteGrant.replicas) for this long after its last take. */
export const REPLICA_WINDOW_MS = 2_000;

/** A daily byte counter is kept this long: the day itself, plus refunds of transfers that ran past midnight. */
export const DAY_COUNTER_TTL_MS = 2 * 86_400_000;

/** The UTC day of an instant (epoch ms) as YYYY-MM-DD: what daily byte budgets are counted by (ByteBudgets). */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
