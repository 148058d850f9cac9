import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { Worker } from 'bullmq';
import { LockLostError, watchJobLocks } from './lockWatch';

const watch = (lockMs: number) => {
  const worker = new EventEmitter();
  const lost: string[] = [];
  const locks = watchJobLocks(worker as unknown as Pick<Worker, 'on'>, { lockMs, onLost: (id, reason) => lost.push(`${id}: ${reason}`) });
  return { worker, lost, locks };
};

test('lock watch: renewals keep a run going; no renewal for 90 % of the lock stops it, once, with a LockLostError', async () => {
  const { worker, lost, locks } = watch(1000);
  const run = locks.track('a');
  for (let i = 0; i < 4; i++) {
    await sleep(400);
    worker.emit('locksRenewed', { count: 1, jobIds: ['a'] });
  }
  assert.equal(run.signal.aborted, false, 'renewed every 400 ms: still ours after 1.6 s');
  await sleep(1000);
  assert.ok(run.signal.aborted);
  assert.ok(run.signal.reason instanceof LockLostError);
  assert.equal(lost.length, 1);
  assert.match(lost[0], /^a: not renewed for 900 ms/);
  run.release();
});

test('lock watch: a refused renewal stops the run; a refusal right after a run started is an older run\'s; a second run of a job stops the first', async () => {
  const { worker, lost, locks } = watch(2000);
  const first = locks.track('a');
  worker.emit('lockRenewalFailed', ['a']);
  assert.equal(first.signal.aborted, false, 'within lockMs/4 of the start: not this run\'s renewal');
  const second = locks.track('a');
  assert.ok(first.signal.aborted, 'handed the job again: the older run lost its lock');
  await sleep(600);
  worker.emit('lockRenewalFailed', ['a', 'unknown']);
  assert.ok(second.signal.aborted);
  assert.deepEqual(lost.map((l) => l.split(':')[0]), ['a', 'a']);
  first.release();
  second.release();
  const third = locks.track('b');
  third.release();
  worker.emit('lockRenewalFailed', ['b']);
  assert.equal(third.signal.aborted, false, 'a released run is not watched any more');
});
