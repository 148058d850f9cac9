/**
 * The generator's metric vocabulary: every metric it records, with k6's type and "contains". Names follow k6 where
 * they mean the same (iterations, vus, data_sent, checks, …); the file-transfer ones are ours. The summary, the
 * summary export, thresholds, the OTLP output, the Grafana row and the k6 scripts' test all read this one table.
 */

export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';

export interface MetricInfo {
  type: MetricType;
  /** k6's "contains": time (milliseconds), data (bytes) or default. */
  contains: 'time' | 'data' | 'default';
  /** Summary group, as k6 v1 groups its metrics. */
  group: 'EXECUTION' | 'NETWORK' | 'FTP' | 'CHECKS';
  description: string;
}

export const METRICS = {
  checks: { type: 'rate', contains: 'default', group: 'CHECKS', description: 'assertions on what the server returned (sizes, listings) that held' },
  data_received: { type: 'counter', contains: 'data', group: 'NETWORK', description: 'bytes received on every TCP connection (control, data, SSH), TLS and SSH framing included' },
  data_sent: { type: 'counter', contains: 'data', group: 'NETWORK', description: 'bytes sent on every TCP connection' },
  dropped_iterations: { type: 'counter', contains: 'default', group: 'EXECUTION', description: 'arrival-rate iterations not started: no VU was free and maxVUs was reached' },
  iteration_duration: { type: 'trend', contains: 'time', group: 'EXECUTION', description: 'one whole partner iteration: its session, then its think time' },
  iterations: { type: 'counter', contains: 'default', group: 'EXECUTION', description: 'iterations completed (failed ones too; not those cut by the hard stop)' },
  vus: { type: 'gauge', contains: 'default', group: 'EXECUTION', description: 'VUs running an iteration' },
  vus_max: { type: 'gauge', contains: 'default', group: 'EXECUTION', description: 'VUs allocated' },
  ftp_session_duration: { type: 'trend', contains: 'time', group: 'FTP', description: 'from connect to the end of QUIT (SFTP: to the SSH close), steps included; sessions that completed' },
  ftp_login_duration: { type: 'trend', contains: 'time', group: 'FTP', description: 'connect, TLS or SSH handshake and login, until the first command may be sent; logins that succeeded' },
  ftp_transfer_duration: { type: 'trend', contains: 'time', group: 'FTP', description: 'one file upload or download, from the command to the final reply' },
  ftp_files_uploaded: { type: 'counter', contains: 'default', group: 'FTP', description: 'uploads the server confirmed (226 or SFTP CLOSE OK), a resumed one once' },
  ftp_files_downloaded: { type: 'counter', contains: 'default', group: 'FTP', description: 'downloads completed' },
  ftp_errors: { type: 'rate', contains: 'default', group: 'FTP', description: 'operations (login, mkdir, list, transfer, size, delete, quit) that failed, over all operations' },
} as const satisfies Record<string, MetricInfo>;

export type MetricName = keyof typeof METRICS;

/**
 * k6's own HTTP metrics, which only the admin-API k6 script records (the generator speaks no HTTP): listed so that
 * the k6 scripts' test knows every name they use.
 */
export const K6_HTTP_METRICS = {
  http_req_duration: { type: 'trend', contains: 'time' },
  http_req_failed: { type: 'rate', contains: 'default' },
  http_reqs: { type: 'counter', contains: 'default' },
} as const satisfies Record<string, Pick<MetricInfo, 'type' | 'contains'>>;

export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];

export function isMetricName(name: string): name is MetricName {
  return Object.hasOwn(METRICS, name);
}

/** Aggregation methods a threshold may use on each metric type (k6's). */
export const THRESHOLD_METHODS: Record<MetricType, readonly string[]> = {
  counter: ['count', 'rate'],
  gauge: ['value'],
  rate: ['rate'],
  trend: ['avg', 'min', 'max', 'med', 'p(N)'],
};

/** Prefix of the OTLP metric names (k6's OpenTelemetry output: K6_OTEL_METRIC_PREFIX). */
export const DEFAULT_OTLP_PREFIX = 'k6_';

/** OTLP unit of a metric: milliseconds for times, bytes for data (UCUM, as the OTLP → Prometheus translation reads them). */
export function otlpUnit(name: MetricName): string | undefined {
  const contains = METRICS[name].contains;
  return contains === 'time' ? 'ms' : contains === 'data' ? 'By' : undefined;
}

/**
 * The series names a metric gets in Prometheus after the OTLP push (Prometheus's OTLP receiver or the Collector's
 * prometheus exporter add the unit and `_total`): what the Grafana "Load test" row queries.
 */
export function prometheusSeries(name: MetricName, prefix = DEFAULT_OTLP_PREFIX): string[] {
  const info: MetricInfo = METRICS[name];
  const unit = info.contains === 'time' ? '_milliseconds' : info.contains === 'data' ? '_bytes' : '';
  const base = `${prefix}${name}${unit}`;
  if (info.type === 'trend') return [`${base}_bucket`, `${base}_sum`, `${base}_count`];
  if (info.type === 'gauge') return [base];
  return [`${base}_total`]; // counters, and rates as one counter with condition="zero"|"nonzero"
}
