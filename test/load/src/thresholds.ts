import { checkThresholdMetric, type ThresholdSpec } from './scenario';
import { parseDuration } from './units';
import { METRICS, THRESHOLD_METHODS, type MetricName, type MetricType } from './vocabulary';

/** k6 thresholds: `'p(95)<500'`, `'rate<0.01'`, `'count>=10'`, with the same methods per metric type as k6. */

export interface Threshold {
  metric: MetricName;
  /** The source text, as k6 names a threshold in its summary and export. */
  source: string;
  method: string;
  /** Percentile of p(N), 0-100. */
  percentile?: number;
  op: '<' | '<=' | '>' | '>=' | '==' | '===' | '!=';
  value: number;
  abortOnFail: boolean;
  delayAbortEval: number;
}

export interface ThresholdResult {
  threshold: Threshold;
  ok: boolean;
  /** The value the method gave (the left-hand side). */
  actual: number;
}

const EXPRESSION = /^\s*(avg|min|max|med|count|rate|value|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/;

/** An expression on a metric of `type`: its method (p(95), rate, …), operator and value; throws on k6-invalid text. */
export function parseExpression(type: MetricType, source: unknown, where: string): Pick<Threshold, 'method' | 'percentile' | 'op' | 'value'> {
  const m = typeof source === 'string' ? EXPRESSION.exec(source) : null;
  if (!m) throw new Error(`threshold ${where}: "${String(source)}" is not k6 syntax (e.g. p(95)<500, rate<0.01, count>10)`);
  const method = m[2] !== undefined ? 'p(N)' : m[1];
  if (!THRESHOLD_METHODS[type].includes(method)) throw new Error(`threshold ${where}: ${m[1]} does not apply to a ${type} (use ${THRESHOLD_METHODS[type].join(', ')})`);
  const percentile = m[2] !== undefined ? Number(m[2]) : undefined;
  if (percentile !== undefined && percentile > 100) throw new Error(`threshold ${where}: ${m[1]} is above p(100)`);
  return { method: percentile !== undefined ? `p(${percentile})` : m[1], percentile, op: m[3] as Threshold['op'], value: Number(m[4]) };
}

export function parseThreshold(metric: string, spec: ThresholdSpec): Threshold {
  checkThresholdMetric(metric, 'threshold');
  const name = metric as MetricName;
  const source = typeof spec === 'string' ? spec : spec?.threshold;
  return {
    metric: name,
    source,
    ...parseExpression(METRICS[name].type, source, metric),
    abortOnFail: typeof spec === 'object' && spec.abortOnFail === true,
    delayAbortEval: typeof spec === 'object' && spec.delayAbortEval !== undefined ? parseDuration(spec.delayAbortEval, `threshold ${metric} delayAbortEval`) : 0,
  };
}

/** `--threshold 'METRIC=EXPR'` (our flag; k6 has none): adds EXPR to METRIC's thresholds. */
export function parseThresholdFlag(flag: string): Threshold {
  const at = flag.indexOf('=');
  if (at <= 0) throw new Error(`--threshold "${flag}": expected METRIC=EXPRESSION, e.g. ftp_errors=rate<0.01`);
  return parseThreshold(flag.slice(0, at).trim(), flag.slice(at + 1));
}

export function parseThresholds(all: Record<string, ThresholdSpec[]> | undefined): Threshold[] {
  return Object.entries(all ?? {}).flatMap(([metric, specs]) => {
    if (!Array.isArray(specs)) throw new Error(`options.thresholds.${metric}: a list of expressions`);
    return specs.map((spec) => parseThreshold(metric, spec));
  });
}

export function compare(actual: number, op: Threshold['op'], value: number): boolean {
  switch (op) {
    case '<':
      return actual < value;
    case '<=':
      return actual <= value;
    case '>':
      return actual > value;
    case '>=':
      return actual >= value;
    case '==':
    case '===':
      return actual === value;
    case '!=':
      return actual !== value;
  }
}

/** `valueOf(metric, method, percentile)` gives the aggregate (0 for a metric without samples, as k6). */
export function evaluate(thresholds: Threshold[], valueOf: (metric: MetricName, method: string, percentile?: number) => number): ThresholdResult[] {
  return thresholds.map((threshold) => {
    const actual = valueOf(threshold.metric, threshold.percentile !== undefined ? 'p' : threshold.method, threshold.percentile);
    return { threshold, actual, ok: compare(actual, threshold.op, threshold.value) };
  });
}
