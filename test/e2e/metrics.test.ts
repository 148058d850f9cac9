import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RawClient } from '../support/rawClient';
import { openEpsv, readAll, waitFor } from '../support/rawData';
import { freeBlock } from '../support/processes';
import { scrape } from '../support/prometheus';
import { startTestServer, type TestServer } from '../support/server';

// One scripted run against an edge with its admin port on, per-user metrics and an xferlog: the /metrics counters and
// the xferlog lines must say exactly what the script did.
let server: TestServer;
let xferlog: string;
let metricsUrl: string;

let logDir: string;

before(async () => {
  logDir = mkdtempSync(join(tmpdir(), 'ftp-xferlog-'));
  xferlog = join(logDir, 'logs', 'xferlog');
  server = await startTestServer({
    env: { FTP_ADMIN_PORT: String(await freeBlock(1, ['127.0.0.1'])), FTP_METRICS_USER_LABELS: 'true', FTP_XFERLOG_FILE: xferlog, FTP_BAN_AFTER_FAILURES: '2' },
  });
  metricsUrl = `http://127.0.0.1:${server.edge.adminPort}/metrics`;
});

after(async () => {
  await server?.close();
  rmSync(logDir, { recursive: true, force: true });
});

test('/metrics after a scripted session counts its logins, commands by verb and class, bytes and transfers', async () => {
  const upload = randomBytes(123_457);
  // A failed login on a first connection.
  const bad = await RawClient.connect(server.port);
  assert.equal((await bad.reply()).code, 220);
  assert.equal((await bad.command(`USER ${server.user}`)).code, 331);
  assert.equal((await bad.command('PASS wrong')).code, 530);
  assert.equal((await bad.command('QUIT')).code, 221);
  await bad.waitClosed();

  // Then: login, PWD, EPSV + STOR, EPSV + RETR, an unknown command, QUIT.
  const client = await RawClient.connect(server.port);
  await client.login(server.user, server.password);
  assert.equal((await client.command('PWD')).code, 257);
  let data = await openEpsv(client);
  assert.equal((await client.command('STOR metered.bin')).code, 150);
  data.end(upload);
  assert.equal((await client.reply(10_000)).code, 226);
  data = await openEpsv(client);
  const received = readAll(data);
  assert.equal((await client.command('RETR metered.bin')).code, 150);
  assert.equal((await client.reply(10_000)).code, 226);
  assert.equal((await received).length, upload.length);
  assert.equal((await client.command('NOPE')).code, 500);
  assert.equal((await client.command('QUIT')).code, 221);
  await client.waitClosed();

  await waitFor('both sessions to close', async () => (await scrape(metricsUrl)).value('ftp_sessions_active', { protocol: 'ftp' }) === 0);
  const m = await scrape(metricsUrl);
  assert.equal(m.value('ftp_connections_total', { protocol: 'ftp', result: 'accepted' }), 2);
  assert.equal(m.value('ftp_logins_total', { protocol: 'ftp', result: 'success' }), 1);
  assert.equal(m.value('ftp_logins_total', { protocol: 'ftp', result: 'failure' }), 1);
  const commands = (verb: string, cls: string) => m.value('ftp_commands_total', { verb, class: cls });
  assert.equal(commands('USER', '3xx'), 2);
  assert.equal(commands('PASS', '2xx'), 1);
  assert.equal(commands('PASS', '5xx'), 1);
  assert.equal(commands('PWD', '2xx'), 1);
  assert.equal(commands('EPSV', '2xx'), 2);
  assert.equal(commands('STOR', '2xx'), 1);
  assert.equal(commands('RETR', '2xx'), 1);
  assert.equal(commands('UNKNOWN', '5xx'), 1, 'unknown verbs share one label value');
  assert.equal(commands('QUIT', '2xx'), 2);
  assert.equal(m.value('ftp_command_duration_seconds_count', { verb: 'EPSV' }), 2);
  assert.equal(m.value('ftp_transfer_bytes_total', { protocol: 'ftp', direction: 'upload' }), upload.length);
  assert.equal(m.value('ftp_transfer_bytes_total', { protocol: 'ftp', direction: 'download' }), upload.length);
  assert.equal(m.value('ftp_transfers_total', { protocol: 'ftp', direction: 'upload', result: 'ok' }), 1);
  assert.equal(m.value('ftp_transfers_total', { protocol: 'ftp', direction: 'download', result: 'ok' }), 1);
  assert.equal(m.value('ftp_transfer_duration_seconds_count', { protocol: 'ftp', direction: 'upload' }), 1);
  assert.equal(m.value('ftp_data_connections_total', { mode: 'passive' }), 2);
  assert.equal(m.value('ftp_passive_leases'), 0, 'every lease released');
  assert.equal(m.value('ftp_bans_active'), 0);
  assert.equal(m.value('ftp_cluster_state_up'), 1);
  assert.equal(m.value('ftp_user_transfer_bytes_total', { user: 'alice', direction: 'upload' }), upload.length);
  assert.equal(m.value('ftp_user_transfers_total', { user: 'alice', direction: 'download', result: 'ok' }), 1);
  assert.ok(m.value('process_cpu_user_seconds_total') > 0, 'default process metrics');
  assert.ok(m.samples.has('nodejs_eventloop_lag_p99_seconds'));

  // Bounded labels: no path and no user name in any label but the opt-in per-user series.
  for (const key of m.samples.keys()) {
    assert.ok(!key.includes('metered.bin'), `no path in ${key}`);
    if (!key.startsWith('ftp_user_')) assert.ok(!key.includes('alice'), `no user in ${key}`);
  }

  // The xferlog has one line per transfer, in the wu-ftpd format.
  await waitFor('xferlog lines', () => {
    try {
      return readFileSync(xferlog, 'utf8').split('\n').filter(Boolean).length === 2;
    } catch {
      return false;
    }
  });
  const [up, down] = readFileSync(xferlog, 'utf8').split('\n').filter(Boolean);
  const fields = (line: string) => line.split(/ +/).slice(5);
  assert.deepEqual(fields(up), ['1', '127.0.0.1', String(upload.length), '/metered.bin', 'b', '_', 'i', 'r', 'alice', 'ftp', '0', '*', 'c']);
  assert.deepEqual(fields(down), ['1', '127.0.0.1', String(upload.length), '/metered.bin', 'b', '_', 'o', 'r', 'alice', 'ftp', '0', '*', 'c']);
  assert.match(up, /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} /);
});

test('an upload broken by the client is an incomplete xferlog line and a failed transfer', async () => {
  const before = await scrape(metricsUrl);
  const client = await RawClient.connect(server.port);
  await client.login(server.user, server.password);
  const data = await openEpsv(client);
  assert.equal((await client.command('STOR broken.bin')).code, 150);
  data.write(randomBytes(1000));
  await new Promise((resolve) => setTimeout(resolve, 50));
  data.resetAndDestroy(); // RST, not FIN (which would say the upload is complete): the upload breaks
  const final = await client.reply(10_000);
  assert.ok(final.code >= 400, `broken upload → ${final.code}`);
  await client.command('QUIT');
  await client.waitClosed();
  await waitFor('the incomplete line', () => readFileSync(xferlog, 'utf8').includes('/broken.bin'));
  const line = readFileSync(xferlog, 'utf8').split('\n').find((l) => l.includes('/broken.bin'))!;
  assert.match(line, / \/broken\.bin b _ i r alice ftp 0 \* i$/);
  const after = await scrape(metricsUrl);
  assert.equal(after.value('ftp_transfers_total', { protocol: 'ftp', direction: 'upload', result: 'ok' }), before.value('ftp_transfers_total', { protocol: 'ftp', direction: 'upload', result: 'ok' }));
  assert.equal(after.value('ftp_transfers_total', { protocol: 'ftp', direction: 'upload', result: 'failed' }), 1);
});

test('ftp_bans_active counts the addresses banned now (from another loopback address, so the others stay free)', async () => {
  for (let i = 0; i < 2; i++) {
    const client = await RawClient.connect(server.port, '127.0.0.1', '127.0.0.2');
    assert.equal((await client.reply()).code, 220);
    await client.command(`USER ${server.user}`);
    const reply = await client.command('PASS wrong');
    assert.equal(reply.code, i === 0 ? 530 : 421, 'the second failure bans');
    client.close();
  }
  const m = await scrape(metricsUrl);
  assert.equal(m.value('ftp_bans_active'), 1);
  assert.equal(m.value('ftp_bans_total'), 1);
  assert.equal(m.value('ftp_logins_total', { protocol: 'ftp', result: 'failure' }), 3);
});
