import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseArgs } from './src/args';
import { bounded } from './src/clients/session';
import { arrivalsBy, targetVUs } from './src/executors';
import { otlpConfig } from './src/otlp';
import { pickSize } from './src/partner';
import { progressLines } from './src/progress';
import { applyOverrides, planFromModule, type ScenarioPlan } from './src/scenario';
import { addBatch, aggregate, metricValues, newBatch, newStats, percentile, record } from './src/stats';
import { summaryExport } from './src/summary';
import { checkTarget, isSafeAddress, resolveTarget } from './src/target';
import { evaluate, parseThreshold, parseThresholdFlag } from './src/thresholds';
import { formatBytes, formatDuration, parseDuration, parseSize } from './src/units';
import { METRIC_NAMES, prometheusSeries } from './src/vocabulary';

// The load generator's pure parts: units, thresholds, k6's percentile, executors, the target guard, the export.

test('durations and sizes read and print as k6 writes them', () => {
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('30'), 30_000, 'a bare number on the command line is seconds');
  assert.throws(() => parseDuration('soon'), /not a duration/);
  assert.equal(parseSize('64KiB'), 65_536);
  assert.equal(parseSize('1.5MB'), 1_500_000);
  assert.equal(parseSize(4096), 4096);
  assert.throws(() => parseSize('1 parsec'), /not a size/);
  assert.equal(formatDuration(0.512), '512µs');
  assert.equal(formatDuration(144.561), '144.56ms');
  assert.equal(formatDuration(1140), '1.14s');
  assert.equal(formatDuration(62_000), '1m2s');
  assert.equal(formatBytes(81_000), '81 kB');
  assert.equal(formatBytes(1_300_000), '1.3 MB');
});

test('thresholds: k6 syntax, methods by metric type, evaluation', () => {
  const p95 = parseThreshold('ftp_session_duration', 'p(95)<500');
  assert.deepEqual([p95.method, p95.percentile, p95.op, p95.value], ['p(95)', 95, '<', 500]);
  assert.equal(parseThreshold('ftp_errors', { threshold: 'rate<0.01', abortOnFail: true }).abortOnFail, true);
  assert.equal(parseThresholdFlag('iterations=count>=10').method, 'count');
  assert.throws(() => parseThreshold('ftp_errors', 'p(95)<1'), /does not apply to a rate/);
  assert.throws(() => parseThreshold('no_such_metric', 'rate<1'), /no such metric/);
  assert.throws(() => parseThreshold('ftp_errors{protocol:sftp}', 'rate<1'), /not supported/);
  assert.throws(() => parseThreshold('ftp_errors', 'rate is low'), /not k6 syntax/);
  assert.throws(() => parseThresholdFlag('ftp_errors'), /METRIC=EXPRESSION/);

  const stats = newStats();
  const b = newBatch('s', 'ftp');
  for (const ms of [10, 20, 30, 40, 1000]) record.trend(b, 'ftp_session_duration', ms);
  for (let i = 0; i < 99; i++) record.rate(b, 'ftp_errors', false);
  record.rate(b, 'ftp_errors', true);
  addBatch(stats, b);
  const results = evaluate([p95, parseThreshold('ftp_errors', 'rate<=0.01'), parseThreshold('ftp_files_uploaded', 'count>0')], (m, method, p) =>
    aggregate(stats, m, method, 10, p),
  );
  assert.deepEqual(
    results.map((r) => [r.threshold.source, r.ok]),
    [
      ['p(95)<500', false],
      ['rate<=0.01', true],
      ['count>0', false], // no sample: 0, as k6
    ],
  );
});

test("percentiles interpolate between ranks as k6's trend sink does", () => {
  const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(sorted, 50), 5.5);
  assert.ok(Math.abs(percentile(sorted, 90) - 9.1) < 1e-9);
  assert.equal(percentile([7], 95), 7);
  assert.equal(percentile([], 95), 0);
});

const scenario = (s: Partial<ScenarioPlan> & Pick<ScenarioPlan, 'executor'>): ScenarioPlan => ({ name: 's', exec: 'default', startTime: 0, gracefulStop: 0, ...s }) as ScenarioPlan;

test('executors: ramping targets, arrivals, and the --vus/--duration overrides', () => {
  const ramp = scenario({ executor: 'ramping-vus', startVUs: 0, stages: [{ duration: 10_000, target: 10 }, { duration: 10_000, target: 10 }, { duration: 10_000, target: 0 }] });
  assert.deepEqual([0, 5_000, 10_000, 15_000, 25_000, 30_000].map((t) => targetVUs(ramp, t)), [0, 5, 10, 10, 5, 0]);
  const constant = scenario({ executor: 'constant-vus', vus: 3, duration: 1000 });
  assert.deepEqual([0, 999, 1000].map((t) => targetVUs(constant, t)), [3, 3, 0]);
  const arrivals = scenario({ executor: 'constant-arrival-rate', rate: 50, timeUnit: 1000, duration: 2000, preAllocatedVUs: 5, maxVUs: 10 });
  assert.deepEqual([0, 19, 20, 999, 5000].map((t) => arrivalsBy(arrivals, t)), [1, 1, 2, 50, 100]);

  // --duration is the test's length: every scenario's times scale by the same factor (here 6 s / 30 s).
  const [c, r, a] = applyOverrides([constant, ramp, { ...arrivals, startTime: 10_000 }], { vus: 4, duration: 6000 });
  assert.ok(c.executor === 'constant-vus' && r.executor === 'ramping-vus' && a.executor === 'constant-arrival-rate');
  assert.deepEqual([c.vus, c.duration], [4, 200]);
  assert.deepEqual(r.stages, [{ duration: 2000, target: 4 }, { duration: 2000, target: 4 }, { duration: 2000, target: 0 }]);
  assert.deepEqual([a.startTime, a.duration, a.preAllocatedVUs, a.maxVUs], [2000, 400, 4, 10]);
  const [alone] = applyOverrides([constant], { duration: 6000 });
  assert.ok(alone.executor === 'constant-vus' && alone.duration === 6000);
});

test('the target guard: loopback and 10.200.0.0/16 pass, anything else needs --allow-remote', async () => {
  for (const a of ['127.0.0.1', '127.3.2.1', '::1', '::ffff:127.0.0.1', '10.200.7.2']) assert.ok(isSafeAddress(a), a);
  for (const a of ['10.201.0.1', '192.0.2.1', '8.8.8.8', '::2', 'localhost']) assert.ok(!isSafeAddress(a), a);
  const resolver = (answers: Record<string, string[]>) => async (h: string) => (answers[h] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  assert.deepEqual(await checkTarget('localhost', [], resolver({ localhost: ['127.0.0.1', '::1'] })), ['127.0.0.1', '::1']);
  await assert.rejects(checkTarget('ftp.example.com', [], resolver({ 'ftp.example.com': ['192.0.2.10'] })), /--allow-remote ftp\.example\.com/);
  await assert.rejects(checkTarget('mixed', [], resolver({ mixed: ['127.0.0.1', '192.0.2.10'] })), /refusing/, 'every address must be safe');
  assert.deepEqual(await checkTarget('ftp.example.com', ['ftp.example.com'], resolver({ 'ftp.example.com': ['192.0.2.10'] })), ['192.0.2.10']);
  await assert.rejects(checkTarget('192.0.2.1', []), /refusing/);
  assert.deepEqual(await checkTarget('192.0.2.1', ['192.0.2.1']), ['192.0.2.1']);
  // Where the target comes from: the environment over the file over the defaults.
  const t = resolveTarget({ host: '127.0.0.2', port: 21, user: 'file-user' }, { FTP_PORT: '2121', FTP_USER: 'env-user' });
  assert.deepEqual([t.host, t.port, t.sftpPort, t.user], ['127.0.0.2', 2121, 2222, 'env-user']);
  assert.throws(() => resolveTarget({}, { FTP_PORT: 'ftp' }), /not a port/);
});

test('bounded(): a silent operation times out, a stalled transfer too, an abort interrupts; each kills', async () => {
  const never = () => new Promise<never>(() => {});
  let kills = 0;
  const kill = () => void kills++;
  const signal = new AbortController().signal;
  await assert.rejects(bounded('op', never, { signal, timeoutMs: 60, kill }), (e: Error & { code?: string }) => e.code === 'TIMEOUT');
  let moved = 0;
  const mover = setInterval(() => moved++, 10);
  const t = Date.now();
  const slow = bounded('transfer', () => new Promise<string>((r) => setTimeout(() => r('done'), 300)), { signal, timeoutMs: 60, stallMs: 60, kill, progress: () => moved });
  assert.equal(await slow, 'done', 'bytes moving keep a transfer alive past its stall time');
  clearInterval(mover);
  assert.ok(Date.now() - t >= 290);
  await assert.rejects(bounded('transfer', never, { signal, timeoutMs: 60, stallMs: 60, kill, progress: () => moved }), /no byte moved/);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(bounded('op', never, { signal: ac.signal, timeoutMs: 10_000, kill }), (e: Error & { code?: string }) => e.code === 'INTERRUPTED');
  assert.equal(kills, 3);
});

test('the summary export has k6 legacy shape: rate under value, thresholds true when failed, checks in root_group', () => {
  const stats = newStats();
  const b = newBatch('s', 'sftp');
  record.trend(b, 'ftp_login_duration', 12);
  record.add(b, 'ftp_files_uploaded', 3);
  record.check(b, 'download has the uploaded size', true);
  record.check(b, 'download has the uploaded size', false);
  record.rate(b, 'ftp_errors', false);
  addBatch(stats, b);
  const results = evaluate([parseThreshold('ftp_errors', 'rate<0.01'), parseThreshold('checks', 'rate==1')], (m, method, p) => aggregate(stats, m, method, 2, p));
  const out = summaryExport(stats, results, 2000) as { root_group: { id: string; checks: Record<string, { passes: number; fails: number; id: string; path: string }> }; metrics: Record<string, Record<string, unknown>> };
  assert.equal(out.root_group.id, 'd41d8cd98f00b204e9800998ecf8427e', "md5('') as k6's root group");
  assert.deepEqual(out.root_group.checks['download has the uploaded size'].path, '::download has the uploaded size');
  assert.deepEqual([out.root_group.checks['download has the uploaded size'].passes, out.root_group.checks['download has the uploaded size'].fails], [1, 1]);
  assert.deepEqual(out.metrics.checks, { value: 0.5, passes: 1, fails: 1, thresholds: { 'rate==1': true } });
  assert.deepEqual(out.metrics.ftp_errors, { value: 0, passes: 0, fails: 1, thresholds: { 'rate<0.01': false } });
  assert.deepEqual(out.metrics.ftp_files_uploaded, { count: 3, rate: 1.5 });
  assert.deepEqual(Object.keys(out.metrics.ftp_login_duration), ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)']);
  assert.equal(metricValues(stats, 'iterations', 2), undefined, 'a metric without samples is left out');
});

test('every shipped scenario loads and validates; bad ones name the field at fault', async () => {
  const dir = new URL('./scenarios/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.deepEqual(files.sort(), ['bulk-partners.ts', 'small-partners.ts', 'soak.ts', 'top-of-hour-burst.ts']);
  for (const f of files) {
    const plan = planFromModule(await import(new URL(f, dir).href), f);
    assert.ok(plan.scenarios.length > 0 && Object.keys(plan.options.thresholds ?? {}).length > 0, f);
  }
  const partner = { protocol: 'ftp', steps: [{ list: true }] };
  assert.throws(() => planFromModule({ options: { scenarios: { a: { executor: 'per-vu-iterations' } } }, default: partner }, 'x'), /options\.scenarios\.a\.executor/);
  assert.throws(() => planFromModule({ options: { scenarios: { a: { executor: 'constant-vus', duration: '1s', exec: 'nope' } } }, default: partner }, 'x'), /exports no partner "nope"/);
  assert.throws(() => planFromModule({ options: { scenarios: { a: { executor: 'constant-vus', duration: '1s' } } }, default: { ...partner, steps: [{ juggle: 1 }] } }, 'x'), /steps\[0\]: unknown step "juggle"/);
  assert.throws(() => planFromModule({ options: { scenarios: { a: { executor: 'constant-vus', duration: '1s' } }, thresholds: { nope: ['rate<1'] } }, default: partner }, 'x'), /no such metric/);
});

test('sizes: fixed, log-uniform range, weighted pick', () => {
  assert.equal(pickSize({ kind: 'fixed', bytes: 10 }), 10);
  assert.equal(pickSize({ kind: 'range', min: 1024, max: 1024 ** 2 }, () => 0.5), 32_768, 'the geometric middle');
  const pick = { kind: 'pick' as const, choices: [{ bytes: 1, weight: 3 }, { bytes: 2, weight: 1 }] };
  assert.deepEqual([0, 0.74, 0.76, 0.999].map((r) => pickSize(pick, () => r)), [1, 1, 2, 2]);
});

test('command line, OTLP configuration, vocabulary series and the progress line', () => {
  const a = parseArgs(['s.ts', '--vus', '5', '-d', '30s', '--threshold', 'ftp_errors=rate<0.01', '--allow-remote=h', '-o', 'otlp=http://127.0.0.1:4318/v1/metrics']);
  assert.deepEqual([a.scenario, a.vus, a.duration, a.thresholds, a.allowRemote, a.out], ['s.ts', 5, 30_000, ['ftp_errors=rate<0.01'], ['h'], 'otlp=http://127.0.0.1:4318/v1/metrics']);
  assert.throws(() => parseArgs(['s.ts', '--frobnicate']), /unknown option/);
  assert.equal(otlpConfig(undefined, {}), undefined);
  assert.equal(otlpConfig('otlp=http://x:4318/v1/metrics', {})?.prefix, 'k6_');
  assert.equal(otlpConfig('opentelemetry', { K6_OTEL_HTTP_EXPORTER_ENDPOINT: 'c:4318', K6_OTEL_HTTP_EXPORTER_INSECURE: 'true' })?.url, 'http://c:4318/v1/metrics');
  assert.throws(() => otlpConfig('opentelemetry', { K6_OTEL_EXPORTER_TYPE: 'grpc' }), /only http/);
  assert.deepEqual(prometheusSeries('ftp_errors'), ['k6_ftp_errors_total']);
  assert.deepEqual(prometheusSeries('data_sent'), ['k6_data_sent_bytes_total']);
  assert.ok(prometheusSeries('ftp_session_duration').includes('k6_ftp_session_duration_milliseconds_bucket'));
  assert.equal(new Set(METRIC_NAMES).size, METRIC_NAMES.length);
  const lines = progressLines({ elapsed: 5200, vus: 7, vusMax: 10, complete: 123, interrupted: 0, scenarios: [{ name: 'small', elapsed: 5200, length: 30_000, vus: 7, over: false }] });
  assert.equal(lines[0], 'running (00m05.2s), 07/10 VUs, 123 complete and 0 interrupted iterations');
  assert.match(lines[1], /^small {3}\[=+>-+\] 07 VUs {2}5\.2s\/30s$/);
});

test("the generator imports none of the server's code: it tests what a partner sees", () => {
  const src = new URL('./src/', import.meta.url);
  const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(ts|mjs)$/.test(f));
  const allowed = /^(node:|\.{1,2}\/|basic-ftp$|ssh2$|tsx\/esm\/api$|@opentelemetry\/)/;
  for (const f of files) {
    for (const m of readFileSync(new URL(f, src), 'utf8').matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      assert.ok(allowed.test(m[1]), `${f} imports ${m[1]}`);
      assert.ok(!/\.\.\/\.\.\//.test(m[1]), `${f} reaches out of test/load: ${m[1]}`);
    }
  }
  assert.ok(files.length >= 15);
});
