import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { partialNameFor } from '@ftp/storage';
import { RawClient } from '../support/rawClient';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let home: string;
before(async () => {
  server = await startTestServer();
  home = join(server.dataDir, 'alice');
  mkdirSync(home, { recursive: true });
});
after(() => server.close());

async function login() {
  const c = await RawClient.connect(server.port, server.host);
  await c.login(server.user, server.password);
  return c;
}

/** The reply exactly as it was on the wire (RawClient keeps the text after `ddd-`/`ddd `). */
function wire(reply: { code: number; text: string }) {
  return reply.text.includes('\r\n') ? `${reply.code}-${reply.text}\r\n` : `${reply.code} ${reply.text}\r\n`;
}

/** Checks RFC 959 multi-line framing and returns the lines without CRLF. */
function framed(reply: { code: number; text: string }, code: number): string[] {
  assert.equal(reply.code, code, wire(reply));
  const raw = wire(reply);
  assert.ok(raw.endsWith('\r\n'));
  const lines = raw.slice(0, -2).split('\r\n');
  assert.ok(lines.length >= 3, `multi-line: ${raw}`);
  assert.ok(lines[0].startsWith(`${code}-`), lines[0]);
  assert.ok(lines.at(-1)!.startsWith(`${code} `), lines.at(-1));
  for (const l of lines.slice(1, -1)) assert.match(l, /^ \S/, `middle line ${JSON.stringify(l)} starts with exactly one space`);
  return lines;
}

const inRange = (port: number) => port >= server.config.pasvRange.min && port <= server.config.pasvRange.max;

function dataSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function pasv(c: RawClient) {
  const r = await c.command('PASV');
  assert.equal(r.code, 227, r.text);
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text)!;
  return dataSocket(Number(m[5]) * 256 + Number(m[6]));
}

async function epsv(c: RawClient) {
  const r = await c.command('EPSV');
  assert.equal(r.code, 229, r.text);
  return dataSocket(Number(/\(\|\|\|(\d+)\|\)/.exec(r.text)![1]));
}

function readAll(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('error', reject);
    s.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** A download-type command (RETR, LIST, NLST, MLSD) over `open`: the bytes and both replies. */
async function fetch(c: RawClient, command: string, open = pasv) {
  const data = await open(c);
  const body = readAll(data);
  const first = await c.command(command);
  if (first.code !== 150) {
    data.destroy();
    return { first, final: first, body: Buffer.alloc(0) };
  }
  return { first, final: await c.reply(10_000), body: await body };
}

async function store(c: RawClient, command: string, payload: Buffer, open = pasv) {
  const data = await open(c);
  const first = await c.command(command);
  if (first.code !== 150) {
    data.destroy();
    return { first, final: first };
  }
  data.end(payload);
  return { first, final: await c.reply(10_000) };
}

test('FEAT (also before login) and HELP (after login) are multi-line replies framed per RFC 959/2389', async () => {
  const c = await RawClient.connect(server.port, server.host);
  assert.equal((await c.reply()).code, 220);
  const feat = framed(await c.command('FEAT'), 211);
  assert.equal(feat.at(-1), '211 End');
  const features = feat.slice(1, -1).map((l) => l.slice(1));
  for (const f of ['EPSV', 'REST STREAM', 'SIZE', 'UTF8', 'MFMT', 'HOST', 'MDTM']) assert.ok(features.includes(f), f);
  assert.ok(features.some((f) => /^MLST (\w+\*?;)+$/.test(f)));
  assert.ok(features.some((f) => /^HASH (\S+;)*\S+$/.test(f)));
  assert.equal((await c.command('HELP')).code, 530, 'nothing but the login before login');
  assert.equal((await c.command(`USER ${server.user}`)).code, 331);
  assert.equal((await c.command(`PASS ${server.password}`)).code, 230);
  framed(await c.command('HELP'), 214);
  c.close();
});

test('MLST: 250 multi-line with a single fact line that starts with one space', async () => {
  const c = await login();
  writeFileSync(join(home, 'mlst.bin'), randomBytes(321));
  const lines = framed(await c.command('MLST mlst.bin'), 250);
  assert.equal(lines.length, 3);
  assert.match(lines[1], /^ type=file;size=321;modify=\d{14}(\.\d{1,3})?;perm=adfrw;unique=[^;\s]+; \/mlst\.bin$/);
  const root = framed(await c.command('MLST'), 250);
  assert.match(root[1], /^ type=dir;.*; \/$/);
  assert.equal((await c.command('MLST no-such-file')).code, 550);
  c.close();
});

test('TYPE, MODE and STRU: supported values 200, others 504', async () => {
  const c = await login();
  for (const t of ['A', 'A N', 'I', 'L 8', 'a', 'i']) assert.equal((await c.command(`TYPE ${t}`)).code, 200, `TYPE ${t}`);
  for (const t of ['E', 'L 7', 'A T', 'A C']) assert.equal((await c.command(`TYPE ${t}`)).code, 504, `TYPE ${t}`);
  assert.equal((await c.command('MODE S')).code, 200);
  assert.equal((await c.command('STRU F')).code, 200);
  for (const cmd of ['MODE B', 'MODE C', 'STRU R', 'STRU P']) assert.equal((await c.command(cmd)).code, 504, cmd);
  c.close();
});

test('PASV and EPSV reply formats name a working port from the passive range', async () => {
  const c = await login();
  writeFileSync(join(home, 'pasv.txt'), 'via pasv');
  const p = await c.command('PASV');
  const m = /^Entering Passive Mode \(127,0,0,1,(\d{1,3}),(\d{1,3})\)\.$/.exec(p.text);
  assert.equal(p.code, 227);
  assert.ok(m, `227 text: ${p.text}`);
  assert.ok(inRange(Number(m[1]) * 256 + Number(m[2])));
  // A second PASV replaces the first; the transfer uses the one announced last.
  const viaPasv = await fetch(c, 'RETR pasv.txt');
  assert.equal(viaPasv.final.code, 226);
  assert.equal(viaPasv.body.toString(), 'via pasv');

  const e = await c.command('EPSV');
  assert.equal(e.code, 229);
  const em = /^Entering Extended Passive Mode \(\|\|\|(\d+)\|\)$/.exec(e.text);
  assert.ok(em, `229 text: ${e.text}`);
  assert.ok(inRange(Number(em[1])));
  assert.equal((await c.command('EPSV 1')).code, 229);
  assert.equal((await c.command('EPSV 2')).code, 522, 'IPv6 is not what this control connection uses');
  const viaEpsv = await fetch(c, 'RETR pasv.txt', epsv);
  assert.equal(viaEpsv.body.toString(), 'via pasv');

  assert.equal((await c.command('EPSV ALL')).code, 200);
  assert.equal((await c.command('PASV')).code, 503);
  assert.equal((await c.command('PORT 127,0,0,1,200,10')).code, 503);
  assert.equal((await c.command('EPRT |1|127.0.0.1|51210|')).code, 503);
  const afterAll = await fetch(c, 'RETR pasv.txt', epsv);
  assert.equal(afterAll.final.code, 226, 'EPSV still works after EPSV ALL');
  c.close();
});

test('five pipelined commands in one write are answered in order', async () => {
  const c = await login();
  c.send(Buffer.from('MKD pipe\r\nCWD pipe\r\nPWD\r\nCDUP\r\nRMD pipe\r\n'));
  const replies = [];
  for (let i = 0; i < 5; i++) replies.push(await c.reply());
  assert.deepEqual(
    replies.map((r) => r.code),
    [257, 250, 257, 250, 250],
  );
  assert.match(replies[2].text, /^"\/pipe" /);
  assert.equal(existsSync(join(home, 'pipe')), false);
  c.close();
});

test('CDUP and CWD .. at the root stay at /', async () => {
  const c = await login();
  assert.equal((await c.command('CDUP')).code, 250);
  assert.match((await c.command('PWD')).text, /^"\/" /);
  assert.equal((await c.command('CWD ../../..')).code, 250);
  assert.match((await c.command('PWD')).text, /^"\/" /);
  c.close();
});

test('REST past the end: RETR → 554 and STOR → 554, nothing changes; the next transfer starts at 0', async () => {
  const c = await login();
  writeFileSync(join(home, 'short.txt'), '0123456789');
  assert.equal((await c.command('REST 11')).code, 350);
  const retr = await fetch(c, 'RETR short.txt');
  assert.equal(retr.final.code, 554, retr.final.text);
  assert.equal((await c.command('REST 10')).code, 350);
  const atEnd = await fetch(c, 'RETR short.txt');
  assert.equal(atEnd.final.code, 226, 'REST at the exact end is allowed');
  assert.equal(atEnd.body.length, 0);
  const whole = await fetch(c, 'RETR short.txt');
  assert.equal(whole.body.toString(), '0123456789', 'REST applies to one transfer only');

  assert.equal((await c.command('REST 99')).code, 350);
  const stor = await store(c, 'STOR short.txt', Buffer.from('x'));
  assert.equal(stor.final.code, 554, stor.final.text);
  assert.equal(readFileSync(join(home, 'short.txt'), 'utf8'), '0123456789');
  assert.equal((await c.command('REST abc')).code, 501);
  c.close();
});

test('550 for RNFR of a missing file, MKD of an existing folder, RMD non-empty, DELE a folder, SIZE a folder', async () => {
  const c = await login();
  mkdirSync(join(home, 'full'), { recursive: true });
  writeFileSync(join(home, 'full', 'f.txt'), 'f');
  assert.equal((await c.command('RNFR missing.txt')).code, 550);
  assert.equal((await c.command('RNTO other.txt')).code, 503, 'RNTO without a good RNFR');
  assert.equal((await c.command('MKD full')).code, 550);
  assert.equal((await c.command('RMD full')).code, 550);
  assert.equal((await c.command('DELE full')).code, 550);
  assert.equal((await c.command('SIZE full')).code, 550);
  assert.equal((await c.command('RETR full')).code, 550);
  assert.equal((await c.command('DELE missing.txt')).code, 550);
  assert.equal((await c.command('CWD full/f.txt')).code, 550);
  assert.ok(existsSync(join(home, 'full', 'f.txt')), 'nothing was removed');
  c.close();
});

test('a name with spaces at both ends round-trips through STOR, LIST, NLST, MLSD and RETR', async () => {
  const c = await login();
  const name = '  spaced name  ';
  const payload = randomBytes(5000);
  mkdirSync(join(home, 'spaces'), { recursive: true });
  assert.equal((await c.command('CWD spaces')).code, 250);
  const up = await store(c, `STOR ${name}`, payload);
  assert.equal(up.final.code, 226);
  assert.deepEqual(readdirSync(join(home, 'spaces')), [name], 'stored under the exact name');
  assert.ok(readFileSync(join(home, 'spaces', name)).equals(payload));

  const list = (await fetch(c, 'LIST')).body.toString();
  assert.ok(list.endsWith('\r\n'), 'LIST lines end with CRLF');
  const line = list.split('\r\n')[0];
  const m = /^-[-rwx]{9} +\d+ +\S+ +\S+ +(\d+) \w{3} \d{2} +[\d:]{4,5} (.*)$/.exec(line);
  assert.ok(m, line);
  assert.equal(m[1], '5000');
  assert.equal(m[2], name);
  assert.equal((await fetch(c, 'NLST')).body.toString(), `${name}\r\n`);
  const mlsd = (await fetch(c, 'MLSD')).body.toString();
  assert.equal(mlsd.slice(mlsd.indexOf('; ') + 2), `${name}\r\n`, 'MLSD: the name follows "; " exactly');
  const back = await fetch(c, `RETR ${name}`);
  assert.ok(back.body.equals(payload));
  assert.equal((await c.command(`SIZE ${name}`)).text, '5000');
  c.close();
});

test('TYPE A: LF files go out as CRLF, CRLF uploads are stored as LF; TYPE I is untouched', async () => {
  const c = await login();
  writeFileSync(join(home, 'ascii.txt'), 'a\nb\r\nc\n');
  assert.equal((await c.command('TYPE A')).code, 200);
  assert.equal((await fetch(c, 'RETR ascii.txt')).body.toString(), 'a\r\nb\r\nc\r\n');
  assert.equal((await store(c, 'STOR ascii-up.txt', Buffer.from('x\r\ny\r\n'))).final.code, 226);
  assert.equal(readFileSync(join(home, 'ascii-up.txt'), 'utf8'), 'x\ny\n');
  assert.equal((await c.command('TYPE I')).code, 200);
  assert.equal((await fetch(c, 'RETR ascii.txt')).body.toString(), 'a\nb\r\nc\n');
  c.close();
});

test('HOST before USER is accepted, after it 503; commands before login 530; unknown verbs 500', async () => {
  const c = await RawClient.connect(server.port, server.host);
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.command('PWD')).code, 530);
  assert.equal((await c.command('HOST localhost')).code, 220);
  assert.equal((await c.command('XYZZY')).code, 500);
  assert.equal((await c.command('USER alice')).code, 331);
  assert.equal((await c.command('HOST localhost')).code, 503);
  assert.equal((await c.command(`PASS ${server.password}`)).code, 230);
  assert.equal((await c.command('QUIT')).code, 221);
  await c.waitClosed();
});

test('a control connection dropped mid-STOR keeps the partial and leaves no timer behind', async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const closed = () => server.logs.filter((l) => l.msg === 'session closed').length;
  const baseline = timers();
  const closedBefore = closed();
  for (let i = 0; i < 3; i++) {
    const c = await login();
    const data = await pasv(c);
    data.on('error', () => {});
    assert.equal((await c.command(`STOR dropped-${i}.bin`)).code, 150);
    data.write(randomBytes(2 * 1024 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 30));
    c.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 30));
    data.destroy();
  }
  for (let i = 0; i < 200 && closed() < closedBefore + 3; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(closed(), closedBefore + 3, 'the server closed all three sessions');
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (let i = 0; i < 3; i++) {
    assert.equal(existsSync(join(home, `dropped-${i}.bin`)), false, 'never published');
    assert.ok(existsSync(join(home, partialNameFor(`dropped-${i}.bin`))), 'partial kept for a resume');
  }
  assert.ok(timers() <= baseline, `timers: ${baseline} before, ${timers()} after (an idle timer re-armed on a closed session)`);
});
