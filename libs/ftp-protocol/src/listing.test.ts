import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileType, parseList } from 'basic-ftp';
import {
  MLST_FACTS,
  formatFeatMlst,
  formatListLine,
  formatMdtm,
  formatMlsxLine,
  parseMdtm,
  selectMlstFacts,
  type ListEntry,
} from './listing';

const now = new Date('2024-11-25T15:00:00Z');
const file = (over: Partial<ListEntry> = {}): ListEntry => ({
  name: 'report.pdf',
  type: 'file',
  size: 1048576,
  mtime: new Date('2024-03-02T10:20:30Z'),
  mode: 0o644,
  unique: '801g1a',
  ...over,
});
const dir = (over: Partial<ListEntry> = {}): ListEntry =>
  file({ name: 'docs', type: 'dir', size: 4096, mode: 0o755, mtime: new Date('2024-11-25T14:03:59Z'), ...over });

test('LIST line for a recent directory shows the time', () => {
  assert.equal(formatListLine(dir(), now), 'drwxr-xr-x 1 ftp ftp         4096 Nov 25 14:03 docs');
});

test('LIST line for an old file shows the year, day zero-padded', () => {
  assert.equal(formatListLine(file(), now), '-rw-r--r-- 1 ftp ftp      1048576 Mar 02  2024 report.pdf');
});

test('LIST recency window: 180 days back, one hour ahead, in UTC', () => {
  const at = (iso: string) => formatListLine(file({ mtime: new Date(iso) }), now).slice(34, 46);
  assert.equal(at('2024-05-29T15:00:00Z'), 'May 29 15:00'); // exactly 180 days
  assert.equal(at('2024-05-29T14:59:59Z'), 'May 29  2024');
  assert.equal(at('2024-11-25T16:00:00Z'), 'Nov 25 16:00'); // one hour ahead
  assert.equal(at('2024-11-25T16:00:01Z'), 'Nov 25  2024');
  assert.equal(at('2025-01-01T00:00:00Z'), 'Jan 01  2025');
  // 23:30 UTC on Dec 31 stays Dec 31 whatever the local time zone.
  assert.equal(at('2023-12-31T23:30:00Z'), 'Dec 31  2023');
});

test('LIST permission string follows the mode bits', () => {
  const perms = (mode: number, type: 'file' | 'dir' = 'file') => formatListLine(file({ mode, type }), now).slice(0, 10);
  assert.equal(perms(0o777), '-rwxrwxrwx');
  assert.equal(perms(0o000), '----------');
  assert.equal(perms(0o640), '-rw-r-----');
  assert.equal(perms(0o100751), '-rwxr-x--x'); // file-type bits above 0o777 are ignored
  assert.equal(perms(0o700, 'dir'), 'drwx------');
});

test('a real client parses LIST lines back to name, type, size and date', () => {
  const entries = [
    dir(),
    file(),
    file({ name: '  spaced  name .txt', size: 0 }),
    file({ name: 'ünïcødé 日本.bin', size: 123456789012 }),
  ];
  const parsed = parseList(entries.map((e) => formatListLine(e, now)).join('\r\n'));
  assert.equal(parsed.length, entries.length);
  parsed.forEach((info, i) => {
    assert.equal(info.name, entries[i].name);
    assert.equal(info.size, entries[i].size);
    assert.equal(info.type, entries[i].type === 'dir' ? FileType.Directory : FileType.File);
  });
  assert.equal(parsed[0].rawModifiedAt, 'Nov 25 14:03');
  assert.equal(parsed[1].rawModifiedAt, 'Mar 02 2024');
  assert.deepEqual(parsed[1].permissions, { user: 6, group: 4, world: 4 });
});

test('MLSx line for a file with all facts', () => {
  const line = formatMlsxLine(file({ mtime: new Date('2024-11-25T14:03:12Z'), size: 123 }), 'rwadf');
  assert.equal(line, 'type=file;size=123;modify=20241125140312;perm=rwadf;unique=801g1a; report.pdf');
});

test('MLSx line for a directory omits size', () => {
  assert.equal(formatMlsxLine(dir(), 'flcdmpe'), 'type=dir;modify=20241125140359;perm=flcdmpe;unique=801g1a; docs');
});

test('MLSx modify carries milliseconds only when they are not zero', () => {
  const line = formatMlsxLine(file({ mtime: new Date('2024-11-25T14:03:12.045Z') }), 'r', { facts: ['modify'] });
  assert.equal(line, 'modify=20241125140312.045; report.pdf');
});

test('MLSx facts can be restricted, keep canonical order, and may be empty', () => {
  assert.equal(formatMlsxLine(file(), 'r', { facts: ['unique', 'TYPE'] }), 'type=file;unique=801g1a; report.pdf');
  assert.equal(formatMlsxLine(file(), 'r', { facts: [] }), ' report.pdf');
});

test('MLSx keeps spaces and semicolons of the name after the single separator', () => {
  assert.equal(formatMlsxLine(file({ name: ' a;b=c ' }), 'r', { facts: ['type'] }), 'type=file;  a;b=c ');
});

test('a real client parses MLSD lines back to the same entries', () => {
  const entries = [dir(), file({ name: ' lead space' }), file({ name: 'x;y', mtime: new Date('2020-01-02T03:04:05Z') })];
  const parsed = parseList(entries.map((e) => formatMlsxLine(e, 'rwadf')).join('\r\n'));
  assert.equal(parsed.length, entries.length);
  parsed.forEach((info, i) => {
    assert.equal(info.name, entries[i].name);
    assert.equal(info.type, entries[i].type === 'dir' ? FileType.Directory : FileType.File);
    assert.equal(info.modifiedAt?.getTime(), entries[i].mtime.getTime());
    assert.equal(info.uniqueID, '801g1a');
  });
  assert.equal(parsed[1].size, entries[1].size);
});

test('FEAT MLST line marks the selected facts', () => {
  assert.deepEqual([...MLST_FACTS], ['type', 'size', 'modify', 'perm', 'unique']);
  assert.equal(formatFeatMlst([...MLST_FACTS]), 'type*;size*;modify*;perm*;unique*;');
  assert.equal(formatFeatMlst(['size', 'TYPE']), 'type*;size*;modify;perm;unique;');
  assert.equal(formatFeatMlst([]), 'type;size;modify;perm;unique;');
});

test('selectMlstFacts reads an OPTS MLST argument', () => {
  assert.deepEqual(selectMlstFacts('size;Type;unknown;'), ['type', 'size']);
  assert.deepEqual(selectMlstFacts(''), []);
  assert.deepEqual(selectMlstFacts('type;size;modify;perm;unique;'), [...MLST_FACTS]);
});

test('formatMdtm is UTC YYYYMMDDHHMMSS', () => {
  assert.equal(formatMdtm(new Date('2024-11-25T14:03:12.999Z')), '20241125140312');
  assert.equal(formatMdtm(new Date('1999-01-05T00:00:09Z')), '19990105000009');
  assert.equal(formatMdtm(new Date(0)), '19700101000000');
});

test('parseMdtm accepts YYYYMMDDHHMMSS with optional fraction', () => {
  assert.equal(parseMdtm('20241125140312')?.toISOString(), '2024-11-25T14:03:12.000Z');
  assert.equal(parseMdtm('19980615100045.014')?.toISOString(), '1998-06-15T10:00:45.014Z');
  assert.equal(parseMdtm('19980615100045.5')?.toISOString(), '1998-06-15T10:00:45.500Z');
  assert.equal(parseMdtm('20240229235959')?.toISOString(), '2024-02-29T23:59:59.000Z');
  assert.equal(parseMdtm('00500101000000')?.getUTCFullYear(), 50);
});

test('parseMdtm round-trips formatMdtm', () => {
  for (const iso of ['2024-11-25T14:03:12Z', '2000-02-29T00:00:00Z', '1970-01-01T00:00:00Z', '2099-12-31T23:59:59Z']) {
    const d = new Date(iso);
    assert.equal(parseMdtm(formatMdtm(d))?.getTime(), d.getTime(), iso);
  }
});

test('parseMdtm rejects malformed text and impossible dates', () => {
  for (const bad of [
    '',
    '2024112514031',
    '202411251403123',
    '2024-11-25 14:03:12',
    ' 20241125140312',
    '20241125140312 ',
    '20241125140312.',
    '20241125140312.1234',
    '20241325140312', // month 13
    '20240025140312',
    '20241100140312', // day 0
    '20230229120000', // not a leap year
    '20240431120000',
    '20241125240000',
    '20241125146000',
    '20241125140360',
  ]) {
    assert.equal(parseMdtm(bad), null, bad);
  }
});
