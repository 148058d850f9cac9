/** Durations and sizes as k6 writes them ('1m30s', '500ms'; sizes '64KiB', '1GB'), parsed and formatted. */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, us: 0.001, µs: 0.001 };

/** '1m30s', '500ms', '2h', or a number of milliseconds (k6 reads a bare number as ms too). */
export function parseDuration(value: string | number, what = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`${what}: ${value} is not a duration`);
    return value;
  }
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000; // k6's CLI: a bare number is seconds
  let total = 0;
  let rest = text;
  while (rest) {
    const m = /^(\d+(?:\.\d+)?)(ms|us|µs|s|m|h|d)/.exec(rest);
    if (!m) throw new Error(`${what}: "${value}" is not a duration (e.g. 30s, 1m30s, 500ms)`);
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** '64KiB', '1.5MB', '1GiB' or a number of bytes. */
export function parseSize(value: string | number, what = 'size'): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new Error(`${what}: ${value} is not a byte count`);
    return value;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? SIZE_UNITS[(m[2] || 'b').toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`${what}: "${value}" is not a size (e.g. 4096, 64KiB, 1MB, 1GiB)`);
  return Math.round(Number(m[1]) * unit);
}

/** A duration as k6 prints it: 512µs, 144.56ms, 1.14s, 1m2s, 1h0m0s. */
export function formatDuration(ms: number): string {
  if (ms < 1) return `${round(ms * 1000)}µs`;
  if (ms < 1000) return `${round(ms)}ms`;
  if (ms < 60_000) return `${round(ms / 1000)}s`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return h ? `${h}h${m}m${s}s` : `${m}m${s}s`;
}

/** Bytes as k6 prints them (decimal units): 81 kB, 1.3 MB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let i = 0;
  while (value >= 1000 && i < units.length - 1) {
    value /= 1000;
    i++;
  }
  return `${i === 0 ? value : round(value, 1)} ${units[i]}`;
}

/** Elapsed time of the progress line: 01m05.2s. */
export function formatClock(ms: number): string {
  const m = Math.floor(ms / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${String(m).padStart(2, '0')}m${s.toFixed(1).padStart(4, '0')}s`;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
