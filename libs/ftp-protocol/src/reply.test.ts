import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseControlResponse } from 'basic-ftp/dist/parseControlResponse';
import { formatReply } from './reply';

test('single-line reply', () => {
  assert.equal(formatReply(200, 'Command okay.'), '200 Command okay.\r\n');
  assert.equal(formatReply(220, ['Ready']), '220 Ready\r\n');
  assert.equal(formatReply(200, ''), '200 \r\n');
  assert.equal(formatReply(200, []), '200 \r\n');
});

test('multi-line reply prefixes every middle line with a space', () => {
  assert.equal(
    formatReply(211, ['Features:', 'EPSV', 'MLST type*;', 'End']),
    '211-Features:\r\n EPSV\r\n MLST type*;\r\n211 End\r\n',
  );
  assert.equal(formatReply(214, ['a', 'b']), '214-a\r\n214 b\r\n');
});

test('a string containing newlines becomes a multi-line reply', () => {
  assert.equal(formatReply(211, 'first\nsecond\r\nthird'), '211-first\r\n second\r\n211 third\r\n');
  assert.equal(formatReply(200, 'only\n'), '200 only\r\n');
});

test('CR or LF inside text cannot break the framing', () => {
  const evil = formatReply(550, 'no such file: x\r\n226 Transfer complete\rmore');
  assert.equal(evil, '550-no such file: x\r\n 226 Transfer complete\r\n550 more\r\n');
  // A real client sees exactly one reply, with code 550.
  const parsed = parseControlResponse(evil);
  assert.equal(parsed.messages.length, 1);
  assert.equal(parsed.rest, '');
  assert.match(parsed.messages[0], /^550-/);
  assert.match(parsed.messages[0], /\n550 more$/);
});

test('middle lines that look like reply codes are neutralised for a real client', () => {
  const reply = formatReply(211, ['Status', '211 fake end', '211-fake start', 'End']);
  const parsed = parseControlResponse(reply + formatReply(200, 'next'));
  assert.equal(parsed.messages.length, 2);
  assert.match(parsed.messages[0], /\n211 End$/);
  assert.equal(parsed.messages[1], '200 next');
});

test('rejects invalid reply codes', () => {
  assert.throws(() => formatReply(99, 'x'), RangeError);
  assert.throws(() => formatReply(600, 'x'), RangeError);
  assert.throws(() => formatReply(200.5, 'x'), RangeError);
});
