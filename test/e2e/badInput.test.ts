import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RawClient } from '../support/rawClient';
import { once } from 'node:events';
import { connect } from 'node:net';
import { passiveDownload, passiveUpload, rawLogin, sleep, waitFor, writeData } from '../support/rawData';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
/** `<tmp>/secret.txt`: beside the data root, never reachable. */
let outsideSecret: string;
/** `<dataDir>/bob/secret.txt`: another user's home. */
let bobSecret: string;
let outsideDir: string;
let home: string;
const SECRET = 'TOP SECRET: do not leak\n';

before(async () => {
  server = await startTestServer({
    // bob's hash is never used for login here; only his home folder matters.
    extraUsers: '  bob:\n    password: "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="\n    home: bob\n',
  });
  home = join(server.dataDir, 'alice');
  const base = dirname(server.dataDir);
  outsideSecret = join(base, 'secret.txt');
  outsideDir = join(base, 'outdir');
  bobSecret = join(server.dataDir, 'bob', 'secret.txt');
  writeFileSync(outsideSecret, SECRET);
  mkdirSync(outsideDir);
  writeFileSync(join(outsideDir, 'inner.txt'), SECRET);
  mkdirSync(dirname(bobSecret), { recursive: true });
  writeFileSync(bobSecret, SECRET);
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'mine.txt'), 'mine\n');
  // A symlink an admin (or an earlier bug) left inside alice's home, leading out of it.
  symlinkSync(base, join(home, 'escape'));
  // A folder whose STAT listing is a large reply (about 40 KB).
  mkdirSync(join(home, 'many'));
  for (let i = 0; i < 400; i++) writeFileSync(join(home, 'many', `a-file-with-a-rather-long-name-${String(i).padStart(5, '0')}.dat`), '');
});
after(() => server.close());

async function anonymousClient() {
  const c = await RawClient.connect(server.port);
  assert.equal((await c.reply()).code, 220);
  return c;
}

describe('line framing', () => {
  test('a command line over 8 KiB → 500, and the session stays usable', async () => {
    const c = await rawLogin(server);
    const long = await c.command(`CWD ${'a'.repeat(9000)}`);
    assert.equal(long.code, 500);
    assert.match(long.text, /too long/i);
    assert.equal((await c.command('NOOP')).code, 200);
    assert.equal((await c.command('PWD')).text, '"/" is the current directory');
    // Exactly at the limit is still a line (8192 bytes before CRLF) and reaches the dispatcher.
    const atLimit = await c.command(`NOOP ${'b'.repeat(8192 - 5)}`);
    assert.equal(atLimit.code, 501, 'NOOP takes no argument: the line was parsed, not refused as too long');
    assert.ok(server.logs.some((l) => l.msg === 'bad command line' && l.problem === 'too-long'));
    c.close();
  });

  test('a multi-megabyte line without LF is refused while it is still arriving; the session survives', async () => {
    const c = await rawLogin(server);
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    await writeData(c.socket, Buffer.from('STOR '));
    await writeData(c.socket, chunk);
    // The 500 comes before the line ends: the server is discarding, not buffering towards an LF.
    const early = await c.reply();
    assert.equal(early.code, 500);
    for (let i = 0; i < 7; i++) await writeData(c.socket, chunk);
    c.send('');
    assert.equal((await c.command('NOOP')).code, 200);
    assert.equal(existsSync(join(home, 'x'.repeat(100))), false);
    c.close();
  });

  test('invalid UTF-8 in a command → 501, and the session stays usable', async () => {
    const c = await rawLogin(server);
    for (const bad of [Buffer.from([0xc3, 0x28]), Buffer.from([0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80])]) {
      c.send(Buffer.concat([Buffer.from('MKD bad'), bad, Buffer.from('\r\n')]));
      const r = await c.reply();
      assert.equal(r.code, 501, `bytes ${bad.toString('hex')}`);
      assert.match(r.text, /UTF-8/);
    }
    assert.equal((await c.command('NOOP')).code, 200);
    // Nothing was created under any decoding of those bytes.
    assert.deepEqual(
      (await passiveDownload(c, 'NLST')).body.toString().split('\r\n').filter((n) => n.startsWith('bad')),
      [],
    );
    c.close();
  });
});

describe('clients that do not read their replies', () => {
  const sessionsActive = async () => (await server.edge.metrics.sessionsActive.get()).values.reduce((n, v) => n + v.value, 0);
  const statCount = async () =>
    (await server.edge.metrics.commandsTotal.get()).values.filter((v) => v.labels.verb === 'STAT').reduce((n, v) => n + v.value, 0);

  /** Sends `line` every `everyMs` without ever reading, until the server drops the connection or `budgetMs` passes. */
  async function neverRead(line: string, everyMs: number, budgetMs: number) {
    const socket = connect({ host: '127.0.0.1', port: server.port });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.pause();
    let closed = false;
    socket.once('close', () => (closed = true));
    const started = Date.now();
    let sent = 0;
    while (!closed && Date.now() - started < budgetMs) {
      socket.write(line);
      sent++;
      await sleep(everyMs);
    }
    socket.destroy();
    return { closed, sent, ms: Date.now() - started };
  }

  test('one that floods commands without reading is cut off after one 421, logged once', { timeout: 30_000 }, async () => {
    const warnings = () => server.logs.filter((l) => l.msg === 'too many pipelined commands: closing').length;
    const before = warnings();
    const run = await neverRead('FEAT\r\nFEAT\r\nFEAT\r\nFEAT\r\nFEAT\r\nFEAT\r\nFEAT\r\nFEAT\r\n', 1, 15_000);
    assert.ok(run.closed, `still connected after ${run.ms} ms`);
    assert.equal(warnings() - before, 1, 'one log line per session, not one per chunk');
    await waitFor('session closed', async () => (await sessionsActive()) === 0);
  });

  test('one that paces big replies below the queue limit without reading is cut off, not buffered without bound', { timeout: 30_000 }, async () => {
    const before = await statCount();
    const reply = await rawLogin(server);
    const size = Buffer.byteLength((await reply.command('STAT /many')).text);
    reply.close();
    assert.ok(size > 30_000);
    // Logged in, so that STAT with a path runs; each command is its own segment, so the queue never overflows on arrival.
    const socket = connect({ host: '127.0.0.1', port: server.port });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(`USER ${server.user}\r\nPASS ${server.password}\r\n`);
    await sleep(300);
    socket.pause();
    let closed = false;
    socket.once('close', () => (closed = true));
    const started = Date.now();
    // Slower than the server answers, so only the unread replies can stop it; bounded by MAX_BUFFERED of them.
    const MAX_BUFFERED = 16 * 1024 * 1024;
    let executed = 0;
    while (!closed && Date.now() - started < 15_000 && executed * size < MAX_BUFFERED) {
      socket.write('STAT /many\r\n');
      await sleep(10);
      executed = (await statCount()) - before - 1;
    }
    socket.destroy();
    // What the server generated for a reader that took nothing: kernel buffers' worth, not everything asked for.
    assert.ok(executed * size < MAX_BUFFERED, `${executed} STAT replies of ${size} bytes were generated for a client that never read`);
    assert.ok(closed, `still connected after ${Date.now() - started} ms`);
    await waitFor('session closed', async () => (await sessionsActive()) === 0);
    const after = await rawLogin(server);
    assert.equal((await after.command('NOOP')).code, 200);
    after.close();
  });
});

describe('command sequencing', () => {
  test('unknown command → 500, before and after login', async () => {
    const c = await anonymousClient();
    assert.equal((await c.command('FOOBAR x')).code, 500);
    assert.equal((await c.command('__PROTO__')).code, 500);
    assert.equal((await c.command('CONSTRUCTOR')).code, 500);
    c.close();
    const d = await rawLogin(server);
    const r = await d.command('XYZZY');
    assert.equal(r.code, 500);
    assert.match(r.text, /XYZZY/);
    assert.equal((await d.command('NOOP')).code, 200);
    d.close();
  });

  test('commands that need a login → 530 before login; the session still logs in', async () => {
    const c = await anonymousClient();
    for (const line of ['LIST', 'NLST', 'RETR mine.txt', 'STOR x', 'CWD /', 'PWD', 'STAT /', 'SIZE mine.txt', 'DELE mine.txt', 'MKD d', 'PASV', 'PORT 127,0,0,1,4,1']) {
      const r = await c.command(line);
      assert.equal(r.code, 530, line);
    }
    // Before login nothing but the login works: not even STAT or NOOP (they would let a connection look busy).
    assert.equal((await c.command('STAT')).code, 530);
    assert.equal((await c.command('NOOP')).code, 530);
    assert.equal((await c.command(`USER ${server.user}`)).code, 331);
    assert.equal((await c.command(`PASS ${server.password}`)).code, 230);
    assert.equal((await c.command('PWD')).code, 257);
    c.close();
    assert.equal(existsSync(join(home, 'x')), false);
    assert.equal(existsSync(join(home, 'd')), false);
  });

  test('PASS without USER → 503; RNTO without RNFR → 503', async () => {
    const c = await anonymousClient();
    assert.equal((await c.command(`PASS ${server.password}`)).code, 503);
    assert.equal((await c.command('PWD')).code, 530, 'PASS alone did not log in');
    c.close();
    const d = await rawLogin(server);
    assert.equal((await d.command('RNTO other.txt')).code, 503);
    assert.equal((await d.command('RNFR mine.txt')).code, 350);
    assert.equal((await d.command('NOOP')).code, 200);
    d.close();
    assert.equal(existsSync(join(home, 'other.txt')), false);
    assert.equal(readFileSync(join(home, 'mine.txt'), 'utf8'), 'mine\n');
  });
});

describe('PORT and EPRT', () => {
  test('malformed PORT/EPRT → 501', async () => {
    const c = await rawLogin(server);
    const bad = [
      'PORT 127,0,0,1,4',
      'PORT 127,0,0,1,4,1,1',
      'PORT 127,0,0,1,256,1',
      'PORT 127,0,0,1,4,-1',
      'PORT 127,0,0,1,0,0',
      'PORT a,b,c,d,e,f',
      'PORT 127.0.0.1,4,1',
      'PORT 127,0,0,1,,1',
      'PORT 1270,0,0,1,4,1',
      'PORT ,,,,,',
      'EPRT |1|127.0.0.1|',
      'EPRT |1|127.0.0.1|0|',
      'EPRT |1|127.0.0.1|70000|',
      'EPRT |3|127.0.0.1|5000|',
      'EPRT |1|::1|5000|',
      'EPRT |2|127.0.0.1|5000|',
      'EPRT |1|999.0.0.1|5000|',
      'EPRT |1|127.0.0.1|50a0|',
      'EPRT x',
      'EPRT 1|127.0.0.1|5000|',
    ];
    for (const line of bad) assert.equal((await c.command(line)).code, 501, line);
    assert.equal((await c.command('PORT')).code, 501);
    assert.equal((await c.command('NOOP')).code, 200);
    c.close();
  });

  test('PORT/EPRT to a foreign address or a privileged port → 504, never dialled', async () => {
    const c = await rawLogin(server);
    for (const line of ['PORT 10,1,2,3,4,1', 'EPRT |1|10.1.2.3|1025|', 'EPRT |2|::1|1025|', 'PORT 127,0,0,2,4,1']) {
      const r = await c.command(line);
      assert.equal(r.code, 504, line);
      assert.match(r.text, /foreign/);
    }
    for (const line of ['PORT 127,0,0,1,0,21', 'PORT 127,0,0,1,3,255', 'EPRT |1|127.0.0.1|22|']) {
      const r = await c.command(line);
      assert.equal(r.code, 504, line);
      assert.match(r.text, /privileged/);
    }
    // No data channel was prepared by any of them.
    assert.equal((await c.command('LIST')).code, 150);
    assert.equal((await c.reply()).code, 425);
    assert.ok(server.logs.some((l) => l.msg === 'active data connection to a foreign address refused' && l.target === '10.1.2.3'));
    assert.equal((await c.command('NOOP')).code, 200);
    c.close();
  });
});

describe('path traversal', () => {
  const SECRET_PATHS = [
    '../secret.txt',
    '../../secret.txt',
    '/../../../secret.txt',
    '/../secret.txt',
    '../bob/secret.txt',
    '../../data/bob/secret.txt',
    '..\\..\\secret.txt',
    '....//secret.txt',
    '%2e%2e/secret.txt',
    'escape/secret.txt',
    'escape/data/bob/secret.txt',
    './escape/../escape/secret.txt',
  ];
  const untouched = () => {
    assert.equal(readFileSync(outsideSecret, 'utf8'), SECRET);
    assert.equal(readFileSync(bobSecret, 'utf8'), SECRET);
    assert.equal(readFileSync(join(outsideDir, 'inner.txt'), 'utf8'), SECRET);
  };

  test('CWD is clamped at the user root and cannot enter outside folders', async () => {
    const c = await rawLogin(server);
    assert.equal((await c.command('CWD ../../..')).code, 250);
    assert.equal((await c.command('PWD')).text, '"/" is the current directory');
    assert.equal((await c.command('CDUP')).code, 250);
    assert.equal((await c.command('PWD')).text, '"/" is the current directory');
    for (const dir of ['../outdir', '/../../outdir', '../bob', 'escape', 'escape/outdir', '..\\outdir']) {
      assert.equal((await c.command(`CWD ${dir}`)).code, 550, dir);
      assert.equal((await c.command('PWD')).text, '"/" is the current directory', dir);
    }
    c.close();
  });

  test('listings (LIST, NLST, MLSD, MLST, STAT) never show or reach outside', async () => {
    const c = await rawLogin(server);
    for (const verb of ['LIST', 'NLST', 'MLSD']) {
      for (const dir of ['../..', '/..', '../../..']) {
        const { first, final, body } = await passiveDownload(c, `${verb} ${dir}`);
        assert.equal(first.code, 150, `${verb} ${dir}`);
        assert.equal(final.code, 226);
        const text = body.toString();
        assert.match(text, /mine\.txt/, `${verb} ${dir} lists alice's root`);
        assert.doesNotMatch(text, /secret|users\.yaml|outdir|bob/, `${verb} ${dir}`);
      }
      for (const p of [...SECRET_PATHS, '../outdir', 'escape', 'escape/outdir']) {
        const { first } = await passiveDownload(c, `${verb} ${p}`);
        assert.equal(first.code, 550, `${verb} ${p}`);
      }
    }
    for (const p of [...SECRET_PATHS, '../outdir', 'escape']) {
      assert.equal((await c.command(`MLST ${p}`)).code, 550, `MLST ${p}`);
      assert.equal((await c.command(`STAT ${p}`)).code, 550, `STAT ${p}`);
    }
    const stat = await c.command('STAT ../..');
    assert.equal(stat.code, 213);
    assert.match(stat.text, /mine\.txt/);
    assert.doesNotMatch(stat.text, /secret|users\.yaml|outdir/);
    const mlst = await c.command('MLST ../..');
    assert.equal(mlst.code, 250);
    assert.match(mlst.text, / \/\r?\n/);
    c.close();
  });

  test('RETR, SIZE, MDTM, HASH of outside files → 550 and no byte leaks', async () => {
    const c = await rawLogin(server);
    for (const p of SECRET_PATHS) {
      const { first, body } = await passiveDownload(c, `RETR ${p}`);
      assert.equal(first.code, 550, `RETR ${p}`);
      assert.equal(body.length, 0);
      for (const verb of ['SIZE', 'MDTM', 'HASH']) {
        const r = await c.command(`${verb} ${p}`);
        assert.equal(r.code, 550, `${verb} ${p}`);
        assert.doesNotMatch(r.text, /TOP SECRET/);
      }
    }
    c.close();
    untouched();
  });

  test('DELE, RMD, MFMT, RNFR/RNTO cannot change anything outside', async () => {
    const c = await rawLogin(server);
    const mtimeBefore = statSync(outsideSecret).mtimeMs;
    for (const p of SECRET_PATHS) {
      assert.equal((await c.command(`DELE ${p}`)).code, 550, `DELE ${p}`);
      assert.equal((await c.command(`MFMT 20000101000000 ${p}`)).code, 550, `MFMT ${p}`);
      assert.equal((await c.command(`RNFR ${p}`)).code, 550, `RNFR ${p}`);
    }
    for (const d of ['../outdir', '/../outdir', 'escape/outdir', 'escape', '../bob']) {
      assert.equal((await c.command(`RMD ${d}`)).code, 550, `RMD ${d}`);
    }
    // Renaming one's own file onto an outside name lands inside the root, or is refused through the symlink.
    assert.equal((await c.command('RNFR mine.txt')).code, 350);
    assert.equal((await c.command('RNTO escape/stolen.txt')).code, 550);
    assert.equal((await c.command('RNFR mine.txt')).code, 350);
    assert.equal((await c.command('RNTO escape/secret.txt')).code, 550);
    assert.equal((await c.command('RNFR mine.txt')).code, 350);
    assert.equal((await c.command('RNTO ../../moved.txt')).code, 250);
    assert.equal(readFileSync(join(home, 'moved.txt'), 'utf8'), 'mine\n');
    assert.equal(existsSync(join(dirname(server.dataDir), 'moved.txt')), false);
    assert.equal((await c.command('RNFR /moved.txt')).code, 350);
    assert.equal((await c.command('RNTO /mine.txt')).code, 250);
    c.close();
    untouched();
    assert.equal(statSync(outsideSecret).mtimeMs, mtimeBefore);
    assert.ok(existsSync(outsideDir));
    assert.ok(existsSync(join(server.dataDir, 'bob')));
  });

  test('STOR, APPE, MKD with traversal stay inside the root; through the symlink they are refused', async () => {
    const c = await rawLogin(server);
    for (const p of ['escape/secret.txt', 'escape/data/bob/secret.txt', 'escape/new.txt']) {
      for (const verb of ['STOR', 'APPE']) {
        const { first } = await passiveUpload(c, `${verb} ${p}`, Buffer.from('pwned\n'));
        assert.equal(first.code, 550, `${verb} ${p}`);
      }
    }
    assert.equal(existsSync(join(dirname(server.dataDir), 'new.txt')), false);
    assert.equal((await c.command('MKD escape/evil')).code, 550);
    assert.equal(existsSync(join(dirname(server.dataDir), 'evil')), false);
    // `..` is clamped: these writes land in alice's own root.
    const stor = await passiveUpload(c, 'STOR ../../secret.txt', Buffer.from('pwned\n'));
    assert.equal(stor.final.code, 226);
    const appe = await passiveUpload(c, 'APPE /../secret.txt', Buffer.from('more\n'));
    assert.equal(appe.final.code, 226);
    assert.equal(readFileSync(join(home, 'secret.txt'), 'utf8'), 'pwned\nmore\n');
    const bob = await passiveUpload(c, 'STOR ../bob/secret.txt', Buffer.from('pwned\n'));
    assert.equal(bob.first.code, 550, 'no /bob folder in alice’s root');
    assert.equal((await c.command('MKD ../../evil')).code, 257);
    assert.ok(existsSync(join(home, 'evil')));
    assert.equal(existsSync(join(dirname(server.dataDir), 'evil')), false);
    assert.equal((await c.command('RMD ../../evil')).code, 250);
    assert.equal((await c.command('DELE ../secret.txt')).code, 250, 'deletes alice’s own /secret.txt');
    assert.equal(existsSync(join(home, 'secret.txt')), false);
    c.close();
    untouched();
  });

  test('NUL or CR inside a name → error reply, no crash, session usable', async () => {
    const c = await rawLogin(server);
    for (const verb of ['RETR', 'SIZE', 'DELE', 'MKD', 'CWD', 'RNFR', 'STOR']) {
      c.send(Buffer.from(`${verb} mine.txt\0../../secret.txt\r\n`, 'latin1'));
      const nul = await c.reply();
      assert.ok(nul.code >= 500 && nul.code < 600, `${verb} with NUL → ${nul.code}`);
      c.send(Buffer.from(`${verb} a\rb\r\n`, 'latin1'));
      const cr = await c.reply();
      assert.ok(cr.code >= 500 && cr.code < 600, `${verb} with CR → ${cr.code}`);
    }
    assert.equal((await c.command('NOOP')).code, 200);
    assert.equal((await c.command('SIZE mine.txt')).text, '5');
    c.close();
    untouched();
    assert.deepEqual(
      readdirSync(home).filter((n) => n.includes('\0') || n.includes('\r')),
      [],
    );
  });
});
