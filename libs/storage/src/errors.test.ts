import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { toStorageError } from './errors';
import { StorageError } from './types';

const errno = (code: string) => Object.assign(new Error(`${code}: /host/secret/path`), { code });

test('errno codes map to storage codes and keep the cause', () => {
  const cases: [string, string][] = [
    ['ENOENT', 'not-found'],
    ['EEXIST', 'exists'],
    ['ENOTDIR', 'not-a-directory'],
    ['EISDIR', 'is-a-directory'],
    ['ENOTEMPTY', 'not-empty'],
    ['EACCES', 'denied'],
    ['EPERM', 'denied'],
    ['ENOSPC', 'no-space'],
    ['EDQUOT', 'quota'],
    ['ENAMETOOLONG', 'bad-name'],
    ['EIO', 'io'],
  ];
  for (const [code, expected] of cases) {
    const cause = errno(code);
    const mapped = toStorageError(cause);
    assert.ok(mapped instanceof StorageError);
    assert.equal(mapped.code, expected, code);
    assert.equal(mapped.cause, cause);
    assert.doesNotMatch(mapped.message, /host/, 'messages must not leak host paths');
  }
});

test('StorageErrors pass through; anything else is io', () => {
  const original = new StorageError('quota', 'over quota');
  assert.equal(toStorageError(original), original);
  assert.equal(toStorageError(new Error('boom')).code, 'io');
  assert.equal(toStorageError('a string').code, 'io');
  assert.equal(toStorageError(undefined).code, 'io');
});

test('a real ENOSPC from a write stream maps to no-space', { skip: !fs.existsSync('/dev/full') }, async () => {
  const stream = fs.createWriteStream('/dev/full');
  const err = await new Promise<unknown>((resolve) => {
    stream.on('error', resolve);
    stream.end('x');
  });
  assert.equal(toStorageError(err).code, 'no-space');
});
