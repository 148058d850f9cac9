import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';
import { createLogger } from '@ftp/telemetry';
import { loadWorkerConfig } from '../../services/worker/src/config';
import { startWorker } from '../../services/worker/src/worker';
import { freeBlock } from '../support/processes';
import { scrape } from '../support/prometheus';
import { startTestServer } from '../support/server';
import { deleteKeysUnder } from '../support/redisKeys';
import { METRIC_NAMES, prometheusSeries } from '../load/src/vocabulary';

const ROOT = new URL('../../deploy/observability/', import.meta.url);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; refId: string }[];
  panels?: Panel[];
}

/** PromQL words that are not metric names: aggregation modifiers, set and comparison operators. */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset']);

/** The metric names a PromQL expression reads: identifiers that are no function, keyword, label or label value. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // range selectors ($__rate_interval)
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const names: string[] = [];
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0])) continue; // a function or an aggregation
    names.push(m[0]);
  }
  return names;
}

test('metricNames finds metrics, not functions, labels or variables', () => {
  assert.deepEqual(
    metricNames('histogram_quantile(0.95, sum by (le, verb) (rate(ftp_command_duration_seconds_bucket{verb!~"RETR|STOR"}[$__rate_interval])))'),
    ['ftp_command_duration_seconds_bucket'],
  );
  assert.deepEqual(metricNames('max(ftp_bans_active) or sum(rate(ftp_bans_total[5m]))'), ['ftp_bans_active', 'ftp_bans_total']);
});

test('the Grafana dashboard parses, and every metric it queries exists in the /metrics of an edge or a worker', async () => {
  const dashboard = JSON.parse(readFileSync(new URL('grafana/dashboards/ftp.json', ROOT), 'utf8')) as { uid: string; title: string; panels: Panel[] };
  assert.equal(dashboard.uid, 'ftp-cluster');
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
  const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
  for (const topic of ['sessions', 'throughput', 'error', 'latency', 'queue']) assert.match(titles, new RegExp(topic), `a panel about ${topic}`);

  // The data source the provisioning file declares is the one the panels name.
  const datasources = parseYaml(readFileSync(new URL('grafana/provisioning/datasources/datasources.yaml', ROOT), 'utf8')) as {
    datasources: { uid: string; type: string }[];
  };
  const prometheusUid = datasources.datasources.find((d) => d.type === 'prometheus')?.uid;
  for (const panel of panels) assert.equal(panel.datasource?.uid, prometheusUid, `${panel.title} uses the provisioned Prometheus`);

  const queried = new Map<string, string>();
  for (const panel of panels) {
    assert.ok(panel.targets?.length, `${panel.title} has queries`);
    for (const target of panel.targets!) {
      const names = metricNames(target.expr);
      assert.ok(names.length > 0, `${panel.title}: ${target.expr} reads a metric`);
      for (const name of names) queried.set(name, panel.title);
    }
  }

  // Real processes: an edge and a worker, each with its admin listener; their /metrics list every metric they define.
  const prefix = `test:dashboard:${randomUUID()}:`;
  const server = await startTestServer({ env: { FTP_ADMIN_PORT: String(await freeBlock(1, ['127.0.0.1'])), FTP_METRICS_USER_LABELS: 'true' } });
  const worker = await startWorker(
    loadWorkerConfig({ REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_DATA_DIR: server.dataDir, WORKER_ADMIN_PORT: String(await freeBlock(1, ['127.0.0.1'])) }),
    createLogger({ level: 'silent' }),
  );
  try {
    const known = new Set([
      ...(await scrape(`http://127.0.0.1:${server.edge.adminPort}/metrics`)).sampleNames(),
      ...(await scrape(`http://127.0.0.1:${worker.adminPort}/metrics`)).sampleNames(),
    ]);
    // The "Load test" row reads what the load generator pushes over OTLP (k6_*), not an edge's /metrics.
    const loadSeries = new Set(METRIC_NAMES.flatMap((n) => prometheusSeries(n)));
    for (const [name, title] of queried) {
      if (name.startsWith('k6_')) assert.ok(loadSeries.has(name), `${name} (panel "${title}") is a series of the load generator's OTLP push (test/load/src/vocabulary.ts)`);
      else assert.ok(known.has(name), `${name} (panel "${title}") is exported by an edge or a worker`);
    }
    assert.ok(dashboard.panels.some((p) => p.type === 'row' && p.title === 'Load test'), 'a "Load test" row');
    assert.ok([...queried.keys()].filter((n) => n.startsWith('k6_')).length >= 6, 'the load test row shows the client-side metrics');
    assert.ok(queried.size >= 20, `the dashboard covers the metrics (${queried.size})`);
  } finally {
    await worker.close();
    await server.close();
    const admin = new Redis(REDIS_URL);
    await deleteKeysUnder(admin, prefix);
    await admin.quit();
  }
});

test('the Prometheus config scrapes the three edges and two workers; the collector forwards OTLP traces', () => {
  const prometheus = parseYaml(readFileSync(new URL('prometheus.yml', ROOT), 'utf8')) as {
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const targets = (job: string) => prometheus.scrape_configs.find((c) => c.job_name === job)?.static_configs.flatMap((c) => c.targets);
  assert.deepEqual(targets('ftp-edge'), ['edge-1:9090', 'edge-2:9090', 'edge-3:9090']);
  assert.deepEqual(targets('ftp-worker'), ['worker-1:9091', 'worker-2:9091']);
  const collector = parseYaml(readFileSync(new URL('otel-collector.yaml', ROOT), 'utf8')) as {
    receivers: Record<string, unknown>;
    exporters: Record<string, unknown>;
    service: { pipelines: Record<string, { receivers: string[]; exporters: string[] }> };
  };
  const traces = collector.service.pipelines.traces;
  assert.deepEqual(traces.receivers, ['otlp']);
  for (const name of [...traces.receivers, ...traces.exporters]) assert.ok(name in { ...collector.receivers, ...collector.exporters }, `${name} is defined`);
  const providers = parseYaml(readFileSync(new URL('grafana/provisioning/dashboards/dashboards.yaml', ROOT), 'utf8')) as {
    providers: { type: string; options: { path: string } }[];
  };
  assert.equal(providers.providers[0].type, 'file');
});
