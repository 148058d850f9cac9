import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StorageError } from '@ftp/storage';
import { failureLevel, FtpError, toFtpError } from './errors';

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

test('a limit hit is one reply that repeats the limit, and a warning', () => {
  const deep = new StorageError('path-too-long', 'path deeper than 256 levels');
  assert.deepEqual([toFtpError(deep).code, toFtpError(deep).message], [553, 'Path too long (path deeper than 256 levels)']);
  const big = new StorageError('too-many-entries', 'directory has more than 100000 entries');
  assert.deepEqual([toFtpError(big).code, toFtpError(big).message], [550, 'Too many entries to list (directory has more than 100000 entries)']);
  assert.equal(failureLevel(deep), 'warn');
  assert.equal(failureLevel(big), 'warn');
  assert.equal(failureLevel(new StorageError('not-found', 'x')), 'debug');
  assert.equal(failureLevel(new StorageError('io', 'x')), 'error');
  // Other codes never echo the storage message (it could carry more than the client should see).
  assert.equal(toFtpError(new StorageError('denied', 'detail')).message, 'Permission denied');
});
