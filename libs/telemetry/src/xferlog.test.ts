import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createXferlog, formatXferlogLine, xferlogDate, type XferlogEntry } from './xferlog';

const entry = (over: Partial<XferlogEntry> = {}): XferlogEntry => ({
  at: new Date(2025, 2, 4, 9, 5, 7),
  durationMs: 2400,
  remoteHost: '192.0.2.10',
  bytes: 1048576,
  path: '/inbox/report.csv',
  type: 'I',
  direction: 'upload',
  anonymous: false,
  user: 'partner1',
  completed: true,
  ...over,
});

test('xferlog date is ctime(3) in local time, the day padded with a space as vsftpd writes it', () => {
  assert.equal(xferlogDate(new Date(2025, 2, 4, 9, 5, 7)), 'Tue Mar  4 09:05:07 2025');
  assert.equal(xferlogDate(new Date(2024, 11, 31, 23, 59, 59)), 'Tue Dec 31 23:59:59 2024');
});

test('an upload line has the 14 fields of the wu-ftpd xferlog format', () => {
  const line = formatXferlogLine(entry());
  assert.equal(line, 'Tue Mar  4 09:05:07 2025 2 192.0.2.10 1048576 /inbox/report.csv b _ i r partner1 ftp 0 * c');
  // The date takes five space-separated words (six here: the padded day adds an empty one).
  assert.equal(line.split(' ').filter(Boolean).length, 5 + 13);
});

test('download, ASCII, anonymous, incomplete', () => {
  const line = formatXferlogLine(entry({ direction: 'download', type: 'A', anonymous: true, user: 'anonymous', completed: false }));
  assert.match(line, / \/inbox\/report\.csv a _ o a anonymous ftp 0 \* i$/);
});

test('transfer time: whole seconds, at least 1 (vsftpd never writes 0)', () => {
  assert.match(formatXferlogLine(entry({ durationMs: 3 })), /2025 1 192\.0\.2\.10/);
  assert.match(formatXferlogLine(entry({ durationMs: 0 })), /2025 1 192\.0\.2\.10/);
  assert.match(formatXferlogLine(entry({ durationMs: 61_600 })), /2025 62 192\.0\.2\.10/);
});

test('spaces in file and user names become _ as in vsftpd; control characters become ?; UTF-8 stays', () => {
  const line = formatXferlogLine(entry({ path: '/in box/my file.txt', user: 'acme corp' }));
  assert.match(line, / \/in_box\/my_file\.txt b _ i r acme_corp ftp /);
  const hostile = formatXferlogLine(entry({ path: '/a\r\nTue Mar  4 00:00:00 2025 1 6.6.6.6 0 /evil b _ i r x ftp 0 * c\u001b[2J' }));
  assert.equal(hostile.includes('\n'), false);
  assert.equal(hostile.includes('\r'), false);
  assert.equal(hostile.includes('\u001b'), false);
  assert.match(hostile, /\/a\?\?Tue_Mar__4_00:00:00/);
  assert.match(formatXferlogLine(entry({ path: '/Grüße/日本.txt' })), / \/Grüße\/日本\.txt b /);
});

test('the writer appends lines asynchronously, reopens after a rotation and flushes on close', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xferlog-'));
  try {
    const file = join(dir, 'logs', 'xferlog');
    const log = createXferlog(file);
    log.write(entry());
    log.write(entry({ direction: 'download' }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    renameSync(file, `${file}.1`);
    log.reopen();
    log.write(entry({ completed: false }));
    await log.close();
    log.write(entry()); // after close: ignored, no throw
    const rotated = readFileSync(`${file}.1`, 'utf8').split('\n');
    assert.equal(rotated.length, 3);
    assert.match(rotated[0], / i r partner1 ftp 0 \* c$/);
    assert.match(rotated[1], / o r partner1 ftp 0 \* c$/);
    assert.equal(rotated[2], '');
    assert.match(readFileSync(file, 'utf8'), / i r partner1 ftp 0 \* i\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that cannot be opened drops lines and reports it instead of throwing', async () => {
  const reasons: string[] = [];
  const log = createXferlog('/etc/hostname/sub/xferlog', { onDrop: (reason) => reasons.push(reason) });
  log.write(entry());
  await new Promise((resolve) => setTimeout(resolve, 100));
  await log.close();
  assert.ok(reasons.length >= 1, 'drop reported');
});
