import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build, type Plugin } from 'esbuild';
import { scenarioPlan, type ScenarioConfig } from './src/scenario';
import { parseExpression, parseThreshold } from './src/thresholds';
import { K6_HTTP_METRICS, METRICS, type MetricType } from './src/vocabulary';

/**
 * k6 cannot be installed on this machine, so the k6 scripts are checked without it: esbuild parses each as an ES
 * module, then runs it against stand-ins for k6's modules to read its `options` and the custom metrics it defines.
 * Every metric and threshold name must be one of the load generator's (or, for the admin API, k6's own HTTP ones),
 * with the same type, and every threshold must read as our generator reads it.
 */

const SCRIPTS = ['admin-api.js', 'sftp.js'];

/** Custom metrics a script defines, filled by the stand-in of k6/metrics. */
const defined: { name: string; type: MetricType }[] = [];
const registry = globalThis as unknown as { __k6metrics: typeof defined; __ENV: Record<string, string> };
registry.__k6metrics = defined;
registry.__ENV = {};

/** k6's modules as stand-ins: enough for a script's init code (options, metric objects) to run. */
const stubs: Plugin = {
  name: 'k6-stubs',
  setup(b) {
    b.onResolve({ filter: /^k6(\/.*)?$/ }, (args) => ({ path: args.path, namespace: 'k6' }));
    b.onLoad({ filter: /.*/, namespace: 'k6' }, (args) => {
      if (args.path === 'k6/metrics') {
        const cls = (type: MetricType) => `class { constructor(name) { globalThis.__k6metrics.push({ name, type: '${type}' }); } add() {} }`;
        return { contents: `export const Trend = ${cls('trend')}; export const Rate = ${cls('rate')}; export const Counter = ${cls('counter')}; export const Gauge = ${cls('gauge')};` };
      }
      if (args.path === 'k6') return { contents: 'export const check = () => true; export const sleep = () => {}; export const group = (n, f) => f();' };
      if (args.path === 'k6/http') return { contents: 'export default { get() {}, post() {}, del() {}, put() {}, patch() {} };' };
      if (args.path === 'k6/x/sftp') return { contents: 'export default { newClient() {}, newClientWithRSAKey() {} };' };
      return { errors: [{ text: `no stand-in for ${args.path}: a k6 module this test does not know` }] };
    });
  },
};

for (const script of SCRIPTS) {
  test(`k6/${script} parses as an ES module and uses only the generator's metric names`, async () => {
    const file = new URL(`./k6/${script}`, import.meta.url).pathname;
    const out = await build({ entryPoints: [file], bundle: true, write: false, format: 'esm', platform: 'neutral', metafile: true, plugins: [stubs], logLevel: 'silent' });
    const exports = Object.values(out.metafile.outputs)[0].exports;
    assert.ok(exports.includes('options'), 'exports options');
    defined.length = 0;
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString('base64')}`)) as Record<string, unknown>;
    const options = mod.options as { scenarios: Record<string, { executor: string; exec?: string }>; thresholds: Record<string, string[]> };

    for (const m of defined) {
      assert.ok(m.name in METRICS, `${script} defines ${m.name}, which the generator's vocabulary lacks`);
      assert.equal(m.type, METRICS[m.name as keyof typeof METRICS].type, `${script}: ${m.name} is a ${m.type} here`);
    }
    for (const [name, s] of Object.entries(options.scenarios)) {
      scenarioPlan(name, s as unknown as ScenarioConfig); // the executors and their settings as the generator reads them
      assert.equal(typeof mod[s.exec ?? 'default'], 'function', `scenario ${name} runs an exported function`);
    }
    for (const [metric, expressions] of Object.entries(options.thresholds)) {
      const http = K6_HTTP_METRICS[metric as keyof typeof K6_HTTP_METRICS];
      for (const e of expressions) {
        if (http) parseExpression(http.type, e, metric); // k6's own HTTP metric (admin API)
        else parseThreshold(metric, e); // throws on a name outside the vocabulary or a method its type lacks
      }
    }
    if (script === 'sftp.js') {
      const names = defined.map((m) => m.name).sort();
      assert.deepEqual(names, ['ftp_errors', 'ftp_files_downloaded', 'ftp_files_uploaded', 'ftp_login_duration', 'ftp_session_duration', 'ftp_transfer_duration']);
      // The same thresholds as the Node scenario of small partners.
      const node = (await import('./scenarios/small-partners')).options.thresholds;
      assert.deepEqual(options.thresholds, node);
    }
  });
}
