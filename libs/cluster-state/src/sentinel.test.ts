// The cluster state on Redis Sentinel: a real primary, replica and three sentinels (test/support/sentinel.ts). The
// primary is SIGKILLed; what was written before survives on the promoted replica, and a login made during the
// failover waits for the new primary instead of failing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { startSentinelGroup, type SentinelGroup } from '../../../test/support/sentinel';
import { record } from './contract';
import { createRedisClusterState } from './redis';
import { parseRedisUrl } from './redisTarget';
import type { ClusterState } from './types';

test('REDIS_URL: one server as ioredis takes it, or sentinels with the master name, db and passwords', () => {
  assert.deepEqual(parseRedisUrl('redis://:pw@10.0.0.1:6380/2'), { kind: 'single', url: 'redis://:pw@10.0.0.1:6380/2', shown: 'redis://***@10.0.0.1:6380/2' });
  const sentinel = parseRedisUrl('redis+sentinel://app:s%40cret@10.0.0.1:26379,[fd00::2]:26380,sentinel-3:26379/main/3?sentinelPassword=sp');
  assert.equal(sentinel.kind, 'sentinel');
  assert.equal(sentinel.shown, 'redis+sentinel://***@10.0.0.1:26379,[fd00::2]:26380,sentinel-3:26379/main/3?sentinelPassword=***');
  assert.deepEqual(sentinel.kind === 'sentinel' && sentinel.options, {
    sentinels: [
      { host: '10.0.0.1', port: 26379 },
      { host: 'fd00::2', port: 26380 },
      { host: 'sentinel-3', port: 26379 },
    ],
    name: 'main',
    db: 3,
    username: 'app',
    password: 's@cret',
    sentinelPassword: 'sp',
    failoverDetector: false,
  });
  for (const bad of ['redis+sentinel://10.0.0.1:26379', 'redis+sentinel://10.0.0.1/main', 'redis+sentinel://10.0.0.1:99999/main', 'http://x/', 'redis+sentinel://a:1/m/x']) {
    assert.throws(() => parseRedisUrl(bad), /expected|host:port/, bad);
  }
});

let group: SentinelGroup;
const states: ClusterState[] = [];
before(async () => {
  group = await startSentinelGroup({ downAfterMs: 1000 });
});
after(async () => {
  for (const state of states) await state.close();
  await group?.close();
});

const limits = { maxSessions: 0, maxPerAddress: 0 };

/** Resolves once the server on `port` holds `key` (replication is asynchronous: a test must not race it). */
async function replicated(port: number, key: string): Promise<void> {
  const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  try {
    for (let i = 0; i < 100 && (await redis.exists(key)) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await redis.exists(key), 1, `${key} replicated to ${port}`);
  } finally {
    redis.disconnect();
  }
}

test('a primary killed mid-run: written state survives, a login during the failover waits and succeeds', async (t) => {
  const prefix = `test:sentinel:${process.pid}:`;
  const state = await createRedisClusterState({ url: group.url, prefix, pasvRange: { min: 41000, max: 41003 } });
  states.push(state);
  assert.deepEqual(await state.sessions.open(record('before', '10.1.0.1'), limits), { ok: true });
  const policy = { threshold: 1, banSeconds: 600 };
  await state.bans.recordFailure('10.9.9.9', 'mallory', policy);
  assert.equal(await state.bans.isBanned('10.9.9.9'), true);
  const old = await group.primaryPort();
  const replica = group.serverPorts.find((p) => p !== old)!;
  await replicated(replica, `${prefix}ban:10.9.9.9`);
  await replicated(replica, `${prefix}session:before`);

  await group.killPrimary();
  const killedAt = Date.now();
  // Issued at once: the connection has no primary yet. It waits for the promoted replica.
  const during = state.sessions.open(record('during', '10.1.0.2'), limits);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(state.available(), true, 'a failover in progress does not make the replica unready');
  assert.deepEqual(await during, { ok: true });
  const waited = Date.now() - killedAt;
  t.diagnostic(`login issued as the primary died answered after ${waited} ms (down-after-milliseconds 1000)`);
  assert.equal(await group.primaryPort(), replica, 'the replica was promoted');

  assert.equal(await state.bans.isBanned('10.9.9.9'), true, 'the ban survived (replicated)');
  const ids = (await state.sessions.list()).map((s) => s.id).sort();
  assert.deepEqual(ids, ['before', 'during']);
  // The old primary comes back: as a replica of the new one, and the state keeps writing to the new primary.
  await group.restart(old);
  assert.deepEqual(await state.sessions.open(record('after', '10.1.0.3'), limits), { ok: true });
  await replicated(old, `${prefix}session:after`);
});

test('logins after a failover keep succeeding: Sentinel closing clients of the promoted replica refuses none', async (t) => {
  // A steady stream of session opens from before the kill until well after the promotion. Sentinel promotes with
  // SLAVEOF NO ONE and CLIENT KILL TYPE normal, which closes the connections the edges have just made to the new
  // primary: opens issued then must wait for the reconnection like any during the failover, not fail.
  const prefix = `test:sentinel3:${process.pid}:`;
  const state = await createRedisClusterState({ url: group.url, prefix, pasvRange: { min: 41000, max: 41003 } });
  states.push(state);
  const failures: string[] = [];
  let opened = 0;
  let stop = false;
  const load = (async () => {
    for (let i = 0; !stop && i < 2000; i++) {
      const issuedAt = Date.now();
      try {
        assert.deepEqual(await state.sessions.open(record(`s${i}`, '10.3.0.1'), limits), { ok: true });
        opened++;
      } catch (err) {
        failures.push(`${issuedAt}: ${(err as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const old = await group.killPrimary();
  const killedAt = Date.now();
  await group.waitForNewPrimary(old, 15_000);
  t.diagnostic(`promoted ${Date.now() - killedAt} ms after the kill`);
  await new Promise((resolve) => setTimeout(resolve, 4000));
  stop = true;
  await load;
  await group.restart(old);
  t.diagnostic(`${opened} opens, ${failures.length} failed: ${failures.map((f) => `${Number(f.split(':')[0]) - killedAt} ms ${f.slice(f.indexOf(':') + 2)}`).join('; ')}`);
  // Only an open in flight at the kill may fail (it may have been applied: it is not sent again).
  assert.ok(failures.length <= 1, `failed opens: ${failures.join('; ')}`);
  assert.ok(opened > 100);
});

test('with no primary to promote, a call waits only the failover bound, then fails; readiness follows', async () => {
  const state = await createRedisClusterState({ url: group.url, prefix: `test:sentinel2:${process.pid}:`, pasvRange: { min: 41000, max: 41003 }, failoverWaitMs: 1500 });
  states.push(state);
  assert.deepEqual(await state.sessions.open(record('x', '10.2.0.1'), limits), { ok: true });
  // Both data servers gone: the sentinels have nobody to promote.
  await Promise.all(group.serverPorts.map((port) => group.kill(port)));
  const started = Date.now();
  await assert.rejects(state.sessions.open(record('y', '10.2.0.2'), limits));
  const took = Date.now() - started;
  assert.ok(took >= 1000 && took < 6000, `rejected after the bound (${took} ms)`);
  await new Promise((resolve) => setTimeout(resolve, 1600));
  assert.equal(state.available(), false, 'unready once the failover bound has passed');
});
