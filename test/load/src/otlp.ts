import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { ValueType, type Counter, type Histogram } from '@opentelemetry/api';
import type { Batch } from './stats';
import { parseDuration } from './units';
import { DEFAULT_OTLP_PREFIX, METRIC_NAMES, METRICS, otlpUnit, type MetricName } from './vocabulary';

/**
 * Pushes the metrics while the test runs, over OTLP/HTTP (JSON), mapped as k6's OpenTelemetry output maps them:
 * trend → histogram, counter → counter, gauge → observable gauge, rate → one counter with attribute
 * condition="zero"|"nonzero". Every point carries the scenario and the protocol.
 */

export interface OtlpConfig {
  url: string;
  prefix: string;
  intervalMs: number;
  serviceName: string;
  headers: Record<string, string>;
}

/**
 * `--out otlp=URL` (a full URL, e.g. http://127.0.0.1:4318/v1/metrics), or `--out opentelemetry` with k6's variables:
 * K6_OTEL_HTTP_EXPORTER_ENDPOINT (host:port), K6_OTEL_HTTP_EXPORTER_URL_PATH, K6_OTEL_HTTP_EXPORTER_INSECURE,
 * K6_OTEL_METRIC_PREFIX, K6_OTEL_EXPORT_INTERVAL, K6_OTEL_SERVICE_NAME, K6_OTEL_HEADERS (k1=v1,k2=v2).
 * K6_OTEL_EXPORTER_TYPE=http only (no gRPC here).
 */
export function otlpConfig(out: string | undefined, env: NodeJS.ProcessEnv): OtlpConfig | undefined {
  let url: string | undefined;
  if (out?.startsWith('otlp=')) url = out.slice('otlp='.length);
  else if (out === 'otlp' || out === 'opentelemetry' || out === 'experimental-opentelemetry' || (!out && env.K6_OTEL_HTTP_EXPORTER_ENDPOINT)) {
    if (env.K6_OTEL_EXPORTER_TYPE && env.K6_OTEL_EXPORTER_TYPE !== 'http') throw new Error(`K6_OTEL_EXPORTER_TYPE=${env.K6_OTEL_EXPORTER_TYPE}: only http is supported`);
    const endpoint = env.K6_OTEL_HTTP_EXPORTER_ENDPOINT ?? 'localhost:4318';
    const scheme = env.K6_OTEL_HTTP_EXPORTER_INSECURE === 'true' ? 'http' : 'https';
    url = `${scheme}://${endpoint}${env.K6_OTEL_HTTP_EXPORTER_URL_PATH ?? '/v1/metrics'}`;
  } else if (out) throw new Error(`--out ${out}: only otlp=URL or opentelemetry (with K6_OTEL_* variables) are supported`);
  if (!url) return undefined;
  if (!/^https?:\/\//.test(url)) throw new Error(`--out otlp=${url}: not an http(s) URL`);
  const headers = Object.fromEntries(
    (env.K6_OTEL_HEADERS ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')).trim(), kv.slice(kv.indexOf('=') + 1).trim()]),
  );
  return {
    url,
    prefix: env.K6_OTEL_METRIC_PREFIX ?? DEFAULT_OTLP_PREFIX,
    intervalMs: parseDuration(env.K6_OTEL_EXPORT_INTERVAL ?? '10s', 'K6_OTEL_EXPORT_INTERVAL'),
    serviceName: env.K6_OTEL_SERVICE_NAME ?? 'ftp-load',
    headers,
  };
}

/** Histogram buckets in ms, from a fast login to a long bulk transfer. */
const BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000];

export interface OtlpOutput {
  onSamples(b: Batch): void;
  /** Shuts down after a last export; never takes longer than `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

export function startOtlp(c: OtlpConfig, gauges: () => { vus: number; vus_max: number }, testAttributes: Record<string, string>): OtlpOutput {
  const exporter = new OTLPMetricExporter({ url: c.url, headers: c.headers, timeoutMillis: Math.min(10_000, c.intervalMs) });
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: c.intervalMs, exportTimeoutMillis: Math.min(10_000, c.intervalMs) });
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': c.serviceName, ...testAttributes }), readers: [reader] });
  const meter = provider.getMeter('ftp-load');
  const histograms = new Map<MetricName, Histogram>();
  const counters = new Map<MetricName, Counter>();
  for (const name of METRIC_NAMES) {
    const { type, description } = METRICS[name];
    const unit = otlpUnit(name);
    const full = c.prefix + name;
    if (type === 'trend') histograms.set(name, meter.createHistogram(full, { description, unit, advice: { explicitBucketBoundaries: BUCKETS_MS } }));
    else if (type === 'counter') counters.set(name, meter.createCounter(full, { description, unit }));
    else if (type === 'rate') counters.set(name, meter.createCounter(full, { description, valueType: ValueType.INT }));
    else meter.createObservableGauge(full, { description }).addCallback((r) => r.observe(gauges()[name as 'vus' | 'vus_max'] ?? 0));
  }
  return {
    onSamples(b) {
      const attrs = { scenario: b.scenario, protocol: b.protocol };
      for (const [name, values] of Object.entries(b.trends) as [MetricName, number[]][]) for (const v of values) histograms.get(name)?.record(v, attrs);
      for (const [name, n] of Object.entries(b.counters) as [MetricName, number][]) counters.get(name)?.add(n, attrs);
      for (const [name, [nonzero, total]] of Object.entries(b.rates) as [MetricName, [number, number]][]) {
        if (nonzero) counters.get(name)?.add(nonzero, { ...attrs, condition: 'nonzero' });
        if (total - nonzero) counters.get(name)?.add(total - nonzero, { ...attrs, condition: 'zero' });
      }
    },
    async stop(timeoutMs = 5000) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([provider.shutdown().catch(() => {}), late]); // shutdown exports what is left
      clearTimeout(timer);
    },
  };
}
