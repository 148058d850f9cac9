import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandLineDecoder, type DecodedLine } from './commandLine';

const bytes = (...parts: (string | number[])[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

function decodeAll(chunks: Buffer[], max?: number): DecodedLine[] {
  const d = new CommandLineDecoder(max);
  return chunks.flatMap((c) => d.push(c));
}

/** Feeds `input` split at every single position and byte by byte; all must agree with the one-chunk result. */
function assertSplitInvariant(input: Buffer, expected: DecodedLine[], max?: number): void {
  assert.deepEqual(decodeAll([input], max), expected, 'one chunk');
  for (let i = 0; i <= input.length; i++) {
    assert.deepEqual(decodeAll([input.subarray(0, i), input.subarray(i)], max), expected, `split at ${i}`);
  }
  const single = [...input].map((b) => Buffer.from([b]));
  assert.deepEqual(decodeAll(single, max), expected, 'byte by byte');
}

test('splits on CRLF and bare LF, removing the CR', () => {
  assertSplitInvariant(bytes('USER bob\r\nPASS x\nNOOP\r\n'), [
    { text: 'USER bob' },
    { text: 'PASS x' },
    { text: 'NOOP' },
  ]);
});

test('keeps an unterminated line pending until its LF arrives', () => {
  const d = new CommandLineDecoder();
  assert.deepEqual(d.push(bytes('RETR fi')), []);
  assert.deepEqual(d.push(bytes('le.txt\r')), []);
  assert.deepEqual(d.push(bytes('\n')), [{ text: 'RETR file.txt' }]);
});

test('empty lines are emitted as empty text', () => {
  assertSplitInvariant(bytes('\r\n\n'), [{ text: '' }, { text: '' }]);
});

test('keeps spaces and a CR that is not before LF verbatim', () => {
  assertSplitInvariant(bytes('STOR  a b \r\nX\rY\r\n'), [{ text: 'STOR  a b ' }, { text: 'X\rY' }]);
});

test('decodes UTF-8 across chunk boundaries', () => {
  assertSplitInvariant(bytes('CWD Überraschung/日本語 😀\r\n'), [{ text: 'CWD Überraschung/日本語 😀' }]);
});

test('invalid UTF-8 reports bad-utf8 for that line only', () => {
  assertSplitInvariant(bytes('CWD ', [0xc3, 0x28], '\r\nNOOP\r\n'), [{ error: 'bad-utf8' }, { text: 'NOOP' }]);
  // Overlong encoding of '/' must not slip through as a path separator.
  assertSplitInvariant(bytes('CWD ', [0xc0, 0xaf], '\r\n'), [{ error: 'bad-utf8' }]);
});

test('a leading BOM is kept rather than silently dropped', () => {
  assert.deepEqual(decodeAll([bytes([0xef, 0xbb, 0xbf], 'x\r\n')]), [{ text: '\ufeffx' }]);
});

test('a line of exactly maxLineBytes is accepted, with CRLF or LF', () => {
  assertSplitInvariant(bytes('abcdefgh\r\nabcdefgh\n'), [{ text: 'abcdefgh' }, { text: 'abcdefgh' }], 8);
});

test('an over-long line yields one too-long error, then decoding resumes after its LF', () => {
  assertSplitInvariant(bytes('abcdefghi\r\nNOOP\r\n'), [{ error: 'too-long' }, { text: 'NOOP' }], 8);
  assertSplitInvariant(bytes('abcdefgh\r\r\nok\n'), [{ error: 'too-long' }, { text: 'ok' }], 8);
});

test('too-long is reported as soon as the limit is passed, without waiting for LF', () => {
  const d = new CommandLineDecoder(8);
  assert.deepEqual(d.push(bytes('abcdefgh')), []);
  assert.deepEqual(d.push(bytes('i')), [{ error: 'too-long' }]);
  // Megabytes without LF produce nothing more and are not buffered.
  assert.deepEqual(d.push(Buffer.alloc(4 * 1024 * 1024, 0x41)), []);
  assert.deepEqual(d.push(bytes('\r\nPWD\r\n')), [{ text: 'PWD' }]);
});

test('the line buffer never grows past maxLineBytes + 1', () => {
  const d = new CommandLineDecoder(100);
  d.push(Buffer.alloc(10_000, 0x42));
  const internal = d as unknown as { buf: Buffer };
  assert.ok(internal.buf.length <= 101, `buffer is ${internal.buf.length} bytes`);
});

test('IAC IAC is a literal 0xFF data byte', () => {
  // 0xFF alone is not UTF-8, so the line is reported as bad-utf8 — proving the byte reached the line.
  assertSplitInvariant(bytes('CWD ', [0xff, 0xff], '\r\n'), [{ error: 'bad-utf8' }]);
  // Latin-1 view of the same: byte count shows one 0xFF, not two.
  const d = new CommandLineDecoder();
  d.push(bytes('X', [0xff, 0xff], 'Y'));
  const internal = d as unknown as { buf: Buffer; len: number };
  assert.deepEqual([...internal.buf.subarray(0, internal.len)], [0x58, 0xff, 0x59]);
});

test('Telnet option negotiation is removed with its option byte', () => {
  // IAC WILL 1, IAC WONT 3, IAC DO 24, IAC DONT 0x0a (an option byte equal to LF must not end the line)
  const input = bytes('NO', [0xff, 251, 1], 'O', [0xff, 252, 3, 0xff, 253, 24, 0xff, 254, 0x0a], 'P\r\n');
  assertSplitInvariant(input, [{ text: 'NOOP' }]);
});

test('other Telnet commands (IP, DM, SB, SE, NOP...) are removed', () => {
  const cmds = [240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250];
  const input = bytes(...cmds.flatMap((c) => [[0xff, c], 'A']), '\r\n');
  assertSplitInvariant(input, [{ text: 'A'.repeat(cmds.length) }]);
});

test('IAC IP IAC DM ABOR (RFC 959 abort sequence) yields ABOR', () => {
  assertSplitInvariant(bytes([0xff, 0xf4, 0xff, 0xf2], 'ABOR\r\n'), [{ text: 'ABOR' }]);
});

test('a stray IAC before a normal byte is dropped (urgent DM stripped by the kernel)', () => {
  assertSplitInvariant(bytes([0xff, 0xf4, 0xff], 'ABOR\r\n'), [{ text: 'ABOR' }]);
});

test('ABOR\\r without LF (ftplib MSG_OOB) is emitted at once and a late LF is swallowed', () => {
  const d = new CommandLineDecoder();
  assert.deepEqual(d.push(bytes([0xff, 0xf4, 0xff, 0xf2], 'ABOR\r')), [{ text: 'ABOR' }]);
  assert.deepEqual(d.push(bytes('\n')), []);
  assert.deepEqual(d.push(bytes('NOOP\r\n')), [{ text: 'NOOP' }]);
});

test('ABOR\\r is matched case-insensitively and after earlier lines in the same chunk', () => {
  const d = new CommandLineDecoder();
  assert.deepEqual(d.push(bytes('NOOP\r\nabor\r')), [{ text: 'NOOP' }, { text: 'ABOR' }]);
  // The LF never comes (stripped as urgent data): the next command is decoded normally.
  assert.deepEqual(d.push(bytes('QUIT\r\n')), [{ text: 'QUIT' }]);
});

test('only the very next byte is swallowed after an urgent ABOR', () => {
  const d = new CommandLineDecoder();
  d.push(bytes('ABOR\r'));
  assert.deepEqual(d.push(bytes('PWD\r\n\r\n')), [{ text: 'PWD' }, { text: '' }]);
});

test('ABOR without CR, or ABOR with more text, waits for its terminator', () => {
  const d = new CommandLineDecoder();
  assert.deepEqual(d.push(bytes('ABOR')), []);
  assert.deepEqual(d.push(bytes('\r\n')), [{ text: 'ABOR' }]);
  const e = new CommandLineDecoder();
  assert.deepEqual(e.push(bytes('ABORT\r')), []);
  assert.deepEqual(e.push(bytes('\n')), [{ text: 'ABORT' }]);
});
