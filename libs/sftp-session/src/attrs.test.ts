// Pure parts: long names, ATTRS, what SETSTAT may change, the status mapping.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StorageError } from '@ftp/storage';
import { longname, settableMtime, toAttrs } from './attrs';
import { SftpError, STATUS, toStatus } from './status';

const now = new Date('2024-06-15T12:00:00Z');

test('long names are laid out like OpenSSH ls -l: recent entries show the time, older ones the year', () => {
  const file = { name: 'report.csv', type: 'file' as const, size: 1234, mtime: new Date('2024-06-03T09:05:00Z'), mode: 0o644 };
  assert.equal(longname(file, 'partner', now), '-rw-r--r--    1 partner  partner      1234 Jun  3 09:05 report.csv');
  const old = { ...file, mtime: new Date('2023-11-20T09:05:00Z') };
  assert.equal(longname(old, 'partner', now), '-rw-r--r--    1 partner  partner      1234 Nov 20  2023 report.csv');
  const future = { ...file, mtime: new Date('2024-07-01T00:00:00Z') };
  assert.match(longname(future, 'partner', now), / Jul {2}1 {2}2024 /);
  const dir = { name: 'in', type: 'dir' as const, size: 4096, mtime: file.mtime, mode: 0o755 };
  assert.equal(longname(dir, 'a-very-long-user', now), 'drwxr-xr-x    1 a-very-long-user a-very-long-user     4096 Jun  3 09:05 in');
});

test('ATTRS carry type bits, size and times, and no owner', () => {
  const attrs = toAttrs({ type: 'dir', size: 4096, mtime: new Date(1_700_000_000_500), mode: 0o40755 });
  assert.deepEqual(attrs, { mode: 0o040755, size: 4096, atime: 1_700_000_000, mtime: 1_700_000_000 });
  assert.equal(toAttrs({ type: 'file', size: 1, mtime: new Date(0), mode: 0o600 }).mode, 0o100600);
});

test('SETSTAT: times are settable, owner refused, size unsupported, mode ignored', () => {
  assert.equal(settableMtime({ atime: 5, mtime: 7 })?.getTime(), 7000);
  assert.equal(settableMtime({ mode: 0o777 }), undefined);
  assert.throws(() => settableMtime({ uid: 0, gid: 0 }), (e: SftpError) => e.status === STATUS.PERMISSION_DENIED);
  assert.throws(() => settableMtime({ size: 0 }), (e: SftpError) => e.status === STATUS.OP_UNSUPPORTED);
});

test('one mapping from failures to statuses, routine ones logged at debug', () => {
  const cases: Array<[unknown, number, 'debug' | 'error']> = [
    [new StorageError('not-found', 'x'), STATUS.NO_SUCH_FILE, 'debug'],
    [new StorageError('not-a-directory', 'x'), STATUS.NO_SUCH_FILE, 'debug'],
    [new StorageError('denied', 'x'), STATUS.PERMISSION_DENIED, 'debug'],
    [new StorageError('exists', 'x'), STATUS.FAILURE, 'debug'],
    [new StorageError('no-space', 'x'), STATUS.FAILURE, 'error'],
    [Object.assign(new Error('raw'), { code: 'ENOENT' }), STATUS.NO_SUCH_FILE, 'debug'],
    [Object.assign(new Error('raw'), { code: 'EDQUOT' }), STATUS.FAILURE, 'error'],
    [new TypeError('a bug'), STATUS.FAILURE, 'error'],
    [new SftpError(STATUS.OP_UNSUPPORTED, 'no'), STATUS.OP_UNSUPPORTED, 'debug'],
  ];
  for (const [err, code, level] of cases) assert.deepEqual([toStatus(err).code, toStatus(err).level], [code, level], String(err));
  assert.equal(toStatus(new StorageError('no-space', '/host/path/leak')).message, 'No space left on device', 'no host paths');
});
