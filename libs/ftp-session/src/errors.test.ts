import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StorageError } from '@ftp/storage';
import { FtpError, toFtpError } from './errors';

test('storage failures map to one reply code each', () => {
  const code = (c: StorageError['code']) => toFtpError(new StorageError(c, 'x')).code;
  assert.equal(code('not-found'), 550);
  assert.equal(code('denied'), 550);
  assert.equal(code('no-space'), 452);
  assert.equal(code('quota'), 552);
  assert.equal(code('bad-name'), 553);
  assert.equal(code('invalid-offset'), 554);
  assert.equal(code('io'), 451);
});

test('FtpError passes through; anything else is a local error, not a crash', () => {
  assert.equal(toFtpError(new FtpError(503, 'order')).code, 503);
  assert.equal(toFtpError(new TypeError('boom')).code, 451);
  assert.equal(toFtpError('weird').code, 451);
});
