import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import type { Download } from '@ftp/storage';
import { createFileReader } from './fileReader';

const content = randomBytes(100_000);

/** Bytes only: the positional reader's buffers also carry ssh2's no-copy marker (a symbol deepEqual would compare). */
function same(actual: Buffer | null, expected: Buffer, message?: string) {
  assert.ok(actual && actual.equals(expected), message ?? 'same bytes');
}

/** A store that only streams (what an object store gives), and one that also reads at positions (local files). */
function streamOnly(offset: number): Download {
  return { stream: Readable.from([content.subarray(offset, offset + 30_000), content.subarray(offset + 30_000)]), size: content.length };
}
function positional(): Download {
  const stream = Readable.from([]);
  const readAt = async (buffer: Buffer, at: number, length: number, position: number) => {
    if (stream.destroyed) throw new Error('closed');
    // Short reads, as a file system may give them: the reader must ask again.
    return content.copy(buffer, at, position, Math.min(position + length, position + 7000, content.length));
  };
  return { stream, size: content.length, readAt };
}

for (const [name, open] of [
  ['stream', () => createFileReader(streamOnly(0), async (offset) => streamOnly(offset))],
  ['positional', () => createFileReader(positional(), async () => positional())],
] as const) {
  test(`${name} reader: in order, at other offsets, short at the end, null past it and after close`, async () => {
    const reader = open();
    same(await reader.read(0, 40_000), content.subarray(0, 40_000));
    same(await reader.read(40_000, 10), content.subarray(40_000, 40_010));
    same(await reader.read(5, 3), content.subarray(5, 8), 'backwards');
    same(await reader.read(99_990, 100), content.subarray(99_990), 'short at the end');
    assert.equal(await reader.read(100_000, 10), null);
    assert.equal(await reader.read(200_000, 10), null);
    const inFlight = [reader.read(0, 10), reader.read(10, 10)];
    same(await inFlight[1], content.subarray(10, 20), 'queued reads answer in call order');
    same(await inFlight[0], content.subarray(0, 10));
    reader.close();
    assert.equal(await reader.read(0, 10), null);
  });
}
