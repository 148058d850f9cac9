import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { keysUnder as keysUnderPrefix } from '../../../test/support/redisKeys';
import { startRedisProxy } from '../../../test/support/redisProxy';
import { clusterStateContract, record } from './contract';
import { createRedisClusterState, type RedisClusterStateOptions } from './redis';
import type { ClusterState } from './types';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Every prefix this file used, deleted at the end; every state it made, closed at the end (also after a failure). */
const prefixes = new Set<string>();
const states = new Set<ClusterState>();
const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });

async function make(options: Omit<RedisClusterStateOptions, 'pasvRange'> & { pasvRange?: { min: number; max: number } }) {
  if (options.prefix) prefixes.add(options.prefix);
  const state = await createRedisClusterState({ url: REDIS_URL, pasvRange: { min: 40000, max: 40003 }, ...options });
  states.add(state);
  return state;
}
const newPrefix = () => `test:${randomUUID()}:`;

const keysUnder = (prefix: string) => keysUnderPrefix(admin, prefix);

after(async () => {
  for (const state of states) await state.close();
  for (const prefix of prefixes) {
    const keys = await keysUnder(prefix);
    if (keys.length) await admin.del(...keys);
  }
  await admin.quit();
});

clusterStateContract('redis', async (pasvRange, clock) => make({ prefix: newPrefix(), pasvRange, now: clock.now }));


test('redis: two replicas racing 50 admissions admit exactly the limit', async () => {
  const prefix = newPrefix();
  const [a, b] = await Promise.all([make({ prefix }), make({ prefix })]);
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).sessions.open(record(`s${i}`, `10.0.0.${i % 7}`), { maxSessions: 10, maxPerAddress: 0 })),
  );
  assert.equal(results.filter((r) => r.ok).length, 10);
  assert.equal((await a.sessions.list()).length, 10);
  assert.equal((await b.sessions.list()).length, 10);

  // The per-address limit holds across replicas too.
  const prefix2 = newPrefix();
  const [c, d] = await Promise.all([make({ prefix: prefix2 }), make({ prefix: prefix2 })]);
  const perAddress = await Promise.all(
    Array.from({ length: 50 }, (_, i) => (i % 2 ? c : d).sessions.open(record(`p${i}`, `10.0.1.${i % 5}`), { maxSessions: 0, maxPerAddress: 3 })),
  );
  assert.equal(perAddress.filter((r) => r.ok).length, 15);
  for (const r of perAddress) if (!r.ok) assert.equal(r.reason, 'max-per-address');
  for (const s of [a, b, c, d]) await s.close();
});

test('redis: the per-user limit holds across replicas', async () => {
  const prefix = newPrefix();
  const [a, b] = await Promise.all([make({ prefix }), make({ prefix })]);
  const limits = { maxSessions: 0, maxPerAddress: 0 };
  for (let i = 0; i < 20; i++) await (i % 2 ? a : b).sessions.open(record(`u${i}`), limits);
  const bound = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).sessions.bindUser(`u${i}`, 'alice', { maxPerUser: 4 })));
  assert.equal(bound.filter((r) => r.ok).length, 4);
  for (const r of bound) if (!r.ok) assert.equal(r.reason, 'max-per-user');
  assert.deepEqual(await a.sessions.bindUser('missing', 'alice', { maxPerUser: 0 }), { ok: false, reason: 'gone' }, 'an unknown session cannot bind');
  const holder = (await a.sessions.list()).find((r) => r.user === 'alice');
  assert.ok(holder);
  assert.deepEqual(await b.sessions.bindUser(holder.id, 'alice', { maxPerUser: 4 }), { ok: true }, 'binding again to the same user does not count itself');
  assert.deepEqual(await b.sessions.bindUser(holder.id, 'carol', { maxPerUser: 1 }), { ok: true }, 'moving to another user frees the old one');
  assert.equal((await a.sessions.list()).filter((r) => r.user === 'alice').length, 3);
  const unbound = (await a.sessions.list()).filter((r) => r.user === undefined);
  assert.deepEqual(await a.sessions.bindUser(unbound[0].id, 'alice', { maxPerUser: 4 }), { ok: true });
  assert.deepEqual(await a.sessions.bindUser(unbound[1].id, 'alice', { maxPerUser: 4 }), { ok: false, reason: 'max-per-user' });
  await a.close();
  await b.close();
});

test('redis: upload reservations raced from two replicas grant exactly the room left', async () => {
  const prefix = newPrefix();
  const [a, b] = await Promise.all([make({ prefix }), make({ prefix })]);
  await a.usage.set('alice', { bytes: 4000, files: 2 });
  const quota = { bytes: 10_000 };
  const grants = await Promise.all(
    Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).usage.reserve('alice', `up${i % 8}`, 300, quota, 60_000)),
  );
  assert.equal(grants.reduce((x, y) => x + y, 0), 6000);
  await b.usage.apply('alice', { bytes: 1000, files: 1 }, 'up0');
  assert.deepEqual(await a.usage.get('alice'), { bytes: 5000, files: 3 }, 'one record, seen by both');
  await a.close();
  await b.close();
});

test('redis: two replicas share one bandwidth bucket and one daily counter', async () => {
  const prefix = newPrefix();
  let t = Date.UTC(2024, 2, 1, 12);
  const now = () => t;
  const [a, b] = await Promise.all([make({ prefix, now }), make({ prefix, now })]);
  const take = (state: ClusterState, replicaId: string, want: number) =>
    state.budgets.take({ user: 'bob', direction: 'upload', replicaId, want, bytesPerSecond: 1000, burstMs: 2000, dailyBytes: 5000 });
  const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => take(i % 2 ? a : b, i % 2 ? 'ra' : 'rb', 500)));
  assert.equal(burst.reduce((n, g) => n + g.granted, 0), 2000, 'one burst between them');
  t += 1000;
  assert.deepEqual(await take(a, 'ra', 5000), { granted: 1000, limitedBy: 'bandwidth', retryAfterMs: 2000, replicas: 2 });
  t += 10_000;
  assert.deepEqual(await take(b, 'rb', 5000), { granted: 2000, limitedBy: 'daily', replicas: 1 }, 'ra took last 10 s ago');
  assert.deepEqual(await a.budgets.today('bob'), { upload: 5000, download: 0 });
  await a.close();
  await b.close();
});

test('redis: leases taken concurrently by two replicas never collide for one address', async () => {
  const prefix = newPrefix();
  const pasvRange = { min: 41000, max: 41009 };
  const [a, b] = await Promise.all([make({ prefix, pasvRange }), make({ prefix, pasvRange })]);
  const ask = (state: ClusterState, sessionId: string, clientAddress: string) =>
    state.ports.lease({ sessionId, replicaId: state === a ? 'ra' : 'rb', relayAddress: '', clientAddress, ttlMs: 60_000 });
  const same = await Promise.all(Array.from({ length: 16 }, (_, i) => ask(i % 2 ? a : b, `x${i}`, '10.0.0.1')));
  const granted = same.filter((l) => l !== null);
  assert.equal(granted.length, 10, 'ten ports, ten leases for one address');
  assert.equal(new Set(granted.map((l) => l.port)).size, 10, 'no port twice for one address');

  // Another address shares the ports; a wildcard finds none free.
  const other = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(i % 2 ? a : b, `y${i}`, '10.0.0.2')));
  assert.equal(new Set(other.map((l) => l?.port)).size, 10);
  assert.equal(await ask(a, 'w', '*'), null);
  assert.equal(await b.ports.inUse(), 20);
  for (const lease of granted) assert.equal((await b.ports.find(lease.port, '10.0.0.1'))?.sessionId, lease.sessionId);

  // Wildcards raced from both replicas: each port goes to at most one of them.
  for (const lease of [...granted, ...other]) if (lease) await (lease.replicaId === 'ra' ? b : a).ports.release(lease);
  assert.equal(await a.ports.inUse(), 0);
  const wild = await Promise.all(Array.from({ length: 14 }, (_, i) => ask(i % 2 ? a : b, `w${i}`, '*')));
  const wildGranted = wild.filter((l) => l !== null);
  assert.equal(wildGranted.length, 10);
  assert.equal(new Set(wildGranted.map((l) => l.port)).size, 10);
  assert.equal(await ask(a, 'late', '10.0.0.3'), null, 'wildcards hold every port for every address');
  await a.close();
  await b.close();
});

test('redis: a ban recorded by one replica is seen by the other, and failures add up across replicas', async () => {
  const prefix = newPrefix();
  let t = 5_000_000;
  const now = () => t;
  const [a, b] = await Promise.all([make({ prefix, now }), make({ prefix, now })]);
  const policy = { threshold: 3, banSeconds: 60 };
  assert.deepEqual(await a.bans.recordFailure('10.1.1.1', 'bob', policy), { banned: false, failures: 1 });
  assert.deepEqual(await b.bans.recordFailure('10.1.1.1', 'bob', policy), { banned: false, failures: 2 });
  assert.deepEqual(await a.bans.recordFailure('10.1.1.1', 'bob', policy), { banned: true, failures: 3 });
  assert.equal(await b.bans.isBanned('10.1.1.1'), true);
  t += 60_001;
  assert.equal(await b.bans.isBanned('10.1.1.1'), false);
  // A failure window ends after one ban length: a slow trickle never bans.
  await a.bans.recordFailure('10.1.1.2', 'bob', policy);
  await b.bans.recordFailure('10.1.1.2', 'bob', policy);
  t += 60_001;
  assert.deepEqual(await a.bans.recordFailure('10.1.1.2', 'bob', policy), { banned: false, failures: 1 });
  assert.deepEqual(await a.bans.recordFailure('10.1.1.9', 'bob', { threshold: 0, banSeconds: 60 }), { banned: false, failures: 1 });
  await a.close();
  await b.close();
});

test('redis: sessions of a replica that stops heartbeating stop counting after the session TTL', async () => {
  const prefix = newPrefix();
  let t = 2_000_000;
  const now = () => t;
  const [alive, crashed] = await Promise.all([make({ prefix, now, sessionTtlMs: 10_000 }), make({ prefix, now, sessionTtlMs: 10_000 })]);
  const limits = { maxSessions: 2, maxPerAddress: 0 };
  assert.deepEqual(await alive.sessions.open(record('kept'), limits), { ok: true });
  assert.deepEqual(await crashed.sessions.open(record('ghost', '10.0.0.7'), limits), { ok: true });
  assert.deepEqual(await crashed.sessions.bindUser('ghost', 'bob', { maxPerUser: 1 }), { ok: true });
  assert.deepEqual(await alive.sessions.open(record('third'), limits), { ok: false, reason: 'max-sessions' });
  t += 6_000;
  await alive.sessions.update('kept', {}); // heartbeat
  t += 6_000; // ghost last heard of 12 s ago, kept 6 s ago
  assert.deepEqual(await alive.sessions.open(record('third', '10.0.0.7'), { maxSessions: 2, maxPerAddress: 1 }), { ok: true });
  assert.deepEqual(await alive.sessions.bindUser('third', 'bob', { maxPerUser: 1 }), { ok: true }, 'the ghost no longer holds bob');
  assert.deepEqual((await alive.sessions.list()).map((r) => r.id).sort(), ['kept', 'third']);
  assert.equal(await admin.exists(`${prefix}session:ghost`), 0, 'the expired record is gone');
  // An update for an expired session does not bring it back.
  await crashed.sessions.update('ghost', { command: 'NOOP' });
  assert.equal((await alive.sessions.list()).length, 2);
  await alive.close();
  await crashed.close();
});

test('redis: records round-trip, updates merge, an undefined field clears it', async () => {
  const state = await make({ prefix: newPrefix() });
  const limits = { maxSessions: 0, maxPerAddress: 0 };
  const big = 2 ** 52 + 1;
  await state.sessions.open({ ...record('a', '2001:db8::1'), startedAt: 1_700_000_000_123, user: 'pre' }, limits);
  const transfer = { direction: 'upload' as const, path: '/dir/ä "quoted".bin', startedAt: 1_700_000_000_456 };
  await state.sessions.update('a', { command: 'STOR', transfer, bytesIn: big });
  let [a] = await state.sessions.list();
  assert.deepEqual(a, {
    id: 'a',
    replicaId: 'r1',
    clientAddress: '2001:db8::1',
    startedAt: 1_700_000_000_123,
    user: 'pre',
    command: 'STOR',
    transfer,
    bytesIn: big,
    bytesOut: 0,
  });
  await state.sessions.update('a', { transfer: undefined, bytesOut: 7 });
  await state.sessions.unbindUser('a');
  [a] = await state.sessions.list();
  assert.equal(a.transfer, undefined);
  assert.equal(a.user, undefined);
  assert.equal(a.bytesOut, 7);
  // Opening an id again replaces the record and its index entries.
  await state.sessions.open(record('a', '10.0.0.5'), { maxSessions: 0, maxPerAddress: 1 });
  assert.deepEqual(
    (await state.sessions.list()).map((r) => [r.id, r.clientAddress, r.command]),
    [['a', '10.0.0.5', undefined]],
  );
  assert.deepEqual(await state.sessions.open(record('b', '2001:db8::1'), { maxSessions: 0, maxPerAddress: 1 }), { ok: true });
  await state.sessions.close('a');
  await state.sessions.close('b');
  await state.sessions.close('never-opened');
  assert.deepEqual(await state.sessions.list(), []);
  await state.close();
});

test('redis: keys follow the documented layout and all carry a garbage-collection TTL', async () => {
  const prefix = newPrefix();
  const state = await make({ prefix });
  await state.sessions.open(record('s1', '10.0.0.1'), { maxSessions: 0, maxPerAddress: 0 });
  await state.sessions.bindUser('s1', 'alice', { maxPerUser: 0 });
  const lease = await state.ports.lease({ sessionId: 's1', replicaId: 'r1', relayAddress: '', clientAddress: '10.0.0.1', ttlMs: 30_000 });
  assert.ok(lease);
  await state.bans.recordFailure('10.0.0.8', 'bob', { threshold: 5, banSeconds: 60 });
  await state.bans.recordFailure('10.0.0.9', 'bob', { threshold: 1, banSeconds: 60 });
  const keys = (await keysUnder(prefix)).map((k) => k.slice(prefix.length)).sort();
  assert.deepEqual(keys, [
    'ban:10.0.0.9',
    'bans',
    'fail:10.0.0.8',
    'fail:10.0.0.9',
    `port:${lease.port}`,
    'ports:cursor',
    'session:s1',
    'sessions',
    'sessions:addr:10.0.0.1',
    'sessions:user:alice',
  ]);
  for (const key of keys) {
    const ttl = await admin.pttl(prefix + key);
    assert.ok(ttl > 0 && ttl <= 70_000 + 10 * 60_000, `${key} has a bounded TTL (${ttl})`);
  }
  assert.equal(await admin.type(`${prefix}sessions`), 'zset');
  assert.equal(await admin.type(`${prefix}session:s1`), 'hash');
  assert.equal(await admin.type(`${prefix}port:${lease.port}`), 'hash');
  await state.ports.release(lease);
  await state.sessions.close('s1');
  await state.sessions.open(record('s2', '10.0.0.8'), { maxSessions: 0, maxPerAddress: 0 });
  await state.sessions.bindUser('s2', 'bob', { maxPerUser: 0 }); // bob's login forgives bob's failure
  await state.sessions.close('s2');
  const left = (await keysUnder(prefix)).map((k) => k.slice(prefix.length)).sort();
  // A ban keeps the failure count of its window (it is not a reset); it expires with the window.
  assert.deepEqual(left, ['ban:10.0.0.9', 'bans', 'fail:10.0.0.9', 'ports:cursor'], 'closing, releasing and clearing leave no index behind');
  await state.close();
});

test('redis: rate, usage and budget keys follow the documented layout and all carry a garbage-collection TTL', async () => {
  const prefix = newPrefix();
  const t = Date.UTC(2024, 4, 31, 23);
  const state = await make({ prefix, now: () => t, usageTtlMs: 86_400_000 });
  await state.sessions.open(record('s1', '10.0.0.1'), { maxSessions: 0, maxPerAddress: 0, sessionsPerMinutePerAddress: 10 });
  await state.sessions.bindUser('s1', 'alice', { maxPerUser: 0, sessionsPerMinute: 10 });
  await state.usage.set('alice', { bytes: 0, files: 0 });
  await state.usage.reserve('alice', 'up1', 100, { bytes: 1000 }, 30_000);
  await state.budgets.take({ user: 'alice', direction: 'download', replicaId: 'r1', want: 100, bytesPerSecond: 1000, burstMs: 1000, dailyBytes: 0 });
  const keys = (await keysUnder(prefix)).map((k) => k.slice(prefix.length)).sort();
  assert.deepEqual(keys, [
    'binds:user:alice',
    'bucket:download:alice',
    'daily:2024-05-31:download:alice',
    'opens:addr:10.0.0.1',
    'reserved-until:alice',
    'reserved:alice',
    'session:s1',
    'sessions',
    'sessions:addr:10.0.0.1',
    'sessions:user:alice',
    'takers:download:alice',
    'usage:alice',
  ]);
  for (const key of keys) {
    const ttl = await admin.pttl(prefix + key);
    assert.ok(ttl > 0 && ttl <= 2 * 86_400_000 + 10 * 60_000, `${key} has a bounded TTL (${ttl})`);
  }
  assert.deepEqual(await admin.hgetall(`${prefix}usage:alice`), { bytes: '0', files: '0' });
  assert.deepEqual(await admin.hgetall(`${prefix}reserved:alice`), { up1: '100' });
  assert.equal(await admin.get(`${prefix}daily:2024-05-31:download:alice`), '100');
  await state.usage.apply('alice', { bytes: 100, files: 1 }, 'up1');
  const left = (await keysUnder(prefix)).map((k) => k.slice(prefix.length));
  assert.ok(!left.includes('reserved:alice') && !left.includes('reserved-until:alice'), 'the last reservation leaves no key behind');
  await state.close();
});

test('redis: releases in the same few milliseconds go to Redis as one script call, and each still frees only its own lease', async () => {
  const state = await make({ prefix: newPrefix(), pasvRange: { min: 41000, max: 41019 } });
  const leases = [];
  for (let i = 0; i < 6; i++) {
    leases.push((await state.ports.lease({ sessionId: `s${i}`, replicaId: 'r1', relayAddress: '', clientAddress: `10.3.0.${i}`, ttlMs: 30_000 }))!);
  }
  const stale = { ...leases[0], sessionId: 'someone-else' }; // a late release by an old owner
  await state.ports.release({ ...stale, port: 41019 }); // the script is cached from here: EVALSHA only
  const monitor = await admin.monitor();
  const scripts: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0].toLowerCase() === 'evalsha') scripts.push(args);
  });
  await Promise.all([state.ports.release(stale), ...leases.slice(1).map((lease) => state.ports.release(lease))]);
  await new Promise((resolve) => setTimeout(resolve, 100)); // MONITOR reports a command after it ran
  monitor.disconnect();
  assert.equal(scripts.length, 1, 'one round trip for six releases');
  assert.equal(scripts[0][2], '6', 'six port keys in it');
  assert.equal(await state.ports.inUse(), 1, "the stale release did not free the new owner's lease");
  assert.equal((await state.ports.find(leases[0].port, '10.3.0.0'))?.sessionId, 's0');
  await state.close();
});

test('redis: with Redis unreachable every method rejects quickly', async () => {
  const started = Date.now();
  const state = await make({ url: 'redis://127.0.0.1:1', prefix: newPrefix() });
  const calls: Array<() => Promise<unknown>> = [
    () => state.sessions.open(record('a'), { maxSessions: 0, maxPerAddress: 0 }),
    () => state.sessions.bindUser('a', 'alice', { maxPerUser: 0 }),
    () => state.sessions.unbindUser('a'),
    () => state.sessions.update('a', { command: 'LIST' }),
    () => state.sessions.close('a'),
    () => state.sessions.list(),
    () => state.ports.lease({ sessionId: 'a', replicaId: 'r1', relayAddress: '', clientAddress: '10.0.0.1', ttlMs: 1000 }),
    () => state.ports.release({ port: 40000, clientAddress: '10.0.0.1', sessionId: 'a', replicaId: 'r1', relayAddress: '', relayToken: '', expiresAt: 0 }),
    () => state.ports.find(40000, '10.0.0.1'),
    () => state.ports.inUse(),
    () => state.bans.isBanned('10.0.0.1'),
    () => state.bans.recordFailure('10.0.0.1', 'bob', { threshold: 3, banSeconds: 60 }),
    () => state.bans.list(),
    () => state.bans.lift('10.0.0.1'),
    () => state.kicks.send('r1', { sessionId: 'a', reason: 'x' }),
    () => state.usage.get('alice'),
    () => state.usage.set('alice', { bytes: 0, files: 0 }),
    () => state.usage.reserve('alice', 'u1', 100, { bytes: 1000 }, 60_000),
    () => state.usage.apply('alice', { bytes: 100, files: 1 }, 'u1'),
    () => state.usage.release('alice', 'u1'),
    () => state.budgets.take({ user: 'alice', direction: 'upload', replicaId: 'r1', want: 100, bytesPerSecond: 100, burstMs: 1000, dailyBytes: 0 }),
    () => state.budgets.refund('alice', 'upload', 100, '2024-01-01'),
    () => state.budgets.today('alice'),
  ];
  for (const call of calls) await assert.rejects(call());
  assert.ok(Date.now() - started < 2000, `rejected within ${Date.now() - started} ms`);
  await state.close();
});

test('redis: calls reject during an outage and work again once Redis is back', async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  const state = await make({ url: proxy.url, prefix: newPrefix() });
  const policy = { threshold: 2, banSeconds: 60 };
  assert.equal((await state.bans.recordFailure('10.2.2.2', 'bob', policy)).failures, 1);
  assert.equal(state.available(), true);

  await proxy.cut();
  const started = Date.now();
  await assert.rejects(state.bans.isBanned('10.2.2.2'));
  await assert.rejects(state.sessions.list());
  assert.ok(Date.now() - started < 2000);
  assert.equal(state.available(), false, 'readiness follows the connection');

  await proxy.reopen();
  const deadline = Date.now() + 10_000;
  let banned: { banned: boolean; failures: number } | undefined;
  while (!banned && Date.now() < deadline) {
    banned = await state.bans.recordFailure('10.2.2.2', 'bob', policy).catch(() => undefined);
    if (!banned) await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(banned, { banned: true, failures: 2 }, 'state kept in Redis is there after the reconnect');
  assert.equal(state.available(), true);
  await state.close();
  await proxy.cut();
});

test('redis: a kick listener hears kicks again after Redis was away, and one started during the outage subscribes once it is back', async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  try {
    const prefix = newPrefix();
    const listener = await make({ url: proxy.url, prefix });
    const sender = await make({ prefix }); // straight to Redis: it stays connected
    const heard: string[] = [];
    const arrived = async (list: string[], id: string) => {
      const deadline = Date.now() + 5000;
      while (!list.includes(id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(list.includes(id), `kick ${id} did not arrive`);
    };
    await listener.kicks.listen('r1', (kick) => heard.push(kick.sessionId ?? ''));
    assert.equal(await sender.kicks.send('r1', { sessionId: 'before', reason: 'x' }), 1);
    await arrived(heard, 'before');

    await proxy.cut();
    const late: string[] = [];
    const stopLate = await listener.kicks.listen('r2', (kick) => late.push(kick.sessionId ?? ''));
    assert.equal(await sender.kicks.send('r1', { sessionId: 'lost', reason: 'x' }), 0, 'nobody listens while cut off');
    await proxy.reopen();
    const subscribed = async (replica: string) => (await sender.kicks.send(replica, { sessionId: 'probe', reason: 'x' })) === 1;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !((await subscribed('r1')) && (await subscribed('r2')))) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await sender.kicks.send('r1', { sessionId: 'after', reason: 'x' }), 1, 'subscribed again after the reconnect');
    assert.equal(await sender.kicks.send('r2', { sessionId: 'after', reason: 'x' }), 1, 'the listener started meanwhile subscribed');
    await arrived(heard, 'after');
    await arrived(late, 'after');
    assert.deepEqual(heard.filter((id) => id !== 'probe'), ['before', 'after']);
    await stopLate();
    await listener.close();
    assert.equal(await sender.kicks.send('r1', { sessionId: 'closed', reason: 'x' }), 0, 'close() ends the subscriber connections');
  } finally {
    await proxy.cut();
  }
});

test('redis: a connection passed in stays open after close()', async () => {
  const prefix = newPrefix();
  const client = new Redis(REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  try {
    const state = await make({ redis: client, prefix });
    assert.equal(state.kind, 'redis');
    assert.equal(await state.bans.isBanned('10.0.0.1'), false);
    await state.close();
    assert.equal(await client.ping(), 'PONG');
  } finally {
    await client.quit();
  }
});
