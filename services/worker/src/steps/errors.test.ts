import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnrecoverableError } from 'bullmq';
import { isPermanent, PermanentStepError } from './errors';

test('PermanentStepError is a BullMQ UnrecoverableError, so the job is not retried', () => {
  const cause = new Error('root');
  const err = new PermanentStepError('webhook answered 400', { cause });
  assert.ok(err instanceof UnrecoverableError);
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'PermanentStepError');
  assert.equal(err.message, 'webhook answered 400');
  assert.equal(err.cause, cause);
  assert.match(err.stack ?? '', /PermanentStepError: webhook answered 400/);
});

test('isPermanent tells permanent errors from retryable ones', () => {
  assert.equal(isPermanent(new PermanentStepError('x')), true);
  assert.equal(isPermanent(new UnrecoverableError('x')), true);
  assert.equal(isPermanent(Object.assign(new Error('x'), { name: 'UnrecoverableError' })), true);
  assert.equal(isPermanent(new Error('x')), false);
  assert.equal(isPermanent(undefined), false);
});
