import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { COMMANDS } from '@ftp/protocol';
import { passiveDownload, passiveUpload, rawLogin, sleep, waitFor } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1234);
const CONNECTIONS = 20;
const LINES = 300;
/** Per-connection wall clock, so a stuck connection fails the test instead of hanging it. */
const CONNECTION_BUDGET_MS = 12_000;

/** mulberry32: small, fast, good enough to make the stream reproducible from SEED. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  return { next, int, pick };
}
type Rng = ReturnType<typeof prng>;

let server: TestServer;
/** A loopback port with nothing listening: PORT/EPRT in the fuzz stream point here, so active mode never reaches a stranger. */
let closedPort: number;
before(async () => {
  server = await startTestServer({
    env: { FTP_DATA_CONNECT_TIMEOUT: '1', FTP_IDLE_TIMEOUT: '3', FTP_BAN_AFTER_FAILURES: '0', FTP_STALL_TIMEOUT: '2' },
  });
  const home = join(server.dataDir, 'alice');
  mkdirSync(join(home, 'dir', 'sub'), { recursive: true });
  writeFileSync(join(home, 'file.txt'), 'fuzz target\n');
  writeFileSync(join(home, 'dir', 'inner.bin'), Buffer.alloc(4096, 7));
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
});
after(() => server.close());

function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    // Bias towards the bytes that matter to the line decoder: IAC, CR, LF, NUL, high UTF-8 bytes.
    out[i] = rng.next() < 0.3 ? rng.pick([0xff, 0x0d, 0x0a, 0x00, 0xf4, 0xf2, 0xfa, 0xf0, 0xc3, 0x80, 0x20]) : rng.int(256);
  }
  return out;
}

function randomArg(rng: Rng): Buffer | string {
  const p = closedPort;
  switch (rng.int(16)) {
    case 0:
      return '';
    case 1:
      return rng.pick(['/', '.', '..', '../..', '/../../..', 'dir', 'dir/sub', 'file.txt', 'dir/inner.bin', 'nope', '-la', '-la dir']);
    case 2:
      return `${rng.pick(['', '/', '../', 'dir/'])}${'x'.repeat(rng.int(40))}${rng.pick(['', '.txt', '/', '/..'])}`;
    case 3:
      return String(rng.int(10) < 5 ? rng.int(100000) : -rng.int(1000)) + rng.pick(['', '0000000000000000000', 'abc']);
    case 4:
      return rng.pick([`127,0,0,1,${p >> 8},${p & 255}`, '127,0,0,1', '1,2,3,4,5,6', '256,0,0,1,1,1', '10,0,0,1,200,1', ',,,,,']);
    case 5:
      return rng.pick([`|1|127.0.0.1|${p}|`, '|2|::1|1025|', '|1|127.0.0.1|', '||||', '|9|x|1|', `!1!127.0.0.1!${p}!`]);
    case 6:
      return randomBytes(rng, rng.int(64));
    case 7:
      return 'z'.repeat(7000 + rng.int(3000)); // around the 8 KiB line limit
    case 8:
      return rng.pick(['ALL', '1', '2', '3', 'I', 'A', 'A N', 'L 8', 'E', 'S', 'B', 'F', 'R']);
    case 9:
      return rng.pick(['UTF8 ON', 'MLST type;size;', 'MLST', 'HASH MD5', 'HASH SHA-512', 'FOO bar']);
    case 10:
      return `20${rng.int(100)}0101000000 ${rng.pick(['file.txt', 'dir', 'nope', '../x'])}`;
    case 11:
      return `na\u00efve-${rng.int(1000)}-\u{1f600}`;
    case 12:
      return rng.pick(['alice', 'anonymous', 'nobody', server.password, 'wrong', '']);
    default:
      return `${rng.pick(['a', 'b', 'dir/c', '../d', 'dir/sub/e'])}${rng.int(50)}`;
  }
}

const VERBS = Object.keys(COMMANDS);
/** Verbs that wait for a data connection: rarer, or every stream would stall on the 1 s data timeout. */
const DATA_PREP = new Set(['PASV', 'EPSV', 'PORT', 'EPRT']);

function randomLine(rng: Rng): Buffer {
  const eol = rng.pick(['\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r', '']);
  const roll = rng.next();
  let body: Buffer;
  if (roll < 0.55) {
    let verb = rng.pick(VERBS);
    if (DATA_PREP.has(verb) && rng.next() < 0.7) verb = 'NOOP';
    if (verb === 'QUIT' && rng.next() < 0.8) verb = 'SYST';
    const cased = rng.next() < 0.2 ? verb.toLowerCase() : verb;
    const arg = randomArg(rng);
    body = Buffer.concat([Buffer.from(cased), arg.length || rng.next() < 0.3 ? Buffer.from(' ') : Buffer.alloc(0), Buffer.from(arg)]);
  } else if (roll < 0.7) {
    body = randomBytes(rng, rng.int(80));
  } else if (roll < 0.78) {
    // Telnet: IP, DM, WILL/DO negotiation, SB, escaped IAC, or a lone IAC at the end of a chunk.
    body = Buffer.concat([Buffer.from(rng.pick([[0xff, 0xf4], [0xff, 0xf2], [0xff, 0xfb, 0x01], [0xff, 0xfd, 0x03], [0xff, 0xfa], [0xff, 0xff], [0xff]])), Buffer.from(rng.pick(['ABOR', 'NOOP', 'STAT', '']))]);
  } else if (roll < 0.82) {
    body = Buffer.from(`${rng.pick(VERBS)} ${'y'.repeat(9000 + rng.int(20000))}`);
  } else if (roll < 0.9) {
    body = Buffer.from(rng.pick(['USER alice', `PASS ${server.password}`, 'PASS wrong', 'REIN', 'USER anonymous', 'ABOR', 'STAT', 'HELP', 'FEAT']));
  } else {
    body = Buffer.from(rng.pick(['', ' ', '\0', '\r', 'A\0B', '\t', 'NOOP\0', 'CWD \0', 'RETR a\0b', 'STOR x\ry']));
  }
  return Buffer.concat([body, Buffer.from(eol)]);
}

/** A random line of at most 128 bytes that cannot end the session (no QUIT in it, whatever the case). */
function shortLine(rng: Rng): Buffer {
  for (;;) {
    const line = randomLine(rng);
    if (line.length <= 128 && !/quit/i.test(line.toString('latin1'))) return line;
  }
}

interface Outcome {
  index: number;
  text: string;
  closedByServer: boolean;
  burst: boolean;
}

/** Runs one fuzz connection: optional login, then LINES random lines in random chunks, pipelined. */
async function fuzzConnection(index: number): Promise<Outcome> {
  const rng = prng(SEED + index * 7919);
  const socket = connect({ host: '127.0.0.1', port: server.port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  let closedByServer = false;
  let lastData = Date.now();
  // Final reply lines seen so far, counted as they arrive (the window below must not rescan everything).
  let finalLines = 0;
  let partialLine = '';
  socket.on('data', (b: Buffer) => {
    chunks.push(b);
    lastData = Date.now();
    const lines = (partialLine + b.toString('latin1')).split('\r\n');
    partialLine = lines.pop() ?? '';
    for (const line of lines) if (/^\d{3} /.test(line)) finalLines++;
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.once('end', () => (closedByServer = true));
  const started = Date.now();
  // The greeting first, as a client waits for it: on a loaded machine admission can take longer than the quiet
  // period below, and a connection that gave up before its greeting would say nothing about the server.
  while (chunks.length === 0 && !closedByServer && Date.now() - started < CONNECTION_BUDGET_MS) await sleep(10);

  // Every fifth connection bursts the whole stream at once: far more than the server queues, so it must say 421.
  // Its lines are short and hold no QUIT, so that they arrive in one read whatever the load: a burst that the kernel
  // delivered in pieces could be worked off, or QUIT, before the queue overflows. The others pipeline theirs in
  // random slices (split anywhere, even inside a Telnet sequence or a UTF-8 character), keeping at most WINDOW
  // replies outstanding so that the stream gets deep into the session instead of only into the queue limit.
  const burst = index % 5 === 4;
  const lines: Buffer[] = [];
  if (index % 2 === 0) lines.push(Buffer.from(`USER alice\r\nPASS ${server.password}\r\n`));
  for (let i = 0; i < LINES; i++) lines.push(burst ? shortLine(rng) : randomLine(rng));
  const stream = Buffer.concat(lines);
  const WINDOW = 24;
  let sentLines = 0;
  for (let at = 0; at < stream.length && !socket.destroyed && !closedByServer; ) {
    const size = burst ? stream.length : 1 + rng.int(rng.next() < 0.5 ? 64 : 1024);
    const slice = stream.subarray(at, at + size);
    at += size;
    sentLines += slice.filter((b) => b === 0x0a).length;
    if (!socket.write(slice)) await Promise.race([once(socket, 'drain'), closed]);
    const waitUntil = Date.now() + 400; // lines without a reply of their own (no LF, Telnet only) must not stall us
    while (!burst && sentLines - finalLines > WINDOW && Date.now() < waitUntil && !closedByServer) await sleep(2);
    if (Date.now() - started > CONNECTION_BUDGET_MS) break;
  }
  // Wait until the server closes or goes quiet after our last byte, within the budget.
  lastData = Math.max(lastData, Date.now());
  while (!socket.destroyed && !closedByServer && Date.now() - lastData < 2000 && Date.now() - started < CONNECTION_BUDGET_MS) await sleep(50);
  socket.destroy();
  await closed;
  return { index, text: Buffer.concat(chunks).toString('latin1'), closedByServer, burst };
}

/** Splits what the server sent into replies, strictly; throws on anything that is not RFC 959 framing. */
function parseReplies(text: string, complete: boolean): { code: number; last: string }[] {
  const replies: { code: number; last: string }[] = [];
  let rest = text;
  while (rest.length > 0) {
    const first = /^(\d{3})([ -])([^\r\n]*)\r\n/.exec(rest);
    if (!first) {
      if (!complete && !rest.includes('\r\n')) break; // cut mid-line by our own destroy
      throw new Error(`not a reply: ${JSON.stringify(rest.slice(0, 120))}`);
    }
    if (first[2] === ' ') {
      replies.push({ code: Number(first[1]), last: first[3] });
      rest = rest.slice(first[0].length);
      continue;
    }
    const end = new RegExp(`\\r\\n${first[1]} ([^\\r\\n]*)\\r\\n`).exec(rest);
    if (!end) {
      if (!complete) break;
      throw new Error(`unterminated multi-line reply: ${JSON.stringify(rest.slice(0, 120))}`);
    }
    replies.push({ code: Number(first[1]), last: end[1] });
    rest = rest.slice(end.index + end[0].length);
  }
  return replies;
}

test(`fuzz: ${CONNECTIONS} connections × ${LINES} random lines (seed ${SEED}) never crash the server`, { timeout: 45_000 }, async () => {
  const outcomes = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => fuzzConnection(i)));
  const hostRoot = dirname(server.dataDir);
  let replies = 0;
  for (const o of outcomes) {
    const where = `seed ${SEED}, connection ${o.index}`;
    const parsed = parseReplies(o.text, o.closedByServer);
    replies += parsed.length;
    assert.equal(parsed[0]?.code, 220, `${where}: greeting`);
    assert.ok(parsed.length >= 2, `${where}: got replies after the greeting`);
    for (const r of parsed) assert.ok(r.code >= 100 && r.code <= 599, `${where}: code ${r.code}`);
    // The server only ever hangs up after saying why (421) or after QUIT (221).
    if (o.closedByServer) assert.ok([221, 421].includes(parsed[parsed.length - 1].code), `${where}: closed after ${parsed[parsed.length - 1].code}`);
    if (o.burst) assert.ok(o.closedByServer && parsed[parsed.length - 1].code === 421, `${where}: a 300-line burst overflows the queue`);
    assert.ok(!o.text.includes(hostRoot), `${where}: a reply reveals a host path`);
  }
  assert.ok(replies > CONNECTIONS * 20, `only ${replies} replies in total`);

  await waitFor('fuzz sessions to close', async () => ((await server.edge.metrics.sessionsActive.get()).values.reduce((n, v) => n + v.value, 0)) === 0, 10_000);
  await waitFor('passive leases to be released', async () => (await server.edge.cluster.ports.inUse()) === 0);

  // Nothing crashed, and every error-level line is a storage refusal, not an exception in our code.
  assert.deepEqual(server.logs.filter((l) => l.msg === 'session crashed'), []);
  const unexpected = server.logs.filter((l) => (l.level as number) >= 50 && (l.err as { type?: string } | undefined)?.type !== 'StorageError');
  assert.deepEqual(unexpected, [], `seed ${SEED}`);

  // And the server still works normally.
  const c = await rawLogin(server);
  assert.equal((await passiveDownload(c, 'LIST /')).final.code, 226);
  const payload = Buffer.from('after the storm\n');
  assert.equal((await passiveUpload(c, 'STOR /after-fuzz.txt', payload)).final.code, 226);
  const back = await passiveDownload(c, 'RETR /after-fuzz.txt');
  assert.equal(back.final.code, 226);
  assert.deepEqual(back.body, payload);
  assert.match((await passiveDownload(c, 'NLST /')).body.toString(), /after-fuzz\.txt/);
  assert.equal((await c.command('QUIT')).code, 221);
});
