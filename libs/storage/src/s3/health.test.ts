// The store's health (health.ts) against the real radosgw: a user of its own whose key is removed and restored with
// radosgw-admin (as a rotation or revocation would), and a fault proxy (test/support/s3FaultProxy.ts) for a store that
// does not answer or throttles. Probe periods are short here; the edge's default (15 s) is tested in
// test/e2e/s3Health.test.ts.
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { sharedRadosgw, type Radosgw, type S3User } from '../../../../test/support/radosgw';
import { startS3FaultProxy, type S3FaultProxy } from '../../../../test/support/s3FaultProxy';
import { StorageError } from '../types';
import { createS3Client } from './client';
import { watchS3Health, type HealthLog, type S3HealthOptions } from './health';
import { createS3Storage } from './s3Storage';

let rgw: Radosgw;
let user: S3User;
const bucket = `health-${Date.now().toString(36)}`;
let proxy: S3FaultProxy;

before(async () => {
  rgw = await sharedRadosgw();
  user = await rgw.createUser();
  const client = clientFor(rgw.endpoint);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
  proxy = await startS3FaultProxy(rgw.endpoint);
});

after(async () => {
  await proxy?.close();
  // Its bucket with it, whatever state its key was left in.
  await user?.remove();
});

function clientFor(endpoint: string) {
  return createS3Client({ endpoint, region: rgw.region, credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey }, forcePathStyle: true });
}

interface Line {
  level: 'info' | 'warn' | 'error';
  msg: string;
  obj: Record<string, unknown>;
}

function captureLog(): HealthLog & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (obj: object, msg: string) => void lines.push({ level, msg, obj: obj as Record<string, unknown> });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

/** A health watch on this user's bucket, closed (and its client destroyed) after the test. */
function watch(t: TestContext, options: Partial<S3HealthOptions> & { through?: 'proxy' }) {
  const client = clientFor(options.through === 'proxy' ? proxy.endpoint : rgw.endpoint);
  const log = captureLog();
  const health = watchS3Health({ client, bucket, log, ...options });
  t.after(() => {
    health.close();
    client.destroy();
  });
  return { client, log, health };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const levels = (lines: Line[]) => lines.map((l) => l.level);

test('a removed key turns readiness false within one probe period, logged once naming the cause; the key back, ready again, logged once', { timeout: 60_000 }, async (t) => {
  const every = 500;
  const { log, health } = watch(t, { everyMs: every });
  assert.equal(health.healthy(), true);
  t.after(() => user.restoreKey());

  await user.removeKey();
  const down = await until('not ready after the key was removed', () => !health.healthy(), every + 3000);
  t.diagnostic(`not ready ${down} ms after the key was removed (probe every ${every} ms)`);
  await sleep(4 * every); // more probes, all refused: no more lines
  assert.deepEqual(levels(log.lines), ['error']);
  assert.equal(log.lines[0].obj.cause, 'InvalidAccessKeyId');
  assert.match(log.lines[0].msg, /refuses this process \(InvalidAccessKeyId\).*not ready/);
  assert.match(health.detail(), /refused \(InvalidAccessKeyId\) since/);

  await user.restoreKey();
  await until('ready after the key came back', () => health.healthy(), every + 3000);
  await sleep(3 * every);
  assert.deepEqual(levels(log.lines), ['error', 'info']);
  assert.match(log.lines[1].msg, /takes this process's credentials again: ready/);
  assert.match(health.detail(), /: ok$/);
  const text = JSON.stringify(log.lines);
  assert.ok(!text.includes(user.accessKeyId) && !text.includes(user.secretAccessKey), `no key in the log: ${text}`);
});

test('a request refused by the store asks for an early probe: not ready long before the next period', { timeout: 60_000 }, async (t) => {
  const { client, log, health } = watch(t, { everyMs: 600_000 });
  const storage = createS3Storage({ client, bucket, prefix: 'homes/early/' });
  t.after(() => user.restoreKey());

  await user.removeKey();
  // Not the client's doing, and it passes: 'io' (FTP 451), not 'denied'.
  await assert.rejects(storage.list('/'), (err) => err instanceof StorageError && err.code === 'io' && /refused the server's credentials/.test(err.message));
  const down = await until('not ready after a refused request', () => !health.healthy(), 3000);
  t.diagnostic(`not ready ${down} ms after the refused request`);
  // More refused requests do not log again, nor probe more than once per few seconds.
  await Promise.all(Array.from({ length: 10 }, () => storage.stat('/x').catch(() => undefined)));
  assert.deepEqual(levels(log.lines), ['error']);
});

test('a store that does not answer: still ready through a blip, not ready once it lasts, logged once each; back, ready', { timeout: 60_000 }, async (t) => {
  const every = 200;
  const patience = 2000;
  const { log, health } = watch(t, { everyMs: every, unreachableAfterMs: patience, timeoutMs: 1000, through: 'proxy' });
  t.after(() => proxy.clear());

  // A blip: throttled for a moment (retries outlast the probe's timeout), then fine. Ready all along.
  proxy.throttle({ count: Infinity });
  let ready = true;
  const watcher = setInterval(() => (ready &&= health.healthy()), 10);
  await until('the blip noticed', () => log.lines.length > 0, 3000);
  await sleep(500);
  proxy.clear();
  await until('the store answers again', () => log.lines.length > 1, 3000);
  clearInterval(watcher);
  assert.equal(ready, true, 'ready through the blip');
  assert.deepEqual(levels(log.lines), ['warn', 'info']);
  assert.match(log.lines[0].msg, /does not answer its health probe.*still ready/);
  assert.equal(log.lines[1].msg, 'object storage answers again');

  // Away for longer than `patience`: not ready, once.
  proxy.setDown(true);
  const started = Date.now();
  await until('not ready once the store stayed away', () => !health.healthy(), patience + 3000);
  const after = Date.now() - started;
  assert.ok(after >= patience - every, `not ready after ${after} ms, not before ${patience} ms`);
  await sleep(5 * every);
  assert.deepEqual(levels(log.lines), ['warn', 'info', 'warn', 'error']);
  // The connection reset, or the probe's own time limit when the SDK's retries of it outlast it.
  assert.match(String(log.lines[3].obj.cause), /^(ECONNRESET|TimeoutError)$/);
  assert.match(health.detail(), /no answer \((ECONNRESET|TimeoutError)\) since/);

  proxy.setDown(false);
  await until('ready again', () => health.healthy(), 3000);
  assert.deepEqual(levels(log.lines), ['warn', 'info', 'warn', 'error', 'info']);
  assert.equal(log.lines[4].msg, 'object storage answers again: ready');

  // Closed: no more probes.
  health.close();
  await sleep(100);
  const seen = proxy.seen.length;
  await sleep(4 * every);
  assert.equal(proxy.seen.length, seen, 'no probe after close()');
});
