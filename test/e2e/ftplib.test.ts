import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let home: string;
before(async () => {
  server = await startTestServer();
  home = join(server.dataDir, 'alice');
});
after(() => server.close());

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Runs test/e2e/<script> against the server as alice and returns the JSON it prints. */
function runPython(script: string): Promise<Record<string, unknown>> {
  const env = { ...process.env, FTP_HOST: server.host, FTP_PORT: String(server.port), FTP_USER: server.user, FTP_PASSWORD: server.password };
  return new Promise((resolve, reject) => {
    execFile('python3', [join(import.meta.dirname, script)], { env, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${script} failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

/** YYYYMMDDHHMMSS[.sss] in UTC, as RFC 3659 time-val. */
function timeVal(d: Date, withMillis: boolean) {
  const s = d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const ms = d.getUTCMilliseconds();
  return withMillis && ms ? `${s}.${String(ms).padStart(3, '0')}` : s;
}

/** A multi-line reply as ftplib returns it: `ddd-first`, middle lines, `ddd last`; checks RFC 959 framing. */
function multiLine(reply: unknown, code: number): string[] {
  const lines = String(reply).split('\n');
  assert.ok(lines.length >= 2, `expected a multi-line ${code} reply: ${reply}`);
  assert.match(lines[0], new RegExp(`^${code}-`));
  assert.match(lines.at(-1)!, new RegExp(`^${code} `));
  for (const middle of lines.slice(1, -1)) assert.match(middle, /^ \S/, 'middle lines start with one space');
  return lines;
}

test('ftplib: binary, REST resumes both ways, ASCII lines, UTF-8 names, active mode and STOU', async () => {
  const r = (await runPython('ftplib_transfers.py')) as Record<string, string> & { lines: string[]; nlst: string[]; sent: string[] };
  assert.match(r.login, /^230 /);
  assert.match(r.stor, /^226 /);
  assert.equal(sha(readFileSync(join(home, 'bin.dat'))), r.payload_sha, 'STOR bytes on disk');
  assert.equal(r.retr_sha, r.payload_sha, 'RETR bytes');
  assert.equal(r.retr_rest_sha, r.tail_sha, 'REST + RETR sends the tail');
  assert.equal(r.size, 2 * 1024 * 1024 + 123);

  assert.match(r.stor_rest, /^226 /);
  assert.equal(sha(readFileSync(join(home, 'resumed.dat'))), r.payload_sha, 'REST + STOR completes the file');

  assert.match(r.storlines, /^226 /);
  assert.equal(readFileSync(join(home, 'text.txt'), 'utf8'), 'line one\nline two\nline three\n', 'ASCII upload stored with LF');
  assert.deepEqual(r.lines, ['line one', 'line two', 'line three']);

  const utf8Name = 'zoë-日本.txt';
  assert.match(r.utf8_opts, /^200 /);
  assert.ok(readdirSync(home).includes(utf8Name), 'the UTF-8 name is stored as such');
  assert.equal(readFileSync(join(home, utf8Name), 'utf8'), utf8Name.repeat(100));
  assert.equal(r.utf8_back, true);
  assert.ok(r.nlst.includes(utf8Name), `NLST: ${r.nlst.join(', ')}`);
  assert.ok(r.nlst.includes('bin.dat'));

  const activeAt = r.sent.indexOf('STOR active.dat');
  assert.match(r.sent[activeAt - 1], /^PORT 127,0,0,1,\d+,\d+$/, 'set_pasv(False) uses PORT');
  assert.match(r.active_stor, /^226 /);
  assert.equal(sha(readFileSync(join(home, 'active.dat'))), r.active_sha);
  assert.equal(r.active_ok, true, 'active-mode download is byte-exact');

  const stou = /^150 FILE: (\S+)$/.exec(r.stou_150);
  assert.ok(stou, `STOU reply: ${r.stou_150}`);
  assert.match(r.stou_final, /^226 /);
  assert.ok(r.stou_final.includes(stou[1]));
  assert.equal(readFileSync(join(home, stou[1]), 'utf8'), 'unique bytes');
  assert.equal(r.quit, '221 Goodbye');
});

test('ftplib: FEAT, MLSD/MLST facts, MDTM/MFMT, HASH, EPSV ALL, REIN, HOST and the informational commands', async () => {
  const r = (await runPython('ftplib_commands.py')) as Record<string, string> & Record<string, never>;
  assert.match(r.host, /^220 /, 'HOST before USER');
  assert.match(r.login, /^230 /);
  assert.match(r.host_after_login, /^503 /);

  const feat = multiLine(r.feat, 211);
  assert.equal(feat.at(-1), '211 End');
  const features = feat.slice(1, -1).map((l) => l.trim());
  for (const f of ['EPSV', 'EPRT', 'REST STREAM', 'SIZE', 'MDTM', 'UTF8', 'MFMT', 'HOST', 'TVFS']) assert.ok(features.includes(f), `FEAT lists ${f}`);
  assert.ok(features.includes('MLST type*;size*;modify*;perm*;unique*;'), features.join(' | '));
  assert.ok(features.includes('HASH SHA-256*;SHA-1;MD5'), 'HASH with the selected algorithm starred');

  assert.match(r.opts_utf8, /^200 /);
  assert.equal(r.syst, '215 UNIX Type: L8');
  assert.match(r.acct, /^202 /);
  assert.match(r.allo, /^202 /);
  const help = multiLine(r.help, 214).join(' ');
  for (const verb of ['USER', 'RETR', 'STOR', 'FEAT', 'MLSD', 'EPSV', 'HASH']) assert.match(help, new RegExp(`\\b${verb}\\b`));
  const stat = multiLine(r.stat, 211);
  assert.ok(stat.includes(' Logged in as alice'), stat.join('\n'));

  // MLSD facts: exact types, sizes and perms, modify from the file system, unique ids that follow the object.
  const mlsd = r.mlsd as Record<string, Record<string, string>>;
  assert.deepEqual(Object.keys(mlsd).sort(), ['a.bin', 'b.txt', 'sub']);
  assert.deepEqual(
    Object.fromEntries(Object.entries(mlsd).map(([n, f]) => [n, [f.type, f.size, f.perm]])),
    { 'a.bin': ['file', '1234', 'adfrw'], 'b.txt': ['file', '3', 'adfrw'], sub: ['dir', undefined, 'cdeflmp'] },
  );
  assert.equal(mlsd['b.txt'].modify, timeVal(statSync(join(home, 'facts', 'c.txt')).mtime, true));
  assert.equal(mlsd.sub.modify, timeVal(statSync(join(home, 'facts', 'sub')).mtime, true));
  const uniques = Object.values(mlsd).map((f) => f.unique);
  assert.ok(uniques.every((u) => /^\S+$/.test(u)), 'unique present');
  assert.equal(new Set(uniques).size, 3, 'unique differs between objects');
  const renamed = r.mlsd_after_rename as Record<string, Record<string, string>>;
  assert.equal(renamed['c.txt'].unique, mlsd['b.txt'].unique, 'unique follows the object through a rename');
  assert.equal(renamed['a.bin'].unique, mlsd['a.bin'].unique, 'unique is stable');
  assert.deepEqual(r.mlsd_some, { 'a.bin': { type: 'file', size: '1234' }, 'b.txt': { type: 'file', size: '3' }, sub: { type: 'dir' } });
  assert.equal(r.opts_mlst_all, '200 MLST OPTS type;size;modify;perm;unique;');

  const mlst = multiLine(r.mlst, 250);
  assert.equal(mlst.length, 3);
  assert.match(mlst[1], /^ type=file;size=1234;modify=\d{14}(\.\d{1,3})?;perm=adfrw;unique=\S+; \/facts\/a\.bin$/);
  assert.ok(mlst[1].includes(`unique=${mlsd['a.bin'].unique};`));

  const statPath = multiLine(r.stat_path, 213);
  const names = statPath.slice(1, -1).map((l) => {
    const m = /^ ([-d])[-rwx]{9} +\d+ +\S+ +\S+ +(\d+) \w{3} \d{2} +[\d:]{4,5} (.+)$/.exec(l);
    assert.ok(m, `STAT line: ${l}`);
    return `${m[1]} ${m[2]} ${m[3]}`;
  });
  assert.deepEqual(names.filter((n) => !n.startsWith('d')), ['- 1234 a.bin', '- 3 c.txt']);
  assert.ok(names.some((n) => n.startsWith('d ') && n.endsWith(' sub')));

  const mdtm = /^213 (\d{14})$/.exec(r.mdtm);
  assert.ok(mdtm, `MDTM: ${r.mdtm}`);
  const uploaded = Date.UTC(+mdtm[1].slice(0, 4), +mdtm[1].slice(4, 6) - 1, +mdtm[1].slice(6, 8), +mdtm[1].slice(8, 10), +mdtm[1].slice(10, 12), +mdtm[1].slice(12));
  assert.ok(Math.abs(uploaded - Date.now()) < 5 * 60_000, 'MDTM is UTC');
  assert.match(r.mfmt, /^213 Modify=20200102030405; /);
  assert.equal(r.mdtm_after, '213 20200102030405');
  assert.equal(statSync(join(home, 'facts', 'a.bin')).mtime.getTime(), Date.UTC(2020, 0, 2, 3, 4, 5), 'MFMT set the file time');

  const onDisk = readFileSync(join(home, 'facts', 'a.bin'));
  const nodeNames = { 'SHA-256': 'sha256', 'SHA-1': 'sha1', MD5: 'md5' } as const;
  for (const [algorithm, h] of Object.entries(r.hash as Record<keyof typeof nodeNames, Record<string, string>>)) {
    assert.equal(h.opts, `200 ${algorithm}`);
    const m = /^213 (\S+) (\d+)-(\d+) ([0-9a-f]+) (.+)$/.exec(h.reply);
    assert.ok(m, `HASH reply: ${h.reply}`);
    assert.equal(m[1], algorithm);
    assert.equal(Number(m[2]), 0);
    assert.ok(Number(m[3]) >= Number(m[2]));
    assert.equal(m[4], h.expected, `${algorithm} equals hashlib`);
    assert.equal(m[4], createHash(nodeNames[algorithm as keyof typeof nodeNames]).update(onDisk).digest('hex'));
    assert.equal(m[5], 'facts/a.bin');
  }

  assert.match(r.epsv_all, /^200 /);
  assert.match(r.pasv_after_all, /^503 /, 'PASV refused after EPSV ALL');
  assert.match(r.port_after_all, /^503 /, 'PORT refused after EPSV ALL');
  assert.match(r.epsv_retr, /^150 /);
  assert.match(r.epsv_retr_final, /^226 /);
  assert.equal(r.epsv_retr_ok, true, 'EPSV transfers still work');

  assert.match(r.rein, /^220 /);
  assert.match(r.pwd_after_rein, /^530 /, 'REIN logs out');
  assert.match(r.relogin, /^230 /);
  assert.match(r.pasv_after_rein, /^227 Entering Passive Mode \(127,0,0,1,\d+,\d+\)\.$/, 'REIN clears EPSV ALL');
  assert.equal(r.quit, '221 Goodbye');
});
