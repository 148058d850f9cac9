/**
 * The limit options of `ftpctl user set` (--quota-bytes 10G, --bandwidth-up 2MiB, --sessions-per-minute 30, …) and
 * how they change a user's own limits. Pure: no I/O, so the same code serves the users file, PostgreSQL and --api.
 */
import { LIMIT_FIELDS, type LimitKey } from '../records';
import type { UserLimits } from '../types';
import { fail } from './input';

/** `--quota-bytes` … `--sessions-per-minute`: the users file's names with dashes. */
export const LIMIT_OPTIONS = Object.fromEntries(Object.keys(LIMIT_FIELDS).map((key) => [key.replaceAll('_', '-'), { type: 'string' as const }])) as Record<
  string,
  { type: 'string' }
>;

/** Limits that are counts, not bytes: no size suffix. */
const COUNTS: readonly LimitKey[] = ['quota_files', 'sessions_per_minute'];

const BINARY: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
const DECIMAL: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/**
 * A limit's value as typed: a whole number (0 = none, overriding the groups' and the server's limit), `inherit` (drop
 * the user's own value: its groups' or the server's applies again), or for bytes and bytes/s a size: `10M`, `10MiB`
 * (2^20 each: K, M, G, T and KiB … TiB are powers of 1024), `10MB` (10^6: KB … TB are powers of 1000).
 */
export function parseLimitValue(key: LimitKey, raw: string): number | null {
  const option = `--${key.replaceAll('_', '-')}`;
  const text = raw.trim();
  if (text === 'inherit') return null;
  const match = /^(\d+)(?:([kmgt])(ib|b)?)?$/i.exec(text);
  const counts = COUNTS.includes(key);
  if (!match || (counts && match[2])) {
    const sizes = counts ? '' : ', a size (10M = 10 MiB, 10MB = 10^6, 1G, 4MiB)';
    fail(2, `${option} ${raw}: expected a whole number (0 = none)${sizes}, or inherit`);
  }
  const unit = match[2] ? (match[3]?.toLowerCase() === 'b' ? DECIMAL : BINARY)[match[2].toLowerCase()] : 1;
  const value = Number(match[1]) * unit;
  if (!Number.isSafeInteger(value)) fail(2, `${option} ${raw}: too large`);
  return value;
}

/** The limits given on the command line: field → value, null = inherit. Empty when none was given. */
export function limitChanges(values: Record<string, unknown>): Map<keyof UserLimits, number | null> {
  const changes = new Map<keyof UserLimits, number | null>();
  for (const [key, field] of Object.entries(LIMIT_FIELDS) as [LimitKey, keyof UserLimits][]) {
    const raw = values[key.replaceAll('_', '-')];
    if (typeof raw === 'string') changes.set(field, parseLimitValue(key, raw));
  }
  return changes;
}

/** The user's own limits after the changes; undefined when none is left (everything inherited). */
export function applyLimitChanges(own: UserLimits | undefined, changes: Map<keyof UserLimits, number | null>): UserLimits | undefined {
  const next: UserLimits = { ...own };
  for (const [field, value] of changes) {
    if (value === null) delete next[field];
    else next[field] = value;
  }
  return Object.keys(next).length > 0 ? next : undefined;
}

/** `quota_bytes=10737418240 bandwidth_up=none`, or `none of its own`. */
export function describeOwnLimits(own: UserLimits | undefined): string {
  const parts = (Object.entries(LIMIT_FIELDS) as [LimitKey, keyof UserLimits][])
    .filter(([, field]) => own?.[field] !== undefined)
    .map(([key, field]) => `${key}=${own![field] === 0 ? 'none' : own![field]}`);
  return parts.length > 0 ? parts.join(' ') : 'none of its own (all inherited)';
}
