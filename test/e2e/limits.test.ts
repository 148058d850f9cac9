// Per-user limits on one embedded edge (in-memory cluster state), through both front doors: AVBL and ALLO, a quota
// that stops an upload (FTP 552, SFTP FAILURE) and leaves nothing behind, OpenSSH's `df` (statvfs@openssh.com), the
// session rate of a user, and a limit change in the users file applied to the next login without a restart.
// Cluster-wide sharing (three replicas, Redis) is clusterLimits.test.ts.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword } from '@ftp/identity';
import { RawClient } from '../support/rawClient';
import { passiveUpload } from '../support/rawData';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../support/server';
import { sftpBatch } from '../support/sftpClient';

const MiB = 1024 * 1024;

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 3000) {
  for (const end = Date.now() + timeoutMs; !(await check()); ) {
    if (Date.now() > end) assert.fail(what);
    await new Promise((r) => setTimeout(r, 20));
  }
}
let server: TestServer;

before(async () => {
  const hash = await hashPassword(TEST_PASSWORD);
  server = await startTestServer({
    sftp: true,
    extraUsers:
      `  carol:\n    password: "${hash}"\n    home: carol\n    limits: {quota_bytes: ${3 * MiB}, quota_files: 5}\n` +
      `  dave:\n    password: "${hash}"\n    home: dave\n    limits: {sessions_per_minute: 2}\n`,
  });
});
after(() => server?.close());

async function login(user: string) {
  const c = await RawClient.connect(server.port, server.host);
  await c.reply();
  await c.command(`USER ${user}`);
  return { client: c, pass: await c.command(`PASS ${TEST_PASSWORD}`) };
}

test('FTP: FEAT offers AVBL; AVBL and ALLO see the quota; an upload past it is 552 and leaves nothing; a delete frees room', async () => {
  const { client: c, pass } = await login('carol');
  assert.equal(pass.code, 230);
  try {
    assert.match((await c.command('FEAT')).text, /\n AVBL\r?\n/);
    assert.deepEqual(await c.command('AVBL'), { code: 213, text: String(3 * MiB) });
    assert.equal((await c.command('AVBL /nowhere')).code, 550);
    assert.equal((await c.command('ALLO abc')).code, 501);
    const allo = await c.command(`ALLO ${4 * MiB}`);
    assert.equal(allo.code, 552);
    assert.match(allo.text, /4194304 bytes requested, 3145728 available/);

    assert.equal((await passiveUpload(c, 'STOR a.bin', Buffer.alloc(2 * MiB, 1))).final.code, 226);
    assert.deepEqual(await c.command('AVBL'), { code: 213, text: String(1 * MiB) });
    // ALLO then STOR: the announced size is refused before the data connection carries a byte.
    assert.equal((await c.command(`ALLO ${2 * MiB}`)).code, 552);
    const over = await passiveUpload(c, 'STOR b.bin', Buffer.alloc(2 * MiB, 2));
    assert.equal(over.final.code, 552, `${over.first.code} ${over.final.code} ${over.final.text}`);
    assert.match(over.final.text, /Exceeded storage allocation \(Quota of 3145728 bytes reached\)/);
    // The stopped upload's partial goes as its abort ends, just after the reply.
    await until(async () => (await readdir(join(server.dataDir, 'carol'))).join() === 'a.bin', 'no partial of the stopped upload');
    assert.equal((await c.command('NOOP')).code, 200, 'the session goes on');

    assert.equal((await c.command('DELE a.bin')).code, 250);
    assert.equal((await passiveUpload(c, 'STOR b.bin', Buffer.alloc(2 * MiB, 2))).final.code, 226, 'room again after the delete');
  } finally {
    c.close();
  }
  const hits = server.logs.filter((l) => l.event === 'limit' && l.limit === 'quota_bytes');
  assert.ok(hits.length >= 1, 'the hit has its log line');
});

test("SFTP: OpenSSH's df shows the quota; a put past it fails with a quota status and leaves nothing", async () => {
  // OpenSSH's sftp in batch mode; `-` prefixes nothing: a failed put fails the batch.
  const run = async (commands: string[]) => {
    const result = await sftpBatch(server.edge.sftpPort, { user: 'carol', password: TEST_PASSWORD }, commands, { timeoutMs: 60_000 });
    return { code: result.code, out: result.stdout + result.stderr };
  };
  const home = join(server.dataDir, 'carol');
  const before = (await readdir(home)).sort();
  const df = await run(['df']);
  assert.equal(df.code, 0, df.out);
  // `df` prints Size Used Avail (root) in KiB: the quota, the 2 MiB file of the FTP test, what is left of the quota.
  const row = /\n\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+%/.exec(df.out);
  assert.ok(row, df.out);
  assert.deepEqual(row.slice(1, 4).map(Number), [3072, 2048, 1024]);

  const big = join(server.dataDir, 'big.bin');
  await writeFile(big, Buffer.alloc(4 * MiB, 3));
  const quotaHits = () => server.logs.filter((l) => l.event === 'limit' && l.user === 'carol' && /Quota of 3145728 bytes reached/.test(String(l.msg))).length;
  const hitsBefore = quotaHits();
  const put = await run([`put ${big} big.bin`]);
  assert.notEqual(put.code, 0, put.out);
  // OpenSSH's client prints only the status code's name ("Failure"); the server's message names the quota.
  assert.match(put.out, /write remote "\/big.bin": Failure/);
  assert.equal(quotaHits(), hitsBefore + 1, 'the hit is logged');
  await until(async () => (await readdir(home)).sort().join() === before.join(), 'nothing left of the refused put');
});

test('the session rate of a user: the third login within a minute is refused with 421', async () => {
  const first = await login('dave');
  const second = await login('dave');
  const third = await login('dave');
  try {
    assert.deepEqual([first.pass.code, second.pass.code], [230, 230]);
    assert.equal(third.pass.code, 421);
    assert.match(third.pass.text, /Too many new sessions for this user/);
  } finally {
    for (const c of [first, second, third]) c.client.close();
  }
});

test('a limit changed in the users file holds for the next transfer of a session already open, without a restart', async () => {
  const { client, pass } = await login('carol');
  assert.equal(pass.code, 230);
  try {
    const file = server.config.usersFile;
    const yaml = await readFile(file, 'utf8');
    await writeFile(file, yaml.replace(`quota_bytes: ${3 * MiB}`, `quota_bytes: ${8 * MiB}`));
    // The users file is checked for changes at most once a second.
    await until(async () => (await client.command('AVBL')).text === String(6 * MiB), 'AVBL shows the new quota', 5000);
    assert.equal((await passiveUpload(client, 'STOR c.bin', Buffer.alloc(4 * MiB, 4))).final.code, 226, 'the bigger quota holds');
  } finally {
    client.close();
  }
});
