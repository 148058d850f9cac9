/** Settings every bench script reads from the environment. */

export const MiB = 1024 * 1024;

/** A whole number from `name` (at least `min`), `fallback` when unset or empty; anything else stops the bench. */
export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min) throw new Error(`${name} must be a whole number >= ${min}, got "${raw}"`);
  return Number(raw);
}
