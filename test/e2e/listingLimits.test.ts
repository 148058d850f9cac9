// Listing and path limits (security finding 6 of issue 12): a listing over FTP_MAX_LIST_ENTRIES and a path over
// FTP_MAX_PATH_DEPTH / FTP_MAX_PATH_LENGTH get one clear reply and a warning in the log; big listings stream whole.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RawClient } from '../support/rawClient';
import { passiveDownload, passiveUpload } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';

const MAX_ENTRIES = 700;
const MAX_DEPTH = 8;
const MAX_LENGTH = 300;

/** A command with a data connection: the final reply and the bytes (none when refused before 150). */
async function fetch(c: RawClient, command: string) {
  const { final, body } = await passiveDownload(c, command);
  return { code: final.code, text: final.text, body: body.toString() };
}

const levels = (n: number) => `/${Array.from({ length: n }, (_, i) => String(i + 1)).join('/')}`;

describe('listing and path limits', () => {
  let server: TestServer;
  let c: RawClient;
  const okNames = Array.from({ length: 600 }, (_, i) => `n${String(599 - i).padStart(5, '0')}`); // created in reverse order
  before(async () => {
    server = await startTestServer({
      env: { FTP_MAX_LIST_ENTRIES: String(MAX_ENTRIES), FTP_MAX_PATH_DEPTH: String(MAX_DEPTH), FTP_MAX_PATH_LENGTH: String(MAX_LENGTH) },
    });
    const home = join(server.dataDir, 'alice');
    mkdirSync(join(home, 'ok'), { recursive: true });
    for (const name of okNames) writeFileSync(join(home, 'ok', name), '');
    mkdirSync(join(home, 'big'));
    for (let i = 0; i <= MAX_ENTRIES; i++) mkdirSync(join(home, 'big', `d${i}`));
    mkdirSync(join(home, ...levels(12).split('/')), { recursive: true }); // deeper than the limit, made on the host
    c = await RawClient.connect(server.port, server.host);
    await c.login(server.user, server.password);
  });
  after(async () => {
    c.close();
    await server.close();
  });

  const warned = (code: string, reply: number) =>
    server.logs.some((l) => l.level === 40 && l.reply === reply && (l.err as { code?: string } | undefined)?.code === code);

  test('a folder over FTP_MAX_LIST_ENTRIES: LIST, NLST, MLSD and STAT answer 550 naming the limit, before any data', async () => {
    const expected = new RegExp(`^Too many entries to list \\(directory has more than ${MAX_ENTRIES} entries\\)$`);
    for (const command of ['LIST big', 'NLST big', 'MLSD big', 'LIST -la big']) {
      const r = await fetch(c, command);
      assert.equal(r.code, 550, `${command}: ${r.text}`);
      assert.match(r.text, expected);
    }
    const stat = await c.command('STAT big');
    assert.equal(stat.code, 550, stat.text);
    assert.match(stat.text, expected);
    assert.ok(warned('too-many-entries', 550), 'a warning is logged');
    assert.equal((await c.command('NOOP')).code, 200, 'the session goes on');
  });

  test('a folder under the limit streams every entry, in name order, over several batches', async () => {
    const sorted = [...okNames].sort();
    const list = await fetch(c, 'LIST ok');
    assert.equal(list.code, 226, list.text);
    const lines = list.body.split('\r\n');
    assert.equal(lines.pop(), '', 'every line ends with CRLF');
    assert.deepEqual(lines.map((l) => l.slice(l.lastIndexOf(' ') + 1)), sorted);
    assert.ok(lines.every((l) => l.startsWith('-rw')), lines[0]);
    assert.equal((await fetch(c, 'NLST ok')).body, `${sorted.join('\r\n')}\r\n`);
    const mlsd = await fetch(c, 'MLSD ok');
    assert.deepEqual(mlsd.body.split('\r\n').filter(Boolean).map((l) => l.slice(l.indexOf('; ') + 2)), sorted);
    const stat = await c.command('STAT ok');
    assert.equal(stat.code, 213);
    assert.equal(stat.text.split('\r\n').length, sorted.length + 2);
    assert.equal((await fetch(c, 'NLST ok/n00007')).body, 'n00007\r\n', 'a file lists itself');
  });

  test(`CWD stops at FTP_MAX_PATH_DEPTH (${MAX_DEPTH}): deeper paths get 553 naming the limit`, async () => {
    assert.equal((await c.command(`CWD ${levels(MAX_DEPTH)}`)).code, 250);
    const deeper = await c.command('CWD 9');
    assert.equal(deeper.code, 553, deeper.text);
    assert.equal(deeper.text, `Path too long (path deeper than ${MAX_DEPTH} levels)`);
    assert.equal((await c.command('PWD')).text, `"${levels(MAX_DEPTH)}" is the current directory`);
    assert.equal((await c.command('MKD new')).code, 553);
    assert.equal((await c.command('STAT 9')).code, 553);
    assert.equal((await fetch(c, 'LIST 9')).code, 553);
    assert.equal((await c.command(`CWD ${levels(12)}`)).code, 553);
    assert.equal((await c.command('CWD ..')).code, 250, 'going up works');
    assert.equal((await c.command('CWD /')).code, 250);
    assert.ok(warned('path-too-long', 553), 'a warning is logged');
  });

  test(`a path longer than FTP_MAX_PATH_LENGTH (${MAX_LENGTH} bytes) gets 553 naming the limit, uploads included`, async () => {
    const long = 'x'.repeat(MAX_LENGTH);
    const mkd = await c.command(`MKD ${long}`);
    assert.equal(mkd.code, 553, mkd.text);
    assert.equal(mkd.text, `Path too long (path longer than ${MAX_LENGTH} bytes)`);
    const stor = (await passiveUpload(c, `STOR ${long}`, Buffer.alloc(0))).first;
    assert.equal(stor.code, 553, stor.text);
    // A name is at most 255 bytes on Linux: two levels reach the limit.
    const parent = `/${'a'.repeat(200)}`;
    assert.equal((await c.command(`MKD ${parent}`)).code, 257);
    const atLimit = `${parent}/${'b'.repeat(MAX_LENGTH - parent.length - 1)}`;
    assert.equal((await c.command(`MKD ${atLimit}`)).code, 257, 'at the limit it works');
    assert.equal((await c.command(`MKD ${atLimit}c`)).code, 553);
  });
});
