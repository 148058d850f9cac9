/** Settings every bench script reads from the environment. */

export const MiB = 1024 * 1024;

/** A whole number from `name` (at least `min`), `fallback` when unset or empty; anything else stops the bench. */
export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min) throw new Error(`${name} must be a whole number >= ${min}, got "${raw}"`);
  return Number(raw);
}

/** A positive number (fractions allowed) from `name`, `fallback` when unset or empty. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.trim());
  if (!/^\d*\.?\d+$/.test(raw.trim()) || !(value > 0)) throw new Error(`${name} must be a number > 0, got "${raw}"`);
  return value;
}

/** A comma-separated list from `name` (`fallback` when unset or empty), each item one of `allowed`. */
export function envList(name: string, fallback: string, allowed: string[]): string[] {
  const items = (process.env[name] || fallback).split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item)) throw new Error(`${name}: unknown "${item}" (${allowed.join(', ')})`);
  return items;
}
