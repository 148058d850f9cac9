import { createHash } from 'node:crypto';
import type { RunResult } from './run';
import { metricValues, type MetricValues, type Stats } from './stats';
import type { ThresholdResult } from './thresholds';
import { formatBytes, formatDuration, round } from './units';
import { METRIC_NAMES, METRICS, type MetricName } from './vocabulary';

/** The end-of-test summary as k6 prints it (thresholds, checks, metrics by group), and k6's --summary-export JSON. */

const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)'];
const WIDTH = 35;

function formatValue(name: MetricName, v: number): string {
  const contains = METRICS[name].contains;
  if (contains === 'time') return formatDuration(v);
  if (contains === 'data') return formatBytes(v);
  return String(round(v, 6));
}

function percent(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}

function metricLine(name: MetricName, v: MetricValues): string {
  const label = `${name}${'.'.repeat(Math.max(3, WIDTH - name.length))}: `;
  switch (METRICS[name].type) {
    case 'trend':
      return label + TREND_STATS.map((s) => `${s}=${formatValue(name, v[s])}`.padEnd(s.length + 12)).join(' ').trimEnd();
    case 'counter': {
      const perSecond = METRICS[name].contains === 'data' ? `${formatBytes(v.rate)}/s` : `${round(v.rate, 6)}/s`;
      return label + `${formatValue(name, v.count)}`.padEnd(8) + perSecond;
    }
    case 'rate':
      return label + percent(v.rate).padEnd(8) + `${v.passes} out of ${v.passes + v.fails}`;
    case 'gauge':
      return label + String(v.value).padEnd(8) + `min=${v.min}`.padEnd(12) + `max=${v.max}`;
  }
}

export interface SummaryInput {
  result: RunResult;
  thresholds: ThresholdResult[];
  cores: number;
}

export function textSummary({ result, thresholds, cores }: SummaryInput): string {
  const { stats } = result;
  const seconds = result.durationMs / 1000;
  const out: string[] = [''];
  if (thresholds.length) {
    out.push('  █ THRESHOLDS', '');
    for (const metric of [...new Set(thresholds.map((t) => t.threshold.metric))]) {
      out.push(`    ${metric}`);
      for (const t of thresholds.filter((r) => r.threshold.metric === metric)) {
        const shown = METRICS[metric].type === 'rate' ? percent(t.actual) : formatValue(metric, t.actual);
        out.push(`    ${t.ok ? '✓' : '✗'} '${t.threshold.source}' ${t.threshold.method}=${shown}`);
      }
      out.push('');
    }
    out.push('');
  }
  out.push('  █ TOTAL RESULTS', '');
  const checks = metricValues(stats, 'checks', seconds);
  if (checks) {
    out.push(`    ${metricLine('checks', checks)}`);
    for (const [name, c] of [...stats.checks].sort()) {
      out.push(`    ${c.fails ? '✗' : '✓'} ${name}`);
      if (c.fails) out.push(`      ↳  ${Math.floor((c.passes / (c.passes + c.fails)) * 100)}% — ✓ ${c.passes} / ✗ ${c.fails}`);
    }
    out.push('');
  }
  for (const group of ['EXECUTION', 'FTP', 'NETWORK'] as const) {
    const lines = METRIC_NAMES.filter((n) => METRICS[n].group === group)
      .sort()
      .flatMap((n) => {
        const v = metricValues(stats, n, seconds);
        return v ? [`    ${metricLine(n, v)}`] : [];
      });
    if (lines.length) out.push(`    ${group}`, ...lines, '');
  }
  if (stats.errors.size) {
    out.push('    ERRORS');
    const top = [...stats.errors].sort((a, b) => b[1] - a[1]);
    for (const [reason, n] of top.slice(0, 10)) out.push(`    ${String(n).padStart(6)} × ${reason}`);
    if (top.length > 10) out.push(`    … and ${top.length - 10} other reasons`);
    out.push('');
  }
  out.push('    GENERATOR', `    ${generatorLine(result, cores)}`, '');
  if (result.stoppedBy) out.push(`    stopped early: ${result.stoppedBy}`, '');
  return out.join('\n');
}

/** The generator's own CPU, so that a reader knows whether it, not the server, was the limit. */
export function generatorLine(result: RunResult, cores: number): string {
  const cpuSeconds = (result.cpu.user + result.cpu.system) / 1e6;
  const seconds = result.durationMs / 1000;
  const share = seconds > 0 ? cpuSeconds / seconds : 0;
  const elu = result.elu.filter((e) => Number.isFinite(e)).map((e) => `${(e * 100).toFixed(0)}%`);
  const busiest = Math.max(0, ...result.elu.filter((e) => Number.isFinite(e)));
  return (
    `cpu ${cpuSeconds.toFixed(2)} s in ${seconds.toFixed(1)} s = ${(share * 100).toFixed(1)}% of one core (${((share / cores) * 100).toFixed(1)}% of ${cores}); ` +
    `${result.elu.length} VU thread${result.elu.length === 1 ? '' : 's'}, event loops busy ${elu.join(', ') || 'n/a'}` +
    (busiest > 0.8 ? ' — the generator may be the bottleneck: give it more threads (--workers) or cores' : '')
  );
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/**
 * k6's --summary-export file (its "legacy" JSON summary): root_group with the checks, and per metric its values;
 * a rate's value is under `value`; `thresholds` maps each expression to true when it FAILED (k6's own inversion).
 */
export function summaryExport(stats: Stats, thresholds: ThresholdResult[], durationMs: number): object {
  const seconds = durationMs / 1000;
  const metrics: Record<string, object> = {};
  for (const name of METRIC_NAMES) {
    const v = metricValues(stats, name, seconds);
    const own = thresholds.filter((t) => t.threshold.metric === name);
    if (!v && !own.length) continue;
    const values: Record<string, unknown> = { ...v };
    if (METRICS[name].type === 'rate') {
      values.value = values.rate;
      delete values.rate;
    }
    if (own.length) values.thresholds = Object.fromEntries(own.map((t) => [t.threshold.source, !t.ok]));
    metrics[name] = values;
  }
  const checks = Object.fromEntries(
    [...stats.checks].map(([name, c]) => [name, { name, path: `::${name}`, id: md5(`::${name}`), passes: c.passes, fails: c.fails }]),
  );
  return { root_group: { name: '', path: '', id: md5(''), groups: {}, checks }, metrics };
}
