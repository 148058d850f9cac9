// The chaos run's pure parts: the seeded schedule, the memory-growth rule, the ledger's per-file contents, the
// per-user session limits and their check.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { contentSha256, uniqueContent } from '../load/src/ledger';
import { judgeGrowth, type ProcessSeries } from './monitor';
import { limitRefusals, sessionLimitLines } from './report';
import * as scenario from './scenario';
import { FAULT_KINDS, planFaults, type ScheduleOptions } from './schedule';
import { SESSION_MARGIN, USERS, sessionLimits } from './users';

const options: ScheduleOptions = {
  durationMs: 600_000,
  seed: 42,
  kinds: FAULT_KINDS,
  replicas: 3,
  workers: 2,
  every: { min: 6000, max: 10_000 },
  stopMs: 65_000,
  diskFullMs: 5000,
  warmupMs: 5000,
  quietMs: 8000,
};

test('schedule: the same seed gives the same faults; another seed others; every kind appears once at least', () => {
  const a = planFaults(options);
  assert.deepEqual(planFaults(options), a);
  assert.notDeepEqual(planFaults({ ...options, seed: 43 }).faults, a.faults);
  assert.deepEqual(new Set(a.faults.map((f) => f.kind)), new Set(FAULT_KINDS));
  assert.equal(a.faults.filter((f) => f.kind === 'stop-replica').length, 1);
  assert.equal(a.faults.filter((f) => f.kind === 'disk-full').length, 1);
  assert.ok(a.faults.every((f) => f.at >= options.warmupMs && f.at <= options.durationMs - options.quietMs));
  assert.deepEqual(a.faults.map((f) => f.n), a.faults.map((_, i) => i + 1));
});

test('schedule: no replica fault hits the stopped replica while it is stopped; too short a run skips with a reason', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const { faults } = planFaults({ ...options, seed });
    const stop = faults.find((f) => f.kind === 'stop-replica')!;
    const during = faults.filter((f) => (f.kind === 'kill-replica' || f.kind === 'term-replica') && f.at >= stop.at - 15_000 && f.at <= stop.at + stop.holdMs! + 10_000);
    assert.ok(during.every((f) => f.target !== stop.target), `seed ${seed}`);
  }
  const short = planFaults({ ...options, durationMs: 35_000 });
  assert.ok(short.skipped.some((s) => s.startsWith('stop-replica')));
  assert.ok(!short.faults.some((f) => f.kind === 'stop-replica'));
});

const series = (values: [number, number][], everyMs = 2000): ProcessSeries => ({
  replica: 'edge-1',
  pid: 1,
  firstSeen: 0,
  samples: values.map(([mib, fds], i) => ({ t: i * everyMs, rssBytes: mib * 2 ** 20, fds })),
});

test('growth rule: a sawtooth or a plateau is bounded, a climb to more than twice the baseline is not, a short life is not judged', () => {
  const n = 60; // 2 minutes of samples
  const sawtooth = series(Array.from({ length: n }, (_, i) => [120 + (i % 5) * 25, 40 + (i % 3)]));
  assert.deepEqual(judgeGrowth(sawtooth).unbounded, []);
  assert.ok(judgeGrowth(sawtooth).judged);
  const plateau = series(Array.from({ length: n }, (_, i) => [i < 20 ? 100 : 260, 40]));
  assert.deepEqual(judgeGrowth(plateau).unbounded, [], 'grew once, then flat: not rising at the end');
  const leak = series(Array.from({ length: n }, (_, i) => [100 + i * 5, 40 + i * 2]));
  assert.deepEqual(judgeGrowth(leak).unbounded, ['rss', 'fds']);
  assert.equal(judgeGrowth(series(leak.samples.slice(0, 20).map((s) => [s.rssBytes / 2 ** 20, s.fds]))).judged, false);
});

test('ledger contents: reproducible from the key, any slice equal to the whole, different keys different bytes', () => {
  const a = uniqueContent('run/user/out/a.bin');
  const whole = a.at(0, 100_000);
  assert.ok(whole.equals(uniqueContent('run/user/out/a.bin').at(0, 100_000)));
  assert.ok(a.at(12_345, 777).equals(whole.subarray(12_345, 12_345 + 777)));
  assert.ok(!uniqueContent('run/user/out/b.bin').at(0, 64).equals(whole.subarray(0, 64)));
  assert.equal(contentSha256(a, 100_000), createHash('sha256').update(whole).digest('hex'));
  assert.equal(contentSha256(a, 40_000, 60_000), createHash('sha256').update(whole.subarray(60_000)).digest('hex'));
});

test('session limits: each user gets its VUs in the scenario plus the margin; a scenario without a fixed VU count is refused', () => {
  const limits = sessionLimits(scenario.options.scenarios, scenario);
  // ftp 3 + inbox 1 (both log in as pftp), ftps 2, sftp 3.
  assert.deepEqual(limits, { [USERS.ftp]: 4 + SESSION_MARGIN, [USERS.ftps]: 2 + SESSION_MARGIN, [USERS.sftp]: 3 + SESSION_MARGIN });
  const partners = { a: { login: { user: 'u' } } };
  assert.deepEqual(sessionLimits({ one: { executor: 'constant-vus', exec: 'a' }, two: { executor: 'constant-vus', vus: 2, exec: 'a' } }, partners, 1), { u: 4 });
  assert.throws(() => sessionLimits({ r: { executor: 'constant-arrival-rate', exec: 'a' } }, partners), /constant-vus/);
  assert.throws(() => sessionLimits({ r: { executor: 'constant-vus', exec: 'b' } }, partners), /no partner "b"/);
});

test("session limit check: the maxima per user against the limits, refusals from the edges' logs; one sample above fails, none checked fails", () => {
  const refusal = (user: string, reason = 'max-per-user') => ({ msg: 'login refused: too many sessions for this user', user, limit: 6, reason });
  const refused = limitRefusals([refusal('pftp'), refusal('pftp'), refusal('psftp'), refusal('pftp', 'gone'), { msg: 'login', user: 'pftp' }]);
  assert.deepEqual(refused, { pftp: 2, psftp: 1 });
  const limits = { pftp: 6, psftp: 5 };
  const samples = [
    { t: 0, live: { pftp: 4, psftp: 3 } },
    { t: 2000, live: { pftp: 6, psftp: 5 } },
    { t: 4000, live: { pftp: 5, psftp: 2 } },
  ];
  const ok = sessionLimitLines(samples, 1, limits, refused);
  assert.equal(ok.check.ok, true);
  assert.equal(ok.check.name, "no session exceeded its user's limits");
  assert.match(ok.check.detail, /^max live sessions per user pftp 6 \(limit 6\), psftp 5 \(limit 5\); 3 samples \(1 missed\); 3 login\(s\) refused for the user limit$/);
  assert.match(ok.lines[0], /pftp: max 6 live session\(s\) \(limit 6\) at \+2\.0 s; at the limit in 1 of 3 samples, above it in 0; 2 login\(s\) refused/);
  const above = sessionLimitLines([...samples, { t: 6000, live: { pftp: 7, psftp: 1 } }], 0, limits, {});
  assert.equal(above.check.ok, false);
  assert.match(above.check.detail, /EXCEEDED: pftp 7 > 6 in 1 sample\(s\), first at \+6\.0 s/);
  assert.equal(sessionLimitLines([], 15, limits, {}).check.ok, false, 'no sample: nothing was checked');
});
