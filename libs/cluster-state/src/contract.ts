import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ByteTake, ClusterState, SessionKick, SessionRecord } from './types';
import { utcDay } from './windows';

/** A fresh session record for tests. */
export const record = (id: string, clientAddress = '10.0.0.1'): SessionRecord => ({
  id,
  replicaId: 'r1',
  clientAddress,
  startedAt: 0,
  bytesIn: 0,
  bytesOut: 0,
});

/**
 * Behaviour every ClusterState implementation must show. The in-memory and the Redis implementation run the same
 * cases. `make` gets a clock it must use for expiry; `advance` moves it.
 */
export function clusterStateContract(
  name: string,
  make: (range: { min: number; max: number }, clock: { now: () => number }) => Promise<ClusterState>,
) {
  const setup = async (range = { min: 40000, max: 40003 }) => {
    let t = 1_000_000;
    const clock = { now: () => t };
    const state = await make(range, clock);
    return { state, now: clock.now, advance: (ms: number) => (t += ms) };
  };

  test(`${name}: admission enforces total and per-address limits`, async () => {
    const { state } = await setup();
    const limits = { maxSessions: 3, maxPerAddress: 2 };
    assert.deepEqual(await state.sessions.open(record('a'), limits), { ok: true });
    assert.deepEqual(await state.sessions.open(record('b'), limits), { ok: true });
    assert.deepEqual(await state.sessions.open(record('c'), limits), { ok: false, reason: 'max-per-address' });
    assert.deepEqual(await state.sessions.open(record('d', '10.0.0.2'), limits), { ok: true });
    assert.deepEqual(await state.sessions.open(record('e', '10.0.0.3'), limits), { ok: false, reason: 'max-sessions' });
    await state.sessions.close('a');
    assert.deepEqual(await state.sessions.open(record('e', '10.0.0.3'), limits), { ok: true });
    await state.close();
  });

  test(`${name}: concurrent admissions never exceed the limit`, async () => {
    const { state } = await setup();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => state.sessions.open(record(`s${i}`), { maxSessions: 5, maxPerAddress: 0 })),
    );
    assert.equal(results.filter((r) => r.ok).length, 5);
    await state.close();
  });

  test(`${name}: per-user limit, rebinding and listing`, async () => {
    const { state } = await setup();
    const limits = { maxSessions: 0, maxPerAddress: 0 };
    for (const id of ['a', 'b', 'c']) await state.sessions.open(record(id), limits);
    const two = { maxPerUser: 2 };
    assert.deepEqual(await state.sessions.bindUser('a', 'alice', two), { ok: true });
    assert.deepEqual(await state.sessions.bindUser('b', 'alice', two), { ok: true });
    assert.deepEqual(await state.sessions.bindUser('c', 'alice', two), { ok: false, reason: 'max-per-user' });
    assert.deepEqual(await state.sessions.bindUser('gone', 'alice', two), { ok: false, reason: 'gone' }, 'an unknown session cannot bind');
    await state.sessions.unbindUser('a');
    assert.deepEqual(await state.sessions.bindUser('c', 'alice', two), { ok: true });
    assert.equal(await state.sessions.update('c', { command: 'RETR', bytesOut: 42 }), true);
    assert.equal(await state.sessions.update('no-such-session', { command: 'RETR' }), false, 'a lost record is reported');
    const c = (await state.sessions.list()).find((r) => r.id === 'c');
    assert.equal(c?.user, 'alice');
    assert.equal(c?.bytesOut, 42);
    assert.equal(c?.command, 'RETR');
    await state.close();
  });

  test(`${name}: passive leases are per (port, address) and never shared by one address`, async () => {
    const { state } = await setup({ min: 40000, max: 40001 });
    const ask = (sessionId: string, clientAddress: string) =>
      state.ports.lease({ sessionId, replicaId: 'r1', relayAddress: '10.1.0.1:2122', clientAddress, ttlMs: 60_000 });
    const a1 = await ask('a1', '10.0.0.1');
    const a2 = await ask('a2', '10.0.0.1');
    assert.ok(a1 && a2);
    assert.notEqual(a1.port, a2.port);
    assert.equal(await ask('a3', '10.0.0.1'), null, 'two ports, third lease for the same address must fail');
    const b1 = await ask('b1', '10.0.0.2');
    assert.ok(b1, 'another address can share the ports');
    const found = await state.ports.find(b1.port, '10.0.0.2');
    assert.equal(found?.sessionId, 'b1');
    assert.equal(found?.relayAddress, '10.1.0.1:2122', 'a peer learns where to relay the connection');
    assert.equal(await state.ports.find(b1.port, '10.0.0.9'), null);
    assert.equal(await state.ports.inUse(), 3);
    await state.ports.release(a1);
    assert.ok(await ask('a3', '10.0.0.1'));
    await state.close();
  });

  test(`${name}: a lease keeps its relay token, which peers read back with find`, async () => {
    const { state } = await setup({ min: 40000, max: 40001 });
    const request = { replicaId: 'r1', relayAddress: '10.1.0.1:2122', clientAddress: '10.0.0.1', ttlMs: 60_000 };
    const a = await state.ports.lease({ ...request, sessionId: 'a', relayToken: 'token-of-a' });
    const b = await state.ports.lease({ ...request, sessionId: 'b', relayToken: 'token-of-b' });
    assert.ok(a && b);
    assert.equal(a.relayToken, 'token-of-a');
    assert.equal((await state.ports.find(a.port, '10.0.0.1'))?.relayToken, 'token-of-a');
    assert.equal((await state.ports.find(b.port, '10.0.0.1'))?.relayToken, 'token-of-b', 'each lease has its own');
    await state.ports.release(a);
    const c = await state.ports.lease({ ...request, sessionId: 'c' });
    assert.equal(c?.relayToken, '', 'a lease asked for without a token has none');
    assert.equal((await state.ports.find(c!.port, '10.0.0.1'))?.relayToken, '');
    await state.close();
  });

  test(`${name}: a relayed connection's clean end, recorded by the relaying replica, is seen by the owner`, async () => {
    const { state } = await setup({ min: 40000, max: 40001 });
    assert.equal(await state.ports.relayEnded('relay-1'), false, 'nothing recorded yet (a relaying replica that died)');
    await state.ports.markRelayEnded('relay-1');
    assert.equal(await state.ports.relayEnded('relay-1'), true);
    assert.equal(await state.ports.relayEnded('relay-2'), false, 'per relayed connection');
    await state.close();
  });

  test(`${name}: a wildcard lease holds its port for every address`, async () => {
    const { state } = await setup({ min: 40000, max: 40000 });
    const any = await state.ports.lease({ sessionId: 'w', replicaId: 'r1', relayAddress: '10.1.0.1:2122', clientAddress: '*', ttlMs: 60_000 });
    assert.ok(any);
    assert.equal((await state.ports.find(40000, '10.9.9.9'))?.sessionId, 'w');
    assert.equal(await state.ports.lease({ sessionId: 'x', replicaId: 'r1', relayAddress: '10.1.0.1:2122', clientAddress: '10.0.0.1', ttlMs: 60_000 }), null);
    await state.close();
  });

  test(`${name}: leases of a crashed owner expire and are reused`, async () => {
    const { state, advance } = await setup({ min: 40000, max: 40000 });
    const first = await state.ports.lease({ sessionId: 'dead', replicaId: 'r1', relayAddress: '10.1.0.1:2122', clientAddress: '10.0.0.1', ttlMs: 1000 });
    assert.ok(first);
    advance(1001);
    assert.equal(await state.ports.find(40000, '10.0.0.1'), null);
    const again = await state.ports.lease({ sessionId: 'new', replicaId: 'r2', relayAddress: '10.1.0.2:2122', clientAddress: '10.0.0.1', ttlMs: 1000 });
    assert.equal(again?.port, 40000);
    await state.ports.release(first); // a late release by the old owner must not free the new lease
    assert.equal((await state.ports.find(40000, '10.0.0.1'))?.sessionId, 'new');
    await state.close();
  });

  test(`${name}: failed logins ban an address for a while`, async () => {
    const { state, advance } = await setup();
    const policy = { threshold: 3, banSeconds: 60 };
    assert.equal((await state.bans.recordFailure('10.0.0.1', 'bob', policy)).banned, false);
    assert.equal((await state.bans.recordFailure('10.0.0.1', 'carol', policy)).banned, false);
    assert.equal(await state.bans.isBanned('10.0.0.1'), false);
    assert.equal(await state.bans.active(), 0);
    assert.equal((await state.bans.recordFailure('10.0.0.1', 'bob', policy)).banned, true, 'failures against any user add up per address');
    assert.equal(await state.bans.isBanned('10.0.0.1'), true);
    assert.equal(await state.bans.isBanned('10.0.0.2'), false);
    assert.equal(await state.bans.active(), 1);
    advance(30_000);
    for (let i = 0; i < 3; i++) await state.bans.recordFailure('10.0.0.2', 'bob', policy);
    assert.equal(await state.bans.active(), 2, 'bans in force are counted');
    advance(31_000);
    assert.equal(await state.bans.isBanned('10.0.0.1'), false);
    assert.equal(await state.bans.active(), 1, 'an ended ban is no longer counted');
    await state.close();
  });

  test(`${name}: a ban does not reset the count, and a login forgives only its own user's failures`, async () => {
    const { state } = await setup();
    const policy = { threshold: 4, banSeconds: 60 };
    for (let i = 0; i < 4; i++) await state.bans.recordFailure('10.0.0.5', 'victim', policy);
    assert.equal(await state.bans.isBanned('10.0.0.5'), true);
    // A connection opened before the ban fails again: the count goes on from where it was (it is not reset to 1).
    assert.equal((await state.bans.recordFailure('10.0.0.5', 'victim', policy)).failures, 5);

    // A login is the session's bindUser: it forgives the failures of the account that logged in, from that address.
    const login = async (id: string, user: string) => {
      assert.deepEqual(await state.sessions.open(record(id, '10.0.0.3'), { maxSessions: 0, maxPerAddress: 0 }), { ok: true });
      assert.deepEqual(await state.sessions.bindUser(id, user, { maxPerUser: 0 }), { ok: true });
    };
    await state.bans.recordFailure('10.0.0.3', 'victim', policy);
    await state.bans.recordFailure('10.0.0.3', 'victim', policy);
    await state.bans.recordFailure('10.0.0.3', 'mallory', policy);
    await state.bans.recordFailure('10.0.0.4', 'victim', policy);
    await login('m1', 'mallory'); // the attacker logs in with an account of its own
    assert.equal((await state.bans.recordFailure('10.0.0.3', 'victim', policy)).failures, 3, "the victim's failures stay");
    await login('v1', 'victim'); // the real partner logs in after typos
    assert.equal((await state.bans.recordFailure('10.0.0.3', 'victim', policy)).failures, 1, 'its own failures are forgiven');
    assert.equal((await state.bans.recordFailure('10.0.0.4', 'victim', policy)).failures, 2, "another address's failures stay");
    await login('n1', 'nobody'); // nothing to forgive
    assert.equal((await state.bans.recordFailure('10.0.0.3', 'other', policy)).failures, 2);
    await state.close();
  });

  test(`${name}: a new connection from a banned address is refused by open, until the ban ends`, async () => {
    const { state, advance } = await setup();
    const limits = { maxSessions: 0, maxPerAddress: 0 };
    for (let i = 0; i < 2; i++) await state.bans.recordFailure('10.0.0.6', 'bob', { threshold: 2, banSeconds: 60 });
    assert.deepEqual(await state.sessions.open(record('x', '10.0.0.6'), limits), { ok: false, reason: 'banned' });
    assert.deepEqual(await state.sessions.open(record('y', '10.0.0.7'), limits), { ok: true }, 'other addresses are not affected');
    assert.deepEqual(await state.sessions.list().then((all) => all.map((r) => r.id)), ['y'], 'the refused one is not registered');
    advance(60_001);
    assert.deepEqual(await state.sessions.open(record('x', '10.0.0.6'), limits), { ok: true });
    await state.close();
  });

  test(`${name}: a record carries its protocol, and a heartbeat updates it with the running transfer's bytes`, async () => {
    const { state } = await setup();
    const limits = { maxSessions: 0, maxPerAddress: 0 };
    await state.sessions.open({ ...record('p'), protocol: 'ftp' }, limits);
    await state.sessions.open({ ...record('q'), protocol: 'sftp' }, limits);
    const transfer = { direction: 'upload' as const, path: '/in/big.bin', startedAt: 5, bytes: 123_456_789_012 };
    assert.equal(await state.sessions.update('p', { protocol: 'ftps', command: 'STOR', transfer }), true);
    const byId = new Map((await state.sessions.list()).map((r) => [r.id, r]));
    assert.equal(byId.get('p')?.protocol, 'ftps', 'an FTP session turns ftps after AUTH TLS');
    assert.deepEqual(byId.get('p')?.transfer, transfer, 'byte counts beyond 32 bits survive');
    assert.equal(byId.get('q')?.protocol, 'sftp');
    assert.equal(await state.sessions.update('p', { transfer: undefined }), true);
    assert.equal((await state.sessions.list()).find((r) => r.id === 'p')?.transfer, undefined, 'a finished transfer leaves the record');
    await state.close();
  });

  test(`${name}: bans are listed cluster-wide and one can be lifted, forgetting its failures`, async () => {
    const { state, advance } = await setup();
    const policy = { threshold: 2, banSeconds: 60 };
    for (let i = 0; i < 2; i++) await state.bans.recordFailure('10.0.0.8', 'bob', policy);
    advance(10_000);
    for (let i = 0; i < 2; i++) await state.bans.recordFailure('10.0.0.9', 'bob', policy);
    await state.bans.recordFailure('10.0.0.10', 'bob', policy); // one failure: not banned
    assert.deepEqual(await state.bans.list(), [
      { address: '10.0.0.8', until: 1_000_000 + 60_000 },
      { address: '10.0.0.9', until: 1_000_000 + 70_000 },
    ]);
    assert.equal(await state.bans.lift('10.0.0.8'), true);
    assert.equal(await state.bans.lift('10.0.0.8'), false, 'nothing left to lift');
    assert.equal(await state.bans.lift('10.0.0.10'), false, 'failures alone are no ban');
    assert.equal(await state.bans.isBanned('10.0.0.8'), false);
    assert.deepEqual(await state.sessions.open(record('back', '10.0.0.8'), { maxSessions: 0, maxPerAddress: 0 }), { ok: true });
    assert.equal((await state.bans.recordFailure('10.0.0.8', 'bob', policy)).failures, 1, 'the failures went with the ban');
    assert.equal(await state.bans.active(), 1);
    advance(60_001);
    assert.deepEqual(await state.bans.list(), [], 'ended bans are not listed');
    await state.close();
  });

  test(`${name}: a kick reaches the replica it is sent to, or every replica with '*', until it stops listening`, async () => {
    const { state } = await setup();
    const heard: Record<string, SessionKick[]> = { r1: [], r2: [] };
    const stop1 = await state.kicks.listen('r1', (kick) => heard.r1.push(kick));
    const stop2 = await state.kicks.listen('r2', (kick) => heard.r2.push(kick));
    assert.equal(await state.kicks.send('r1', { sessionId: 's1', reason: 'ended by an administrator', by: 'ops' }), 1);
    assert.equal(await state.kicks.send('*', { user: 'alice', reason: 'user disabled' }), 2);
    assert.equal(await state.kicks.send('r9', { sessionId: 's9', reason: 'x' }), 0, 'no replica r9 listens');
    await waitUntil(() => heard.r1.length === 2 && heard.r2.length === 1);
    const [first] = heard.r1;
    assert.deepEqual([first.sessionId, first.user, first.reason, first.by], ['s1', undefined, 'ended by an administrator', 'ops']);
    assert.equal(heard.r2[0].user, 'alice');
    await stop1();
    assert.equal(await state.kicks.send('r1', { sessionId: 's2', reason: 'x' }), 0);
    await stop2();
    await state.close();
  });

  test(`${name}: pre-login sessions are capped per address until they log in`, async () => {
    const { state } = await setup();
    const limits = { maxSessions: 0, maxPerAddress: 0, maxUnauthenticatedPerAddress: 2 };
    assert.deepEqual(await state.sessions.open(record('a'), limits), { ok: true });
    assert.deepEqual(await state.sessions.open(record('b'), limits), { ok: true });
    assert.deepEqual(await state.sessions.open(record('c'), limits), { ok: false, reason: 'max-unauthenticated' });
    assert.deepEqual(await state.sessions.open(record('c', '10.0.0.9'), limits), { ok: true }, 'other addresses are not affected');
    assert.deepEqual(await state.sessions.bindUser('a', 'alice', { maxPerUser: 0 }), { ok: true });
    assert.equal(await state.sessions.update('a', { command: 'NOOP' }), true, 'a heartbeat does not put a logged-in session back');
    assert.deepEqual(await state.sessions.open(record('d'), limits), { ok: true }, 'a login frees its pre-login slot');
    assert.deepEqual(await state.sessions.open(record('e'), limits), { ok: false, reason: 'max-unauthenticated' });
    await state.sessions.close('b');
    assert.deepEqual(await state.sessions.open(record('e'), limits), { ok: true }, 'a closed session frees its slot');
    await state.close();
  });

  test(`${name}: new sessions per minute from one address are limited; only admitted ones count`, async () => {
    const { state, advance } = await setup();
    const limits = { maxSessions: 0, maxPerAddress: 0, sessionsPerMinutePerAddress: 3 };
    for (const id of ['a', 'b', 'c']) assert.deepEqual(await state.sessions.open(record(id), limits), { ok: true });
    assert.deepEqual(await state.sessions.open(record('d'), limits), { ok: false, reason: 'address-rate' });
    assert.deepEqual(await state.sessions.open(record('d', '10.0.0.2'), limits), { ok: true }, 'other addresses are not affected');
    await state.sessions.close('a');
    assert.deepEqual(await state.sessions.open(record('e'), limits), { ok: false, reason: 'address-rate' }, 'a rate, not a count of open sessions');
    advance(30_000);
    for (let i = 0; i < 5; i++) assert.equal((await state.sessions.open(record(`x${i}`), limits)).ok, false);
    advance(30_001); // a, b, c leave the window; the refused attempts never entered it
    for (const id of ['f', 'g', 'h']) assert.deepEqual(await state.sessions.open(record(id), limits), { ok: true });
    assert.deepEqual(await state.sessions.open(record('i'), limits), { ok: false, reason: 'address-rate' });
    assert.deepEqual(await state.sessions.open(record('j'), { maxSessions: 0, maxPerAddress: 0 }), { ok: true }, 'no rate, no limit');
    await state.close();
  });

  test(`${name}: logins per minute of one user are limited; only successful binds count`, async () => {
    const { state, advance } = await setup();
    for (const id of ['a', 'b', 'c', 'd']) await state.sessions.open(record(id), { maxSessions: 0, maxPerAddress: 0 });
    const limits = { maxPerUser: 0, sessionsPerMinute: 2 };
    assert.deepEqual(await state.sessions.bindUser('a', 'alice', limits), { ok: true });
    assert.deepEqual(await state.sessions.bindUser('b', 'alice', limits), { ok: true });
    assert.deepEqual(await state.sessions.bindUser('c', 'alice', limits), { ok: false, reason: 'user-rate' });
    assert.deepEqual(await state.sessions.bindUser('c', 'bob', limits), { ok: true }, 'other users are not affected');
    await state.sessions.unbindUser('a');
    assert.deepEqual(await state.sessions.bindUser('a', 'alice', limits), { ok: true }, 'a second login in one session does not count itself');
    assert.deepEqual(await state.sessions.bindUser('d', 'alice', { maxPerUser: 2, sessionsPerMinute: 2 }), { ok: false, reason: 'max-per-user' });
    assert.deepEqual(await state.sessions.bindUser('gone', 'alice', limits), { ok: false, reason: 'gone' });
    advance(30_000);
    assert.equal(await state.sessions.update('d', {}), true); // heartbeat: sessions outlive the rate window
    advance(30_001);
    assert.deepEqual(await state.sessions.bindUser('d', 'alice', limits), { ok: true });
    await state.close();
  });

  test(`${name}: usage is unknown until set; a scan's result is set once with ifAbsent`, async () => {
    const { state } = await setup();
    assert.equal(await state.usage.get('bob'), null);
    assert.equal(await state.usage.reserve('bob', 'u1', 100, { bytes: 1000 }, 60_000), 0, 'no record: nothing granted until a scan');
    await state.usage.apply('bob', { bytes: 10, files: 1 });
    assert.equal(await state.usage.get('bob'), null, 'apply creates no record');
    await state.usage.set('bob', { bytes: 10, files: 1 }, { ifAbsent: true });
    await state.usage.set('bob', { bytes: 20, files: 2 }, { ifAbsent: true }); // a second scan racing the first
    assert.deepEqual(await state.usage.get('bob'), { bytes: 10, files: 1 });
    await state.usage.set('bob', { bytes: 30, files: 3 });
    assert.deepEqual(await state.usage.get('bob'), { bytes: 30, files: 3 }, 'a rescan replaces');
    await state.close();
  });

  test(`${name}: reservations of one user's uploads on two replicas never cross the quota`, async () => {
    const { state } = await setup();
    await state.usage.set('alice', { bytes: 600, files: 3 });
    const quota = { bytes: 1000 };
    // Uploads u1 and u2 (on different replicas) reserve in chunks until the quota is full.
    let granted = 0;
    for (let i = 0; i < 10; i++) {
      granted += await state.usage.reserve('alice', 'u1', 70, quota, 60_000);
      granted += await state.usage.reserve('alice', 'u2', 70, quota, 60_000);
    }
    assert.equal(granted, 400);
    const racing = await Promise.all(Array.from({ length: 10 }, (_, i) => state.usage.reserve('alice', `r${i}`, 50, quota, 60_000)));
    assert.deepEqual(racing, Array(10).fill(0), 'nothing left for anyone');
    assert.equal(await state.usage.reserve('alice', 'u3', 300, { bytes: 1000, credit: 200 }, 60_000), 200, 'an overwrite counts the size it replaces');
    assert.equal(await state.usage.reserve('alice', 'u4', 5000, { bytes: 0 }, 60_000), 5000, 'no byte quota: everything');
    assert.deepEqual(await state.usage.get('alice'), { bytes: 600, files: 3 }, 'reservations are not usage');
    await state.close();
  });

  test(`${name}: a reservation not renewed within its TTL stops counting`, async () => {
    const { state, advance } = await setup();
    await state.usage.set('carol', { bytes: 0, files: 0 });
    const quota = { bytes: 1000 };
    assert.equal(await state.usage.reserve('carol', 'dead', 800, quota, 10_000), 800);
    assert.equal(await state.usage.reserve('carol', 'live', 800, quota, 10_000), 200);
    advance(6_000);
    assert.equal(await state.usage.reserve('carol', 'live', 0, quota, 10_000), 0, 'a renewal with nothing more wanted');
    advance(4_001); // 'dead' was last renewed 10.001 s ago, 'live' 4.001 s ago
    assert.equal(await state.usage.reserve('carol', 'live', 800, quota, 10_000), 800, "the dead replica's reservation is gone");
    assert.equal(await state.usage.reserve('carol', 'other', 1, quota, 10_000), 0, "the live one's is not");
    await state.close();
  });

  test(`${name}: apply turns a reservation into usage, release drops one, usage never goes below 0`, async () => {
    const { state } = await setup();
    await state.usage.set('dave', { bytes: 0, files: 0 });
    const quota = { bytes: 1000 };
    assert.equal(await state.usage.reserve('dave', 'u1', 500, quota, 60_000), 500);
    assert.equal(await state.usage.reserve('dave', 'u2', 400, quota, 60_000), 400);
    await state.usage.apply('dave', { bytes: 450, files: 1 }, 'u1'); // the upload was 450 bytes in the end
    assert.deepEqual(await state.usage.get('dave'), { bytes: 450, files: 1 });
    assert.equal(await state.usage.reserve('dave', 'u3', 1000, quota, 60_000), 150, '1000 - 450 used - 400 of u2');
    await state.usage.release('dave', 'u2'); // u2 failed
    assert.equal(await state.usage.reserve('dave', 'u3', 1000, quota, 60_000), 400);
    await state.usage.apply('dave', { bytes: -10_000, files: -5 });
    assert.deepEqual(await state.usage.get('dave'), { bytes: 0, files: 0 });
    await state.close();
  });

  const take = (over: Partial<ByteTake>): ByteTake => ({
    user: 'erin',
    direction: 'download',
    replicaId: 'r1',
    want: 1000,
    bytesPerSecond: 0,
    burstMs: 1000,
    dailyBytes: 0,
    ...over,
  });

  test(`${name}: a bandwidth bucket shared by two replicas grants at most rate × time + one burst`, async () => {
    const { state, advance } = await setup();
    const rate = { bytesPerSecond: 10_000, burstMs: 500 }; // one burst: 5000 bytes
    const first = await state.budgets.take(take({ ...rate, want: 8000 }));
    assert.deepEqual([first.granted, first.limitedBy], [5000, 'bandwidth'], 'a full bucket holds one burst');
    assert.equal(first.retryAfterMs, 500, 'until a full burst is back');
    let granted = first.granted;
    let elapsed = 0;
    for (let i = 0; i < 300; i++) {
      const step = ((i * 37) % 90) + 5;
      advance(step);
      elapsed += step;
      const grant = await state.budgets.take(take({ ...rate, want: 700, replicaId: i % 2 ? 'r1' : 'r2' }));
      if (grant.granted < 700) {
        assert.equal(grant.limitedBy, 'bandwidth');
        assert.ok(grant.retryAfterMs! > 0);
      }
      granted += grant.granted;
    }
    const refill = (rate.bytesPerSecond * elapsed) / 1000;
    assert.ok(granted <= refill + 5000, `granted ${granted} within ${refill} + 5000`);
    assert.ok(granted >= refill, `granted ${granted} keeps up with the rate (${refill})`);
    // Drained: the retry time is when the wanted bytes are back, and then they are there.
    const short = await state.budgets.take(take({ ...rate, want: 2000 }));
    assert.equal(short.limitedBy, 'bandwidth');
    advance(short.retryAfterMs!);
    assert.equal((await state.budgets.take(take({ ...rate, want: 2000 }))).granted, 2000);
    await state.close();
  });

  test(`${name}: a daily volume stops transfers for the day, and a refund gives bytes back`, async () => {
    const { state, now } = await setup();
    const daily = { dailyBytes: 10_000 };
    assert.equal((await state.budgets.take(take({ ...daily, want: 4000 }))).granted, 4000);
    assert.equal((await state.budgets.take(take({ ...daily, want: 4000, replicaId: 'r2' }))).granted, 4000);
    assert.deepEqual(await state.budgets.take(take({ ...daily, want: 4000 })), { granted: 2000, limitedBy: 'daily', replicas: 2 });
    assert.deepEqual(await state.budgets.take(take({ ...daily, want: 4000 })), { granted: 0, limitedBy: 'daily', replicas: 2 });
    assert.deepEqual(await state.budgets.today('erin'), { upload: 0, download: 10_000 });
    await state.budgets.refund('erin', 'download', 1500, utcDay(now())); // a transfer ended early
    assert.deepEqual(await state.budgets.today('erin'), { upload: 0, download: 8500 });
    assert.deepEqual(await state.budgets.take(take({ ...daily, want: 4000 })), { granted: 1500, limitedBy: 'daily', replicas: 2 });
    assert.equal((await state.budgets.take(take({ ...daily, direction: 'upload', want: 4000 }))).granted, 4000, 'each direction has its own');
    // A refund into the bucket is capped at one burst.
    const rate = { bytesPerSecond: 1000, burstMs: 1000 };
    assert.equal((await state.budgets.take(take({ ...rate, user: 'frank', want: 1000 }))).granted, 1000);
    await state.budgets.refund('frank', 'download', 5000, utcDay(now()));
    assert.equal((await state.budgets.take(take({ ...rate, user: 'frank', want: 5000 }))).granted, 1000);
    assert.deepEqual(await state.budgets.today('frank'), { upload: 0, download: 1000 }, 'counted without a daily limit too; a refund floors at 0');
    await state.close();
  });

  test(`${name}: daily volumes start again at midnight UTC`, async () => {
    const { state, now, advance } = await setup();
    const daily = { dailyBytes: 3000, want: 3000 };
    const day1 = utcDay(now());
    assert.equal((await state.budgets.take(take(daily))).granted, 3000);
    advance(Date.UTC(1970, 0, 2) - now() - 1); // 23:59:59.999
    assert.equal((await state.budgets.take(take(daily))).limitedBy, 'daily');
    advance(1);
    assert.equal(utcDay(now()), '1970-01-02');
    assert.deepEqual(await state.budgets.today('erin'), { upload: 0, download: 0 });
    assert.equal((await state.budgets.take(take({ ...daily, want: 1000 }))).granted, 1000);
    await state.budgets.refund('erin', 'download', 3000, day1); // a transfer that began yesterday
    assert.deepEqual(await state.budgets.today('erin'), { upload: 0, download: 1000 }, "yesterday's refund leaves today alone");
    await state.close();
  });

  test(`${name}: a take counts the replicas that took for the user and direction in the last 2 s`, async () => {
    const { state, advance } = await setup();
    assert.equal((await state.budgets.take(take({ replicaId: 'r1' }))).replicas, 1);
    assert.equal((await state.budgets.take(take({ replicaId: 'r2' }))).replicas, 2);
    assert.equal((await state.budgets.take(take({ replicaId: 'r3', direction: 'upload' }))).replicas, 1, 'per direction');
    assert.equal((await state.budgets.take(take({ replicaId: 'r3', user: 'other' }))).replicas, 1, 'per user');
    advance(1500);
    assert.equal((await state.budgets.take(take({ replicaId: 'r1' }))).replicas, 2);
    advance(600); // r2 last took 2.1 s ago
    assert.equal((await state.budgets.take(take({ replicaId: 'r1' }))).replicas, 1);
    await state.close();
  });
}

/** Polls `done` every 10 ms for up to 2 s (kicks arrive asynchronously). */
async function waitUntil(done: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('condition not met within 2 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
