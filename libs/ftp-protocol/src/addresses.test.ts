import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEpsvResponse, parsePasvResponse } from 'basic-ftp/dist/transfer';
import {
  formatEpsvReply,
  formatPasvReply,
  normalizeAddress,
  parseEprtArgument,
  parseEpsvArgument,
  parsePortArgument,
} from './addresses';

test('parsePortArgument decodes host and port', () => {
  assert.deepEqual(parsePortArgument('192,168,1,2,7,138'), { host: '192.168.1.2', port: 7 * 256 + 138 });
  assert.deepEqual(parsePortArgument(' 10 , 0,0 ,1,255, 255 '), { host: '10.0.0.1', port: 65535 });
  assert.deepEqual(parsePortArgument('010,000,000,001,0,21'), { host: '10.0.0.1', port: 21 });
});

test('parsePortArgument rejects malformed arguments', () => {
  for (const bad of [
    '',
    '1,2,3,4,5',
    '1,2,3,4,5,6,7',
    '256,1,1,1,1,1',
    '1,1,1,1,256,1',
    '1,1,1,1,0,0', // port 0
    '1,1,1,1,-1,5',
    '1,1,1,1,1.5,5',
    '1,1,1,1,,5',
    'a,b,c,d,e,f',
    '1,1,1,1,0x1,5',
    '1,1,1,1,1,1000',
    '1 1,1,1,1,1',
  ]) {
    assert.equal(parsePortArgument(bad), null, bad);
  }
});

test('formatPasvReply produces text a real client parses back to the same address', () => {
  const text = formatPasvReply('10.1.2.3', 50123);
  assert.equal(text, 'Entering Passive Mode (10,1,2,3,195,203).');
  assert.deepEqual(parsePasvResponse(`227 ${text}`), { host: '10.1.2.3', port: 50123 });
});

test('formatPasvReply uses the IPv4 part of an IPv4-mapped IPv6 address', () => {
  assert.equal(formatPasvReply('::ffff:127.0.0.1', 256), 'Entering Passive Mode (127,0,0,1,1,0).');
  assert.equal(formatPasvReply('::FFFF:1.2.3.4', 1), 'Entering Passive Mode (1,2,3,4,0,1).');
});

test('formatPasvReply rejects IPv6 hosts and bad ports', () => {
  assert.throws(() => formatPasvReply('::1', 2000), TypeError);
  assert.throws(() => formatPasvReply('1.2.3.4', 0), RangeError);
  assert.throws(() => formatPasvReply('1.2.3.4', 65536), RangeError);
});

test('PORT and PASV codecs round-trip', () => {
  for (const port of [1, 255, 256, 1024, 50000, 65535]) {
    const pasv = formatPasvReply('172.16.0.9', port);
    const inner = /\((.*)\)/.exec(pasv)![1];
    assert.deepEqual(parsePortArgument(inner), { host: '172.16.0.9', port });
  }
});

test('parseEprtArgument accepts the RFC 2428 examples', () => {
  assert.deepEqual(parseEprtArgument('|1|132.235.1.2|6275|'), { family: 1, host: '132.235.1.2', port: 6275 });
  assert.deepEqual(parseEprtArgument('|2|1080::8:800:200C:417A|5282|'), {
    family: 2,
    host: '1080::8:800:200C:417A',
    port: 5282,
  });
});

test('parseEprtArgument accepts any printable delimiter', () => {
  assert.deepEqual(parseEprtArgument('!1!10.0.0.1!21!'), { family: 1, host: '10.0.0.1', port: 21 });
  assert.deepEqual(parseEprtArgument('~2~::1~65535~'), { family: 2, host: '::1', port: 65535 });
});

test('parseEprtArgument rejects malformed arguments', () => {
  for (const bad of [
    '',
    '|1|132.235.1.2|6275', // missing final delimiter
    '|1|132.235.1.2|6275||',
    '|2|132.235.1.2|6275|', // family mismatch
    '|1|::1|6275|',
    '|3|132.235.1.2|6275|',
    '|1|132.235.1.2|0|',
    '|1|132.235.1.2|65536|',
    '|1|132.235.1.2|-1|',
    '|1|132.235.1.2||',
    '|1|999.1.1.1|21|',
    '|1|host.example|21|',
    ' 1 10.0.0.1 21 ', // space is not a printable delimiter
    '\u00e91\u00e910.0.0.1\u00e921\u00e9',
  ]) {
    assert.equal(parseEprtArgument(bad), null, bad);
  }
});

test('formatEpsvReply', () => {
  assert.equal(formatEpsvReply(6446), 'Entering Extended Passive Mode (|||6446|)');
  assert.equal(parseEpsvResponse(`229 ${formatEpsvReply(6446)}`), 6446);
  assert.throws(() => formatEpsvReply(0), RangeError);
});

test('parseEpsvArgument', () => {
  assert.deepEqual(parseEpsvArgument(''), { kind: 'any' });
  assert.deepEqual(parseEpsvArgument('ALL'), { kind: 'all' });
  assert.deepEqual(parseEpsvArgument('all'), { kind: 'all' });
  assert.deepEqual(parseEpsvArgument('1'), { kind: 'family', family: 1 });
  assert.deepEqual(parseEpsvArgument('2'), { kind: 'family', family: 2 });
  for (const bad of ['3', '0', 'ALLX', '1 2', '|||1|']) assert.equal(parseEpsvArgument(bad), null, bad);
});

test('normalizeAddress makes a mapped peer equal to its IPv4 form', () => {
  assert.equal(normalizeAddress('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(normalizeAddress('::FFFF:192.0.2.7'), '192.0.2.7');
  assert.equal(normalizeAddress('192.0.2.7'), '192.0.2.7');
  assert.equal(normalizeAddress('2001:DB8::1'), '2001:db8::1');
  assert.equal(normalizeAddress('::1'), '::1');
});
