import { METRICS, type MetricName } from './vocabulary';

/**
 * Samples and their aggregates. Workers fill a `Batch` per scenario and post it every few hundred milliseconds; the
 * main thread adds batches into one `Stats` and derives k6's values from it. Trends keep every value (as k6 does),
 * so percentiles are exact; a bounded run keeps a bounded number of them.
 */

export interface Batch {
  scenario: string;
  protocol: string;
  trends: Partial<Record<MetricName, number[]>>;
  counters: Partial<Record<MetricName, number>>;
  /** [non-zero samples, all samples] */
  rates: Partial<Record<MetricName, [number, number]>>;
  /** check name → [passes, fails] */
  checks: Record<string, [number, number]>;
  /** short error reason → count */
  errors: Record<string, number>;
}

export function newBatch(scenario: string, protocol: string): Batch {
  return { scenario, protocol, trends: {}, counters: {}, rates: {}, checks: {}, errors: {} };
}

/** Empties a batch in place (VUs keep a reference to it). */
export function resetBatch(b: Batch): void {
  Object.assign(b, { trends: {}, counters: {}, rates: {}, checks: {}, errors: {} });
}

export function batchIsEmpty(b: Batch): boolean {
  return Object.keys(b.trends).length + Object.keys(b.counters).length + Object.keys(b.rates).length + Object.keys(b.errors).length === 0;
}

export const record = {
  trend(b: Batch, name: MetricName, ms: number) {
    (b.trends[name] ??= []).push(ms);
  },
  add(b: Batch, name: MetricName, n = 1) {
    b.counters[name] = (b.counters[name] ?? 0) + n;
  },
  rate(b: Batch, name: MetricName, nonzero: boolean) {
    const r = (b.rates[name] ??= [0, 0]);
    if (nonzero) r[0]++;
    r[1]++;
  },
  check(b: Batch, name: string, ok: boolean) {
    const c = (b.checks[name] ??= [0, 0]);
    c[ok ? 0 : 1]++;
    record.rate(b, 'checks', ok);
  },
  error(b: Batch, reason: string) {
    b.errors[reason] = (b.errors[reason] ?? 0) + 1;
  },
};

export interface Stats {
  trends: Map<MetricName, number[]>;
  counters: Map<MetricName, number>;
  rates: Map<MetricName, { nonzero: number; total: number }>;
  gauges: Map<MetricName, { value: number; min: number; max: number }>;
  checks: Map<string, { passes: number; fails: number }>;
  errors: Map<string, number>;
}

export function newStats(): Stats {
  return { trends: new Map(), counters: new Map(), rates: new Map(), gauges: new Map(), checks: new Map(), errors: new Map() };
}

export function addBatch(stats: Stats, b: Batch): void {
  for (const [name, values] of Object.entries(b.trends) as [MetricName, number[]][]) {
    const sink = stats.trends.get(name);
    if (sink) for (const v of values) sink.push(v);
    else stats.trends.set(name, [...values]);
  }
  for (const [name, n] of Object.entries(b.counters) as [MetricName, number][]) stats.counters.set(name, (stats.counters.get(name) ?? 0) + n);
  for (const [name, [nonzero, total]] of Object.entries(b.rates) as [MetricName, [number, number]][]) {
    const r = stats.rates.get(name) ?? { nonzero: 0, total: 0 };
    stats.rates.set(name, { nonzero: r.nonzero + nonzero, total: r.total + total });
  }
  for (const [name, [passes, fails]] of Object.entries(b.checks)) {
    const c = stats.checks.get(name) ?? { passes: 0, fails: 0 };
    stats.checks.set(name, { passes: c.passes + passes, fails: c.fails + fails });
  }
  for (const [reason, n] of Object.entries(b.errors)) stats.errors.set(reason, (stats.errors.get(reason) ?? 0) + n);
}

export function setGauge(stats: Stats, name: MetricName, value: number): void {
  const g = stats.gauges.get(name);
  stats.gauges.set(name, g ? { value, min: Math.min(g.min, value), max: Math.max(g.max, value) } : { value, min: value, max: value });
}

/** k6's percentile: linear interpolation between the closest ranks of the sorted values. */
export function percentile(sorted: ArrayLike<number>, pct: number): number {
  if (sorted.length === 0) return 0;
  if (sorted.length === 1) return sorted[0];
  const i = (pct / 100) * (sorted.length - 1);
  const lo = sorted[Math.floor(i)];
  const hi = sorted[Math.ceil(i)];
  return lo + (hi - lo) * (i - Math.floor(i));
}

export type MetricValues = Record<string, number>;

/** The values k6 reports for a metric (its summary "values"), `seconds` being the test's duration for rates per second. */
export function metricValues(stats: Stats, name: MetricName, seconds: number, extraPercentiles: number[] = []): MetricValues | undefined {
  switch (METRICS[name].type) {
    case 'trend': {
      const values = stats.trends.get(name);
      if (!values?.length) return undefined;
      const sorted = Float64Array.from(values).sort();
      const out: MetricValues = {
        avg: values.reduce((a, b) => a + b, 0) / values.length,
        min: sorted[0],
        med: percentile(sorted, 50),
        max: sorted[sorted.length - 1],
        'p(90)': percentile(sorted, 90),
        'p(95)': percentile(sorted, 95),
      };
      for (const p of extraPercentiles) out[`p(${p})`] = percentile(sorted, p);
      return out;
    }
    case 'counter': {
      const count = stats.counters.get(name);
      if (count === undefined) return undefined;
      return { count, rate: seconds > 0 ? count / seconds : 0 };
    }
    case 'rate': {
      const r = stats.rates.get(name);
      if (!r) return undefined;
      return { rate: r.total ? r.nonzero / r.total : 0, passes: r.nonzero, fails: r.total - r.nonzero };
    }
    case 'gauge': {
      const g = stats.gauges.get(name);
      return g ? { ...g } : undefined;
    }
  }
}

/** One aggregate for a threshold: method avg/min/max/med/count/rate/value, or 'p' with a percentile. */
export function aggregate(stats: Stats, name: MetricName, method: string, seconds: number, pct?: number): number {
  if (method === 'p') {
    const values = stats.trends.get(name);
    return values?.length ? percentile(Float64Array.from(values).sort(), pct ?? 0) : 0;
  }
  return metricValues(stats, name, seconds)?.[method] ?? 0;
}
