import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { partialNameFor } from '@ftp/storage';
import { startTcpProxy } from '../support/tcpProxy';
import { runProgram } from '../support/programs';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let home: string;
let work: string;

before(async () => {
  server = await startTestServer();
  home = join(server.dataDir, 'alice');
  mkdirSync(home, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'ftp-curl-'));
});
after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const run = (cmd: string, args: string[]) => runProgram(cmd, args, 20_000);

/** curl as alice against `port` (the server unless a proxy is given); -v so the commands it sent can be checked. */
function curl(args: string[], port = server.port) {
  return run('curl', ['-sS', '-v', '--user', `alice:${server.password}`, ...args.map((a) => a.replace('@PORT', String(port)))]);
}

const url = (path: string) => `ftp://127.0.0.1:@PORT/${path}`;
/** Control-connection lines curl logged with -v: commands it sent (`> `) and replies (`< `). */
const sent = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('> ')).map((l) => l.slice(2).trim());
const replies = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('< ')).map((l) => l.slice(2).trim());

async function curlOk(args: string[]) {
  const result = await curl(args).done;
  assert.equal(result.code, 0, `curl ${args.join(' ')} failed: ${result.stderr}`);
  return result;
}

test('curl: EPSV, PASV, EPRT and PORT transfers are byte-exact both ways', async () => {
  const payload = randomBytes(3 * 1024 * 1024 + 4099);
  const local = join(work, 'modes.bin');
  writeFileSync(local, payload);
  const modes: [name: string, flags: string[], command: RegExp][] = [
    ['epsv', [], /^EPSV$/],
    ['pasv', ['--disable-epsv'], /^PASV$/],
    ['eprt', ['--ftp-port', '127.0.0.1'], /^EPRT \|1\|127\.0\.0\.1\|\d+\|$/],
    ['port', ['--ftp-port', '127.0.0.1', '--disable-eprt'], /^PORT 127,0,0,1,\d+,\d+$/],
  ];
  for (const [name, flags, command] of modes) {
    const up = await curlOk([...flags, '-T', local, url(`${name}.bin`)]);
    assert.ok(sent(up.stderr).some((l) => command.test(l)), `${name} upload used ${sent(up.stderr).join(' | ')}`);
    assert.equal(sha(readFileSync(join(home, `${name}.bin`))), sha(payload), `${name}: bytes on disk`);

    const target = join(work, `${name}.down`);
    const down = await curlOk([...flags, '-o', target, url(`${name}.bin`)]);
    assert.ok(sent(down.stderr).some((l) => command.test(l)), `${name} download used ${sent(down.stderr).join(' | ')}`);
    assert.ok(sent(down.stderr).includes('TYPE I'));
    assert.equal(sha(readFileSync(target)), sha(payload), `${name}: downloaded bytes`);
  }
});


test('curl -C -: a partial that holds every byte (its replica died before the commit) is still resumed and published', async () => {
  // The chaos run found it: SIGKILL between an upload's last byte and its commit leaves a partial with all the bytes.
  // Had SIZE reported them all, curl would have judged the upload complete, sent nothing, and the file would never
  // appear. SIZE says one byte short, so curl sends that byte with APPE and the upload ends with a commit.
  const payload = randomBytes(300_001);
  const local = join(work, 'whole.bin');
  writeFileSync(local, payload);
  writeFileSync(join(home, partialNameFor('whole.bin')), payload); // what the dead replica left
  const resumed = await curlOk(['-C', '-', '-T', local, url('whole.bin')]);
  assert.ok(replies(resumed.stderr).includes(`213 ${payload.length - 1}`), replies(resumed.stderr).join(' | '));
  assert.ok(sent(resumed.stderr).includes('APPE whole.bin'), sent(resumed.stderr).join(' | '));
  assert.equal(sha(readFileSync(join(home, 'whole.bin'))), sha(payload), 'published, byte-exact');
  assert.equal(existsSync(join(home, partialNameFor('whole.bin'))), false);
});

test('curl: an interrupted upload stays hidden, then -C - resumes it with SIZE + APPE byte-exact', async () => {
  const payload = randomBytes(4 * 1024 * 1024 + 321);
  const local = join(work, 'resume.bin');
  writeFileSync(local, payload);
  const final = join(home, 'resume.bin');
  const partial = join(home, partialNameFor('resume.bin'));

  // Throttled so the control connection can be dropped while bytes are still flowing. The drop goes through a relay
  // rather than by killing curl: a dying curl closes its data socket just before its control socket, so whether the
  // server sees the vanished client before it publishes the data EOF is a microsecond race, not a deterministic test.
  const relay = await startTcpProxy('127.0.0.1', server.port);
  const first = curl(['--limit-rate', '1M', '-T', local, url('resume.bin')], relay.port);
  try {
    for (let i = 0; i < 200 && !(existsSync(partial) && statSync(partial).size >= 256 * 1024); i++) await sleep(25);
    assert.ok(existsSync(partial), 'upload bytes go to the hidden partial');
    assert.equal(existsSync(final), false, 'the final name does not exist while the upload runs');
    void relay.cut();
    const result = await first.done;
    assert.notEqual(result.code, 0, 'curl reports the broken transfer');
  } finally {
    first.kill();
    await relay.cut();
  }
  // The server notices the lost control connection, closes the upload and audits it as not ok.
  const uploadAudits = () => server.logs.filter((l) => l.event === 'upload' && l.path === '/resume.bin');
  for (let i = 0; i < 200 && uploadAudits().length === 0; i++) await sleep(25);
  assert.notEqual(uploadAudits()[0]?.result, 'ok');
  const size = statSync(partial).size;
  assert.equal(existsSync(final), false, 'an interrupted upload is never published');
  assert.ok(size > 0 && size < payload.length, `partial has ${size} of ${payload.length} bytes`);
  assert.equal(sha(readFileSync(partial)), sha(payload.subarray(0, size)), 'the partial is an exact prefix');

  const resumed = await curlOk(['-C', '-', '-T', local, url('resume.bin')]);
  const commands = sent(resumed.stderr);
  assert.ok(commands.includes('SIZE resume.bin'), commands.join(' | '));
  assert.ok(replies(resumed.stderr).includes(`213 ${size - 1}`), 'SIZE reports where a resume continues: one byte short of the partial');
  assert.ok(commands.includes('APPE resume.bin'), commands.join(' | '));
  assert.equal(sha(readFileSync(final)), sha(payload), 'resumed file is byte-exact');
  assert.equal(existsSync(partial), false, 'the partial is consumed by the publish');
  assert.equal(uploadAudits().at(-1)?.result, 'ok');
  assert.equal(uploadAudits().at(-1)?.bytes, payload.length - size + 1, 'only the missing bytes were sent again (and the last one kept)');
});

test('curl: -C resumes a download from a local partial file and from an explicit offset; -R keeps MDTM', async () => {
  const payload = randomBytes(1024 * 1024 + 77);
  writeFileSync(join(home, 'dl.bin'), payload);
  const stamp = new Date(Date.UTC(2021, 2, 4, 5, 6, 7));
  utimesSync(join(home, 'dl.bin'), stamp, stamp);

  const target = join(work, 'dl.part');
  writeFileSync(target, payload.subarray(0, 300_001));
  const auto = await curlOk(['-R', '-C', '-', '-o', target, url('dl.bin')]);
  assert.ok(sent(auto.stderr).includes('REST 300001'), sent(auto.stderr).join(' | '));
  assert.equal(sha(readFileSync(target)), sha(payload));
  assert.ok(sent(auto.stderr).includes('MDTM dl.bin'));
  assert.equal(statSync(target).mtime.getTime(), stamp.getTime(), 'curl -R applied the MDTM time (UTC)');

  const tail = await curlOk(['-C', '654321', url('dl.bin')]);
  assert.ok(sent(tail.stderr).includes('REST 654321'));
  assert.equal(sha(tail.stdout), sha(payload.subarray(654321)));
});

test('curl: --list-only (NLST) names and a plain LIST parse to the real entries', async () => {
  const dir = join(home, 'listing');
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'a.txt'), 'abc');
  writeFileSync(join(dir, 'b.bin'), randomBytes(100_000));
  const old = new Date(Date.UTC(2020, 0, 2, 3, 4, 5));
  utimesSync(join(dir, 'b.bin'), old, old);

  const nlst = await curlOk(['--list-only', url('listing/')]);
  assert.ok(sent(nlst.stderr).includes('NLST'));
  // Listings travel as ASCII; curl hands them over with its native LF (the CRLF wire form is checked in protocol.test.ts).
  assert.deepEqual(nlst.stdout.toString().split(/\r?\n/).filter(Boolean).sort(), ['a.txt', 'b.bin', 'sub']);

  const list = await curlOk([url('listing/')]);
  assert.ok(sent(list.stderr).includes('LIST'));
  const rows = list.stdout
    .toString()
    .split(/\r?\n/)
    .filter(Boolean)
    .map((line) => {
      const m = /^([-d])([-rwx]{9}) +\d+ +\S+ +\S+ +(\d+) +(\w{3} +\d{1,2} +(?:\d{2}:\d{2}|\d{4})) (.+)$/.exec(line);
      assert.ok(m, `unparsable LIST line: ${JSON.stringify(line)}`);
      return { type: m[1], size: Number(m[3]), date: m[4].replace(/ +/g, ' '), name: m[5] };
    });
  const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
  assert.deepEqual(Object.keys(byName).sort(), ['a.txt', 'b.bin', 'sub']);
  assert.equal(byName['a.txt'].type, '-');
  assert.equal(byName['a.txt'].size, 3);
  assert.equal(byName['b.bin'].size, 100_000);
  assert.equal(byName['b.bin'].date, 'Jan 02 2020', 'old files show the year, like ls');
  assert.equal(byName.sub.type, 'd');
});

test('curl: --use-ascii sends CRLF on the wire and gives native LF text both ways', async () => {
  writeFileSync(join(home, 'lf.txt'), 'one\ntwo\nthree\n');
  const down = await curlOk(['--use-ascii', '-w', '%{size_download}', '-o', join(work, 'lf.txt'), url('lf.txt')]);
  assert.ok(sent(down.stderr).includes('TYPE A'));
  assert.equal(down.stdout.toString(), String('one\r\ntwo\r\nthree\r\n'.length), 'the wire carried CRLF line ends');
  assert.equal(readFileSync(join(work, 'lf.txt'), 'utf8'), 'one\ntwo\nthree\n', 'curl turns CRLF back into LF');

  writeFileSync(join(work, 'up.txt'), 'alpha\nbeta\n');
  const up = await curlOk(['--use-ascii', '-T', join(work, 'up.txt'), url('ascii-up.txt')]);
  assert.ok(sent(up.stderr).includes('TYPE A'));
  assert.equal(readFileSync(join(home, 'ascii-up.txt'), 'utf8'), 'alpha\nbeta\n', 'stored with the server’s LF');

  // Control: the same bytes in binary mode arrive untouched, so the LF above is the server's conversion.
  const bin = await curlOk(['--crlf', '-T', join(work, 'up.txt'), url('binary-crlf.txt')]);
  assert.ok(sent(bin.stderr).includes('TYPE I'));
  assert.equal(readFileSync(join(home, 'binary-crlf.txt'), 'utf8'), 'alpha\r\nbeta\r\n');
});

test('curl: -Q quote commands (MKD, RNFR/RNTO before, DELE after) and a failing quote', async () => {
  writeFileSync(join(home, 'quote-a.txt'), 'a');
  writeFileSync(join(home, 'quote-y.txt'), 'y');
  await curlOk(['-Q', 'MKD quoted', '-Q', 'RNFR quote-a.txt', '-Q', 'RNTO quoted/quote-b.txt', '-Q', '-DELE quote-y.txt', url('')]);
  assert.ok(statSync(join(home, 'quoted')).isDirectory());
  assert.equal(readFileSync(join(home, 'quoted', 'quote-b.txt'), 'utf8'), 'a');
  assert.equal(existsSync(join(home, 'quote-a.txt')), false);
  assert.equal(existsSync(join(home, 'quote-y.txt')), false);

  const failed = await curl(['-Q', 'DELE no-such-file', url('')]).done;
  assert.equal(failed.code, 21, 'curl: QUOT command failed');
  assert.ok(replies(failed.stderr).some((l) => l.startsWith('550 ')), replies(failed.stderr).join(' | '));
});

test('curl: --ftp-create-dirs builds the missing folders; without it the upload is refused', async () => {
  const payload = randomBytes(10_000);
  writeFileSync(join(work, 'deep.bin'), payload);
  const made = await curlOk(['--ftp-create-dirs', '-T', join(work, 'deep.bin'), url('x/y/z/deep.bin')]);
  assert.ok(sent(made.stderr).includes('MKD x'));
  assert.ok(replies(made.stderr).includes('257 "/x/y/z" created'));
  assert.equal(sha(readFileSync(join(home, 'x', 'y', 'z', 'deep.bin'))), sha(payload));

  const refused = await curl(['-T', join(work, 'deep.bin'), url('nope/deep.bin')]).done;
  assert.equal(refused.code, 9, 'CWD into a missing folder fails');
  assert.equal(existsSync(join(home, 'nope')), false);
});
