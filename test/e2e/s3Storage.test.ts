// One edge on FTP_STORAGE=s3 (a bucket of its own on the process's radosgw, deleted at the end), driven by real clients:
// lftp mirrors, curl's upload resume and ranged downloads, OpenSSH's put and reput, and raw commands for listings,
// deletes, renames, MFMT and a quota. Every result is checked in the bucket too (ListObjectsV2, ListMultipartUploads).
// Parts are 5 MiB (the smallest S3 allows), so a "3-part file" is 10–15 MiB.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword } from '@ftp/identity';
import { sharedRadosgw, type Radosgw } from '../support/radosgw';
import { RawClient } from '../support/rawClient';
import { openPassive, passiveDownload, passiveUpload, rawLogin } from '../support/rawData';
import { awsCredentialsEnv, bucketView, s3EdgeEnv, type BucketView } from '../support/s3Bucket';
import { startTcpProxy } from '../support/tcpProxy';
import { runProgram, sha256, treeSnapshot } from '../support/programs';
import { TEST_PASSWORD, type TestServer } from '../support/server';
import { sftpBatch, startSftpServer, until, waitForLog, type Credentials } from '../support/sftpClient';

const MiB = 1024 * 1024;
const PART = 5 * MiB;
/** alice's home in the bucket (FTP_S3_PREFIX=homes, home `alice`). */
const HOME = 'homes/alice/';
const CAROL_QUOTA = 12 * MiB;

let rgw: Radosgw;
let bucket: string | undefined;
let view: BucketView;
let server: TestServer;
let work: string;

before(async () => {
  rgw = await sharedRadosgw();
  bucket = await rgw.createBucket();
  view = bucketView(rgw, bucket);
  // The edge runs in this process: its S3 client takes the credentials from the environment, as in production.
  Object.assign(process.env, awsCredentialsEnv(rgw));
  const hash = await hashPassword(TEST_PASSWORD);
  server = await startSftpServer({
    env: s3EdgeEnv(rgw, bucket, PART),
    extraUsers: `  carol:\n    password: "${hash}"\n    home: carol\n    limits: {quota_bytes: ${CAROL_QUOTA}}\n`,
  });
  work = mkdtempSync(join(tmpdir(), 'ftp-s3-'));
});

after(async () => {
  await server?.close();
  if (bucket) await rgw.deleteBucket(bucket);
  view?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const sha = sha256;
const snapshot = treeSnapshot;
const run = runProgram;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));



const url = (path: string, port = server.port) => `ftp://127.0.0.1:${port}/${path}`;
/** curl as alice; -v so the commands it sent (`> `) and the replies (`< `) can be checked. */
const curl = (args: string[]) => run('curl', ['-sS', '-v', '--user', `alice:${server.password}`, ...args]);
const sent = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('> ')).map((l) => l.slice(2).trim());
const replies = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('< ')).map((l) => l.slice(2).trim());

async function curlOk(args: string[]) {
  const result = await curl(args).done;
  assert.equal(result.code, 0, `curl ${args.join(' ')} failed: ${result.stderr}`);
  return result;
}


/** Waits until the unfinished upload of `key` holds at least `parts` complete parts. */
const partsReach = (key: string, parts: number, timeoutMs = 30_000) => until(`${parts} complete parts of ${key}`, async () => (await view.partsOf(key)) >= parts, timeoutMs);

const uploadAudits = (path: string, user = 'alice') => server.logs.filter((l) => l.event === 'upload' && l.path === path && l.user === user);

/** Lines of a listing's body. */
const lines = (body: Buffer) => body.toString('utf8').split('\r\n').filter(Boolean);

test('lftp: mirror -R of a tree and mirror back are byte-exact; the bucket holds exactly its files and folder markers', { timeout: 90_000 }, async () => {
  const tree = join(work, 'tree');
  const files: [string, number][] = [
    ['empty.txt', 0],
    ['readme.md', 900],
    ['docs/b.bin', 100_000],
    ['docs/deep/three-parts.bin', 2 * PART + 1_234_567],
    ['img/x.png', PART + 3],
  ];
  const folders = ['docs', 'docs/deep', 'docs/empty-sub', 'img', 'empty-dir'];
  for (const [path, size] of files) {
    mkdirSync(join(tree, path, '..'), { recursive: true });
    writeFileSync(join(tree, path), randomBytes(size));
  }
  for (const folder of folders) mkdirSync(join(tree, folder), { recursive: true });
  const log = join(work, 'lftp-debug.log');
  const script = ['set ftp:ssl-allow no', 'set net:max-retries 1', 'set net:timeout 10', 'set cmd:fail-exit yes', `debug -o ${log} 5`, 'mirror -R tree remote', 'mirror remote copy', 'quit'];
  await new Promise<void>((resolve, reject) => {
    execFile('lftp', ['-u', `alice,${server.password}`, '-p', String(server.port), '127.0.0.1', '-e', script.join('; ')], { cwd: work, timeout: 60_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`lftp failed: ${err.message}\n${stderr}`)) : resolve(),
    );
  });

  const expected = snapshot(tree);
  assert.deepEqual(snapshot(join(work, 'copy')), expected, 'round trip: every file byte-exact, every folder (empty ones too) there');

  const objects = await view.objects(`${HOME}remote/`);
  const want = new Map<string, number>([
    [`${HOME}remote/`, 0],
    ...folders.map((f): [string, number] => [`${HOME}remote/${f}/`, 0]),
    ...files.map(([path, size]): [string, number] => [`${HOME}remote/${path}`, size]),
  ]);
  assert.deepEqual(new Map([...objects].sort()), new Map([...want].sort()), 'the files, and a zero-byte marker for each folder lftp made');
  for (const [path] of files) assert.equal(await view.sha256(`${HOME}remote/${path}`), expected[path], `${path} in the bucket`);
  assert.deepEqual(await view.openUploads(HOME), [], 'no multipart upload left behind');

  const commands = readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.includes('---> '))
    .map((l) => l.slice(l.indexOf('---> ') + 5).trim());
  assert.equal(commands.filter((c) => c.startsWith('STOR ')).length, files.length);
  assert.equal(commands.filter((c) => c.startsWith('MKD ')).length, folders.length + 1);
  // lftp sets times with MFMT; object storage answers 550 (README), and the mirror goes on.
  assert.ok(commands.some((c) => c.startsWith('MFMT ')), 'lftp tried MFMT');
});

test('curl: an upload cut after two parts stays unpublished, SIZE reports the part boundary, -C - resumes it byte-exact', { timeout: 90_000 }, async () => {
  const payload = randomBytes(2 * PART + 4 * MiB + 321);
  const local = join(work, 'resume.bin');
  writeFileSync(local, payload);
  const key = `${HOME}resume.bin`;

  // Throttled (the last 4 MiB take ~1.3 s) so the control connection can be cut while bytes still flow; through a
  // relay, as a dying curl closes its data socket just before its control socket, and the server might take that EOF
  // for the end of the file.
  const relay = await startTcpProxy('127.0.0.1', server.port);
  const first = curl(['--limit-rate', '3M', '-T', local, url('resume.bin', relay.port)]);
  try {
    await partsReach(key, 2);
    void relay.cut();
    const result = await first.done;
    assert.notEqual(result.code, 0, 'curl reports the broken transfer');
  } finally {
    first.kill();
    await relay.cut();
  }
  await until('the interrupted upload audited', () => uploadAudits('/resume.bin').length > 0, 15_000);
  assert.notEqual(uploadAudits('/resume.bin')[0].result, 'ok');
  assert.equal((await view.objects(key)).size, 0, 'nothing published under the name');

  const client = await rawLogin(server);
  try {
    assert.deepEqual(await client.command('SIZE resume.bin'), { code: 213, text: String(2 * PART) }, 'the bytes of the two complete parts');
    const names = lines((await passiveDownload(client, 'NLST')).body);
    assert.ok(!names.includes('resume.bin'), `an unfinished upload is not listed: ${names.join(', ')}`);
  } finally {
    client.close();
  }

  const resumed = await curlOk(['-C', '-', '-T', local, url('resume.bin')]);
  assert.ok(sent(resumed.stderr).includes('SIZE resume.bin'), sent(resumed.stderr).join(' | '));
  assert.ok(replies(resumed.stderr).includes(`213 ${2 * PART}`), replies(resumed.stderr).join(' | '));
  assert.ok(sent(resumed.stderr).includes('APPE resume.bin'), sent(resumed.stderr).join(' | '));
  assert.deepEqual([...(await view.objects(key))], [[key, payload.length]], 'exactly one object');
  assert.equal(await view.sha256(key), sha(payload), 'the resumed object is byte-exact');
  assert.deepEqual(await view.openUploads(key), [], 'no multipart upload left');
  assert.equal(uploadAudits('/resume.bin').at(-1)?.result, 'ok');
  assert.equal(uploadAudits('/resume.bin').at(-1)?.bytes, payload.length - 2 * PART, 'only the bytes past the boundary were sent again');
});

test('REST inside the complete parts of an unfinished upload + STOR never publishes a corrupt file', { timeout: 60_000 }, async (t) => {
  const payload = randomBytes(2 * PART + 2 * MiB);
  const key = `${HOME}rest.bin`;
  const client = await rawLogin(server);
  try {
    const data = await openPassive(client);
    assert.equal((await client.command('STOR rest.bin')).code, 150);
    data.write(payload.subarray(0, 2 * PART + MiB));
    await partsReach(key, 2);
    data.resetAndDestroy(); // a reset, not an EOF: the upload is broken, not complete
    const broken = await client.reply(15_000);
    assert.ok(broken.code >= 400, `the broken upload fails: ${broken.code} ${broken.text}`);
    await until('the broken upload audited', () => uploadAudits('/rest.bin').length > 0, 15_000);
    assert.deepEqual(await client.command('SIZE rest.bin'), { code: 213, text: String(2 * PART) });

    // A client that restarts inside the kept parts (its own record of what was sent, not SIZE) sends the bytes from
    // there: they must land there, or the restart must be refused.
    const offset = PART + 1_000_000;
    assert.equal((await client.command(`REST ${offset}`)).code, 350);
    const { first, final } = await passiveUpload(client, 'STOR rest.bin', payload.subarray(offset));
    const objects = await view.objects(key);
    t.diagnostic(`REST ${offset} + STOR: ${first.code} ${final.code} ${final.text}; object ${objects.get(key) ?? 'none'} bytes`);
    if (final.code === 226) {
      assert.equal(objects.get(key), payload.length, `REST ${offset} + STOR answered 226: the object must be the whole file (sizes)`);
      assert.equal(await view.sha256(key), sha(payload), `REST ${offset} + STOR answered 226: the object must be byte-exact`);
    } else {
      assert.equal(objects.size, 0, `refused (${first.code} ${final.code} ${final.text}): nothing published`);
      // The refusal names where the upload can continue; a client that follows it completes the file.
      const advice = /REST (\d+)/.exec(final.text);
      assert.ok(advice, `the refusal names a restart offset: ${final.text}`);
      const boundary = Number(advice[1]);
      assert.equal(boundary, PART, 'the last part boundary at or below the offset');
      assert.equal((await client.command(`REST ${boundary}`)).code, 350);
      assert.equal((await passiveUpload(client, 'STOR rest.bin', payload.subarray(boundary))).final.code, 226);
      assert.equal(await view.sha256(key), sha(payload), 'byte-exact after the advised restart');
    }
    assert.deepEqual(await view.openUploads(key), [], 'no multipart upload left');
  } finally {
    client.close();
  }
});

test('curl: whole, -C offset and --range downloads of a 3-part object match', { timeout: 60_000 }, async () => {
  const payload = randomBytes(2 * PART + 777_777);
  const local = join(work, 'ranged.bin');
  writeFileSync(local, payload);
  await curlOk(['-T', local, url('ranged.bin')]);
  assert.equal(await view.sha256(`${HOME}ranged.bin`), sha(payload));

  const whole = await curlOk([url('ranged.bin')]);
  assert.equal(sha(whole.stdout), sha(payload), 'whole download');
  const tail = await curlOk(['-C', '6000000', url('ranged.bin')]);
  assert.ok(sent(tail.stderr).includes('REST 6000000'), sent(tail.stderr).join(' | '));
  assert.equal(sha(tail.stdout), sha(payload.subarray(6_000_000)), 'from an offset inside the second part');
  // Across the boundary of parts 1 and 2.
  const range = await curlOk(['--range', `${PART - 1000}-${PART + 999}`, url('ranged.bin')]);
  assert.equal(range.stdout.length, 2000);
  assert.ok(range.stdout.equals(payload.subarray(PART - 1000, PART + 1000)), 'a range across a part boundary');
  const last = await curlOk(['-C', String(payload.length - 10), url('ranged.bin')]);
  assert.ok(last.stdout.equals(payload.subarray(payload.length - 10)), 'the last 10 bytes');
});

test('OpenSSH sftp: put, then a killed put continued by reput, byte-exact with no multipart upload left', { timeout: 120_000 }, async () => {
  const creds: Credentials = { user: 'alice', password: server.password };
  const whole = randomBytes(PART + 2 * MiB);
  writeFileSync(join(work, 'sftp-put.bin'), whole);
  const put = await sftpBatch(server.edge.sftpPort, creds, ['put sftp-put.bin'], { cwd: work, timeoutMs: 60_000 });
  assert.equal(put.code, 0, `put: ${put.stderr}`);
  assert.equal(await view.sha256(`${HOME}sftp-put.bin`), sha(whole));

  const payload = randomBytes(2 * PART + 4 * MiB + 5);
  writeFileSync(join(work, 'sftp-resume.bin'), payload);
  const key = `${HOME}sftp-resume.bin`;
  // The client limits itself (-l, Kbit/s: ~3 MB/s) so it can be killed once two parts are in the store, well before
  // it sent the last 4 MiB.
  let parts = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      parts = await view.partsOf(key);
      await sleep(50);
    }
  })();
  let killed;
  try {
    killed = await sftpBatch(server.edge.sftpPort, creds, ['put sftp-resume.bin'], { cwd: work, extraArgs: ['-l', '24000'], killWhen: () => parts >= 2, timeoutMs: 60_000 });
  } finally {
    watching = false;
    await watcher;
  }
  assert.ok(killed.killed && killed.code !== 0, `the first put was killed (${killed.code}): ${killed.stderr}`);
  const aborted = await waitForLog(server, (l) => l.event === 'upload' && l.path === '/sftp-resume.bin' && l.result !== 'ok', 'the killed upload', 15_000);
  assert.equal((await view.objects(key)).size, 0, `nothing published (${String(aborted.result)})`);
  const listing = await sftpBatch(server.edge.sftpPort, creds, ['ls -l sftp-resume.bin'], { cwd: work });
  assert.match(listing.stdout, new RegExp(`\\s${2 * PART}\\s`), `stat reports the two complete parts: ${listing.stdout}${listing.stderr}`);

  const reput = await sftpBatch(server.edge.sftpPort, creds, ['reput sftp-resume.bin'], { cwd: work, timeoutMs: 60_000 });
  assert.equal(reput.code, 0, `reput: ${reput.stderr}`);
  assert.deepEqual([...(await view.objects(key))], [[key, payload.length]], 'exactly one object');
  assert.equal(await view.sha256(key), sha(payload), 'byte-exact after reput');
  assert.deepEqual(await view.openUploads(key), [], 'no multipart upload left');
  const done = await waitForLog(server, (l) => l.event === 'upload' && l.path === '/sftp-resume.bin' && l.result === 'ok', 'the resumed upload');
  assert.equal(done.bytes, payload.length - 2 * PART, 'reput sent only the rest');
});

test('FTP: LIST and MLSD of a folder; DELE, RNFR/RNTO of a file and a folder, RMD; MFMT is refused with 550', { timeout: 60_000 }, async () => {
  const client = await rawLogin(server);
  try {
    assert.equal((await client.command('MKD box')).code, 257);
    assert.equal((await client.command('MKD box/sub')).code, 257);
    assert.equal((await passiveUpload(client, 'STOR box/a.txt', Buffer.from('hello'))).final.code, 226);
    const big = randomBytes(PART + 100);
    assert.equal((await passiveUpload(client, 'STOR box/big.bin', big)).final.code, 226);

    const mlsd = lines((await passiveDownload(client, 'MLSD box')).body);
    const facts = new Map(mlsd.map((l) => [l.slice(l.indexOf(' ') + 1), l.slice(0, l.indexOf(' ')).toLowerCase()]));
    assert.deepEqual([...facts.keys()].sort(), ['a.txt', 'big.bin', 'sub'], mlsd.join(' | '));
    assert.match(facts.get('a.txt')!, /type=file;/);
    assert.match(facts.get('a.txt')!, /size=5;/);
    assert.match(facts.get('big.bin')!, new RegExp(`size=${PART + 100};`));
    assert.match(facts.get('sub')!, /type=dir;/);
    const list = lines((await passiveDownload(client, 'LIST box')).body);
    assert.deepEqual(list.map((l) => l.split(/\s+/).at(-1)).sort(), ['a.txt', 'big.bin', 'sub'], list.join(' | '));
    assert.ok(list.some((l) => l.startsWith('d') && l.endsWith(' sub')), list.join(' | '));
    assert.ok(list.some((l) => l.includes(` ${PART + 100} `) && l.endsWith(' big.bin')), list.join(' | '));

    assert.deepEqual(await client.command('MDTM box/a.txt').then((r) => r.code), 213);
    const mfmt = await client.command('MFMT 20200102030405 box/a.txt');
    assert.equal(mfmt.code, 550, `MFMT: ${mfmt.code} ${mfmt.text}`);
    assert.equal((await client.command('MFMT 20200102030405 box/none.txt')).code, 550);

    assert.equal((await client.command('RNFR box/a.txt')).code, 350);
    assert.equal((await client.command('RNTO box/sub/renamed.txt')).code, 250);
    assert.equal((await client.command('SIZE box/a.txt')).code, 550);
    assert.equal((await client.command('RNFR box/big.bin')).code, 350);
    assert.equal((await client.command('RNTO box/big2.bin')).code, 250);
    assert.deepEqual(
      [...(await view.objects(`${HOME}box/`)).keys()].sort(),
      [`${HOME}box/`, `${HOME}box/big2.bin`, `${HOME}box/sub/`, `${HOME}box/sub/renamed.txt`],
    );
    assert.equal(await view.sha256(`${HOME}box/big2.bin`), sha(big), 'a renamed 2-part file keeps its bytes');
    const back = await passiveDownload(client, 'RETR box/sub/renamed.txt');
    assert.equal(back.body.toString(), 'hello');

    assert.equal((await client.command('RMD box/sub')).code, 550, 'a folder with a file is not removed');
    assert.equal((await client.command('RNFR box/sub')).code, 350);
    assert.equal((await client.command('RNTO box/moved')).code, 250, 'a folder rename');
    assert.equal((await client.command('DELE box/moved/renamed.txt')).code, 250);
    assert.equal((await client.command('DELE box/moved/renamed.txt')).code, 550);
    assert.equal((await client.command('RMD box/moved')).code, 250);
    assert.equal((await client.command('DELE box/big2.bin')).code, 250);
    assert.deepEqual([...(await view.objects(`${HOME}box/`)).keys()], [`${HOME}box/`], 'only the emptied folder\'s marker');
    assert.equal((await client.command('RMD box')).code, 250);
    assert.equal((await view.objects(`${HOME}box/`)).size, 0);
    assert.equal((await client.command('CWD box')).code, 550);
  } finally {
    client.close();
  }
});

test('a quota holds on S3: 552 past it with no part left behind, AVBL shows the usage, a delete frees it', { timeout: 60_000 }, async () => {
  const client = await RawClient.connect(server.port, server.host);
  const carol = 'homes/carol/';
  try {
    await client.login('carol', TEST_PASSWORD);
    assert.deepEqual(await client.command('AVBL'), { code: 213, text: String(CAROL_QUOTA) });
    const a = randomBytes(6 * MiB);
    assert.equal((await passiveUpload(client, 'STOR a.bin', a)).final.code, 226);
    assert.deepEqual(await client.command('AVBL'), { code: 213, text: String(CAROL_QUOTA - a.length) });

    // 8 MiB on top of 6 MiB passes the 12 MiB quota after one 5 MiB part went to the store.
    const over = await passiveUpload(client, 'STOR b.bin', randomBytes(8 * MiB));
    assert.equal(over.final.code, 552, `${over.first.code} ${over.final.code} ${over.final.text}`);
    assert.match(over.final.text, /Quota of 12582912 bytes reached/);
    await until('the stopped upload\'s parts discarded', async () => (await view.openUploads(carol)).length === 0, 10_000);
    assert.deepEqual([...(await view.objects(carol))], [[`${carol}a.bin`, a.length]], 'only the file within the quota');
    assert.equal((await client.command('SIZE b.bin')).code, 550, 'nothing to resume past a quota');
    assert.deepEqual(await client.command('AVBL'), { code: 213, text: String(CAROL_QUOTA - a.length) }, 'the stopped upload holds no room');

    assert.equal((await client.command('DELE a.bin')).code, 250);
    assert.deepEqual(await client.command('AVBL'), { code: 213, text: String(CAROL_QUOTA) });
    assert.equal((await passiveUpload(client, 'STOR b.bin', randomBytes(8 * MiB))).final.code, 226, 'room again after the delete');
    assert.deepEqual(await client.command('AVBL'), { code: 213, text: String(CAROL_QUOTA - 8 * MiB) });
  } finally {
    client.close();
  }
  assert.ok(server.logs.some((l) => l.event === 'limit' && l.limit === 'quota_bytes'), 'the hit has its log line');
});
