// The chaos run's pure parts: the seeded schedule, the memory-growth rule, the ledger's per-file contents.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { contentSha256, uniqueContent } from '../load/src/ledger';
import { judgeGrowth, type ProcessSeries } from './monitor';
import { FAULT_KINDS, planFaults, type ScheduleOptions } from './schedule';

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
