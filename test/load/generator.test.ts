import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { hashPassword } from '@ftp/identity';
import { freeBlock, makeTempDir, removeTempDir, ROOT, startProcess, stopProcess } from '../support/processes';
import { scrape } from '../support/prometheus';
import { startTestServer, type TestServer } from '../support/server';

/**
 * The load generator end to end: `npm run load`'s entry as a child process against a real edge on loopback (test
 * support's in-process edge, or one in a process of its own where the test kills it). What the generator says it did
 * must be what the server's /metrics counted.
 */

interface Export {
  root_group: { checks: Record<string, { passes: number; fails: number }> };
  metrics: Record<string, Record<string, number> & { thresholds?: Record<string, boolean> }>;
}

let server: TestServer;
let dir: string;
let keyFile: string;
let sink: Server;
let sinkUrl: string;
const pushed: { metrics: string[]; attributes: string[] }[] = [];

before(async () => {
  dir = makeTempDir('load-test-');
  // ssh2 (1.17) writes 1 ed25519 key in 256 without the zero byte its public key starts with: such a key does not
  // parse (the edge refuses the users file). Generated again until both halves parse, as the host keys are.
  let key = ssh2.utils.generateKeyPairSync('ed25519');
  while (ssh2.utils.parseKey(key.private) instanceof Error || ssh2.utils.parseKey(key.public) instanceof Error) key = ssh2.utils.generateKeyPairSync('ed25519');
  keyFile = join(dir, 'id_ed25519');
  writeFileSync(keyFile, key.private, { mode: 0o600 });
  server = await startTestServer({
    sftp: true,
    env: { FTP_ADMIN_PORT: String(await freeBlock(1, ['127.0.0.1'])), FTP_LOG_LEVEL: 'info' },
    // bob logs in by key only (his password is random and not enough).
    extraUsers: `  bob:\n    password: "${await hashPassword(randomBytes(16).toString('hex'))}"\n    home: bob\n    auth_methods: [publickey]\n    public_keys:\n      - "${key.public}"\n`,
  });
  // A small OTLP/HTTP sink standing in for a Collector or Prometheus's OTLP receiver.
  sink = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const doc = JSON.parse(body) as { resourceMetrics: { scopeMetrics: { metrics: { name: string; [k: string]: unknown }[] }[] }[] };
      const metrics = doc.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
      pushed.push({ metrics: metrics.map((m) => m.name), attributes: [...body.matchAll(/"key":"([\w.]+)"/g)].map((m) => m[1]) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/metrics`;
});

after(async () => {
  await server?.close();
  sink?.close();
  if (dir) removeTempDir(dir);
});

/** Runs the generator; a run that outlives `timeoutMs` is killed, and the test then fails instead of hanging. */
function runLoad(args: string[], env: Record<string, string>, timeoutMs = 30_000) {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/load/src/cli.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

const target = () => ({ FTP_HOST: '127.0.0.1', FTP_PORT: String(server.port), SFTP_PORT: String(server.edge.sftpPort), FTP_USER: server.user, FTP_PASSWORD: server.password });
const metricsUrl = () => `http://127.0.0.1:${server.edge.adminPort}/metrics`;

/** Transfers the server counted, every protocol together. */
async function serverTransfers(direction: 'upload' | 'download', results: string[]) {
  const m = await scrape(metricsUrl());
  let n = 0;
  for (const protocol of ['ftp', 'ftps', 'sftp']) for (const result of results) n += m.value('ftp_transfers_total', { protocol, direction, result });
  return n;
}

test('FTP partners: thresholds pass (exit 0); the export says what the server counted; metrics pushed over OTLP', async () => {
  const before = { up: await serverTransfers('upload', ['ok']), down: await serverTransfers('download', ['ok']) };
  const exportFile = join(dir, 'ftp.json');
  const run = await runLoad(['test/load/fixtures/quick-ftp.ts', '--summary-export', exportFile, '--out', `otlp=${sinkUrl}`], { ...target(), K6_OTEL_EXPORT_INTERVAL: '1s' });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /█ THRESHOLDS/);
  assert.match(run.stdout, /✓ 'p\(95\)<2000' p\(95\)=/);
  assert.match(run.stdout, /ftp_session_duration\.+: avg=\S+ +min=\S+ +med=\S+ +max=\S+ +p\(90\)=\S+ +p\(95\)=/);
  assert.match(run.stdout, /GENERATOR\n +cpu [\d.]+ s in [\d.]+ s = [\d.]+% of one core/);
  assert.match(run.stderr, /running \(\d\dm\d\d\.\ds\), \d+\/\d+ VUs, \d+ complete and \d+ interrupted iterations/, 'a progress line');

  const summary = JSON.parse(readFileSync(exportFile, 'utf8')) as Export;
  const m = summary.metrics;
  assert.ok(m.iterations.count >= 3, 'some iterations ran');
  assert.equal(m.ftp_files_uploaded.count, (await serverTransfers('upload', ['ok'])) - before.up, 'uploads: generator = server');
  assert.equal(m.ftp_files_downloaded.count, (await serverTransfers('download', ['ok'])) - before.down, 'downloads: generator = server');
  assert.equal(m.ftp_files_uploaded.count, m.iterations.count * 2, 'two files per iteration');
  assert.equal(m.ftp_errors.value, 0);
  assert.deepEqual(m.ftp_errors.thresholds, { 'rate<0.01': false });
  assert.equal(summary.root_group.checks['download has the uploaded size'].fails, 0);
  for (const name of ['ftp_session_duration', 'ftp_login_duration', 'ftp_transfer_duration', 'iteration_duration']) assert.ok(m[name]['p(95)'] > 0, name);
  assert.ok(m.data_sent.count > m.ftp_files_uploaded.count * 1024, 'data_sent counts the bytes on the wire');
  assert.equal(m.vus_max.value, 3);

  const names = new Set(pushed.flatMap((p) => p.metrics));
  for (const name of ['k6_ftp_session_duration', 'k6_ftp_errors', 'k6_ftp_files_uploaded', 'k6_data_sent', 'k6_vus', 'k6_iterations']) assert.ok(names.has(name), `${name} pushed`);
  const attributes = new Set(pushed.flatMap((p) => p.attributes));
  for (const a of ['scenario', 'protocol', 'condition', 'testid', 'service.name']) assert.ok(attributes.has(a), `attribute ${a}`);
});

test('a threshold that fails ends the run with exit code 99', async () => {
  const exportFile = join(dir, 'fail.json');
  const run = await runLoad(['test/load/fixtures/quick-ftp.ts', '-d', '1s', '-q', '--threshold', 'ftp_files_uploaded=count>1000000', '--summary-export', exportFile], target());
  assert.equal(run.code, 99, run.stdout + run.stderr);
  assert.match(run.stdout, /✗ 'count>1000000' count=\d+/);
  assert.match(run.stderr, /thresholds on metrics 'ftp_files_uploaded' have been crossed/);
  const summary = JSON.parse(readFileSync(exportFile, 'utf8')) as Export;
  assert.deepEqual(summary.metrics.ftp_files_uploaded.thresholds, { 'count>1000000': true }, "k6's export marks a failed threshold true");
  assert.equal(summary.metrics.ftp_errors.thresholds?.['rate<0.01'], false);
});

test('FTPS and SFTP partners (SFTP by key), each resuming a broken upload, as the server counted them', async () => {
  const before = { ok: await serverTransfers('upload', ['ok']), broken: await serverTransfers('upload', ['aborted', 'failed']), down: await serverTransfers('download', ['ok']) };
  const exportFile = join(dir, 'protocols.json');
  const run = await runLoad(['test/load/fixtures/protocols.ts', '-q', '--summary-export', exportFile], { ...target(), LOAD_SFTP_USER: 'bob', LOAD_SFTP_KEY: keyFile });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const summary = JSON.parse(readFileSync(exportFile, 'utf8')) as Export;
  const resumed = summary.root_group.checks['resumed upload has its full size'];
  assert.ok(resumed.passes >= 2 && resumed.fails === 0, `resumes: ${JSON.stringify(resumed)}`);
  assert.equal(summary.metrics.ftp_files_uploaded.count, (await serverTransfers('upload', ['ok'])) - before.ok);
  assert.equal(summary.metrics.ftp_files_downloaded.count, (await serverTransfers('download', ['ok'])) - before.down);
  assert.equal((await serverTransfers('upload', ['aborted', 'failed'])) - before.broken, resumed.passes, 'each cut upload is a broken one for the server');
  const m = await scrape(metricsUrl());
  assert.ok(m.value('ftp_transfers_total', { protocol: 'ftps', direction: 'upload', result: 'ok' }) > 0, 'FTPS uploads');
  assert.ok(m.value('ftp_transfers_total', { protocol: 'sftp', direction: 'upload', result: 'ok' }) > 0, 'SFTP uploads');
  const bob = server.logs.filter((l) => l.user === 'bob' && l.event === 'login');
  assert.ok(bob.some((l) => l.result === 'success' && l.method === 'publickey'), 'bob logged in over SFTP by key');
  assert.ok(!bob.some((l) => l.result !== 'success'), 'and never tried a password that would count towards a ban');
});

test('a server killed mid-run: errors in the summary, the threshold fails (99), the run ends on time', async () => {
  const adminPort = await freeBlock(1, ['127.0.0.1']);
  // Its folders go under this test's temp folder (TMPDIR): a SIGKILLed edge cannot remove them itself.
  const tmp = join(dir, 'edge-tmp');
  mkdirSync(tmp);
  const edge = startProcess('edge', process.execPath, ['--import', 'tsx', 'test/load/fixtures/edgeProcess.ts'], {
    env: { ...process.env, TMPDIR: tmp, LOAD_EDGE_ENV: JSON.stringify({ FTP_LOG_LEVEL: 'warn', FTP_ADMIN_PORT: String(adminPort) }) },
  });
  try {
    const info = await new Promise<{ port: number; sftpPort: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`edge did not start: ${edge.tail.join('\n')}`)), 20_000);
      edge.child.stdout!.on('data', (c: Buffer) => {
        const line = String(c).split('\n').find((l) => l.startsWith('{"port"'));
        if (!line) return;
        clearTimeout(timer);
        resolve(JSON.parse(line));
      });
    });
    const exportFile = join(dir, 'killed.json');
    const running = runLoad(['test/load/fixtures/quick-ftp.ts', '-d', '5s', '-q', '--summary-export', exportFile], { ...target(), FTP_PORT: String(info.port), SFTP_PORT: String(info.sftpPort) });
    // Kill it once it has served a few uploads: mid-run, whatever the generator's start-up took.
    const uploads = async () => (await scrape(`http://127.0.0.1:${adminPort}/metrics`)).value('ftp_transfers_total', { protocol: 'ftp', direction: 'upload', result: 'ok' });
    for (let i = 0; i < 100 && (await uploads().catch(() => 0)) < 4; i++) await new Promise((r) => setTimeout(r, 100));
    edge.child.kill('SIGKILL');
    const killedAt = Date.now();
    const run = await running;
    assert.equal(run.code, 99, run.stdout + run.stderr);
    assert.ok(Date.now() - killedAt < 10_000, `ended ${Date.now() - killedAt} ms after the kill: within the 5 s duration and the timeouts`);
    assert.match(run.stdout, /ERRORS\n +\d+ × \w+: (ECONNREFUSED|ECONNRESET|connection closed)/);
    const summary = JSON.parse(readFileSync(exportFile, 'utf8')) as Export;
    assert.ok(summary.metrics.ftp_errors.value > 0 && summary.metrics.ftp_errors.passes > 0, 'failed operations');
    assert.ok(summary.metrics.ftp_files_uploaded.count >= 4, 'it worked before the kill');
    assert.deepEqual(summary.metrics.ftp_errors.thresholds, { 'rate<0.01': true });
  } finally {
    await stopProcess(edge, 'SIGKILL');
  }
});

test('a target outside loopback and the test networks is refused unless --allow-remote names it', async () => {
  const run = await runLoad(['test/load/fixtures/quick-ftp.ts', '-q'], { ...target(), FTP_HOST: '192.0.2.1' }, 15_000);
  assert.equal(run.code, 104, run.stdout + run.stderr);
  assert.match(run.stderr, /target 192\.0\.2\.1 .* refusing to load it; pass --allow-remote 192\.0\.2\.1/);
  assert.doesNotMatch(run.stderr, /running \(/, 'nothing ran');
});
