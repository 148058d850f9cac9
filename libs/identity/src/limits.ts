import { LIMIT_NAMES, type EffectiveLimits, type User, type UserLimits } from './types';

/** Every limit off: what a user without `limits` (built by hand) has, and the server default unless configured. */
export const NO_LIMITS: EffectiveLimits = Object.freeze({
  quotaBytes: 0,
  quotaFiles: 0,
  dailyUploadBytes: 0,
  dailyDownloadBytes: 0,
  bandwidthUp: 0,
  bandwidthDown: 0,
  sessionBandwidthUp: 0,
  sessionBandwidthDown: 0,
  sessionsPerMinute: 0,
});

/** The user's resolved limits; all 0 when it has none (a user built by hand). */
export const limitsOf = (user: Pick<User, 'limits'>): EffectiveLimits => user.limits ?? NO_LIMITS;

/**
 * Limit by limit, the first source that sets it: the user's own, then its groups in the user's order, then the server
 * default. A 0 set anywhere is "none" and stops the search (a user's 0 lifts its group's limit).
 */
export function resolveLimits(sources: readonly (UserLimits | undefined)[], defaults: UserLimits = NO_LIMITS): EffectiveLimits {
  const limits = { ...NO_LIMITS };
  for (const name of LIMIT_NAMES) {
    const source = sources.find((s) => s?.[name] !== undefined);
    limits[name] = source?.[name] ?? defaults[name] ?? 0;
  }
  return limits;
}
