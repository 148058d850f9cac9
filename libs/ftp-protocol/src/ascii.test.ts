import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, type Transform } from 'node:stream';
import { asciiFromNetwork, asciiToNetwork } from './ascii';

async function run(t: Transform, chunks: Buffer[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  // objectMode source so that empty and one-byte chunks are delivered exactly as given.
  const source = Readable.from(chunks, { objectMode: true });
  for await (const part of source.pipe(t)) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Runs the transform on `input` whole, split at every position, split at every pair of positions, and byte by byte. */
async function assertAllSplits(make: () => Transform, input: string, expected: string): Promise<void> {
  const buf = Buffer.from(input, 'latin1');
  const want = Buffer.from(expected, 'latin1');
  const show = (b: Buffer) => JSON.stringify(b.toString('latin1'));
  const check = async (chunks: Buffer[], label: string) => {
    const got = await run(make(), chunks);
    assert.ok(got.equals(want), `${label}: got ${show(got)}, want ${show(want)}`);
  };
  await check([buf], 'whole');
  for (let i = 0; i <= buf.length; i++) {
    await check([buf.subarray(0, i), buf.subarray(i)], `split ${i}`);
    for (let j = i; j <= buf.length; j++) {
      await check([buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)], `split ${i},${j}`);
    }
  }
  await check([...buf].map((b) => Buffer.from([b])), 'byte by byte');
}

const toNet: [string, string][] = [
  ['', ''],
  ['plain', 'plain'],
  ['a\nb\n', 'a\r\nb\r\n'],
  ['a\r\nb\r\n', 'a\r\nb\r\n'],
  ['\n\n\r\n\n', '\r\n\r\n\r\n\r\n'],
  ['\r\r\n\n', '\r\r\n\r\n'],
  ['x\ry\rz\n', 'x\ry\rz\r\n'],
  ['\n', '\r\n'],
  ['\r', '\r'],
  ['mixed\r\nline\nends\r\n\nend', 'mixed\r\nline\r\nends\r\n\r\nend'],
];

const fromNet: [string, string][] = [
  ['', ''],
  ['plain', 'plain'],
  ['a\r\nb\r\n', 'a\nb\n'],
  ['a\nb\n', 'a\nb\n'],
  ['\r\n\r\n', '\n\n'],
  ['\r\r\n', '\r\n'],
  ['\r\r\r', '\r\r\r'],
  ['x\ry\r', 'x\ry\r'],
  ['\r', '\r'],
  ['end\r', 'end\r'],
  ['\n\r\n\r\r\n\n\r', '\n\n\r\n\n\r'],
];

test('asciiToNetwork turns bare LF into CRLF for every chunk split', async () => {
  for (const [input, expected] of toNet) await assertAllSplits(asciiToNetwork, input, expected);
});

test('asciiFromNetwork turns CRLF into LF for every chunk split', async () => {
  for (const [input, expected] of fromNet) await assertAllSplits(asciiFromNetwork, input, expected);
});

test('network round trip restores LF text and keeps binary-looking bytes', async () => {
  const text = Buffer.from('line one\nline two\n\nüñí\x00\xff\rcode\n', 'latin1');
  const net = await run(asciiToNetwork(), [text]);
  const back = await run(asciiFromNetwork(), [net]);
  assert.ok(back.equals(text));
});

test('unchanged chunks are passed through without copying', async () => {
  const chunk = Buffer.from('no line ends here');
  const seen: Buffer[] = [];
  for (const t of [asciiToNetwork(), asciiFromNetwork()]) {
    for await (const part of Readable.from([chunk], { objectMode: true }).pipe(t)) seen.push(part as Buffer);
  }
  assert.equal(seen.length, 2);
  for (const s of seen) assert.equal(s, chunk);
});

test('large input converts correctly across many chunks', async () => {
  const lines = Array.from({ length: 20000 }, (_, i) => `row ${i}`);
  const unix = Buffer.from(lines.join('\n') + '\n');
  const chunks: Buffer[] = [];
  for (let i = 0; i < unix.length; i += 997) chunks.push(unix.subarray(i, i + 997));
  const net = await run(asciiToNetwork(), chunks);
  assert.equal(net.toString(), lines.join('\r\n') + '\r\n');
  const netChunks: Buffer[] = [];
  for (let i = 0; i < net.length; i += 1013) netChunks.push(net.subarray(i, i + 1013));
  assert.ok((await run(asciiFromNetwork(), netChunks)).equals(unix));
});
