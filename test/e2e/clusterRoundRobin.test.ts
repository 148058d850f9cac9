import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { hashPassword } from '@ftp/identity';
import { startCluster, type Cluster } from '../support/cluster';
import { clusterCounter, loginFrom, metricValue, uploadAndDownloadConcurrently } from '../support/clusterClient';
import { RawClient } from '../support/rawClient';
import { waitFor } from '../support/rawData';
import { TEST_PASSWORD } from '../support/server';

// Three replicas behind HAProxy spreading every connection round-robin: a data connection usually lands on another
// replica than its control connection, so the relay, and the cluster-wide limits and bans, carry the whole load.
// The passive range is only 4 ports: 200 clients share them by source address (AWS Transfer Family style).
let cluster: Cluster;

before(async () => {
  const hash = await hashPassword(TEST_PASSWORD);
  cluster = await startCluster({
    balance: 'roundrobin',
    pasvPorts: 4,
    env: { FTP_BAN_AFTER_FAILURES: '3', FTP_BAN_SECONDS: '60' },
    extraUsers: `  bob:\n    password: "${hash}"\n    home: bob\n    max_sessions: 3\n`,
  });
});
after(() => cluster?.close());

test('round-robin: 200 concurrent clients from 50 addresses share 4 passive ports, every byte checked, data relayed', async (t) => {
  const servers = await cluster.haproxy.servers();
  assert.deepEqual(
    servers.filter((s) => s.backend === 'ftp_control').map((s) => `${s.server} ${s.status}`),
    ['edge-1 UP', 'edge-2 UP', 'edge-3 UP'],
  );
  const started = Date.now();
  const results = await uploadAndDownloadConcurrently(cluster, { clients: 200, perAddress: 4, firstHost: 100, prefix: 'rr' });
  assert.equal(results.length, 200);
  for (const r of results) assert.equal(r.received, r.sent, `${r.name} came back byte-exact`);

  for (const replica of cluster.replicas) {
    const logins = metricValue(await replica.metrics(), 'ftp_logins_total', 'result="success"');
    assert.ok(logins > 0, `${replica.id} served sessions (${logins})`);
  }
  const sent = await clusterCounter(cluster, 'ftp_relayed_data_connections_total', 'side="sent"');
  const received = await clusterCounter(cluster, 'ftp_relayed_data_connections_total', 'side="received"');
  assert.ok(sent > 0, `round-robin makes data connections land on the wrong replica: ${sent} relayed`);
  assert.equal(received, sent, 'every relayed connection reached its owner');
  t.diagnostic(`200 clients, 400 transfers in ${Date.now() - started} ms; ${sent} of 400 data connections relayed`);
  assert.ok(cluster.replicas.every((r) => r.running), 'no replica crashed');
});

test('round-robin: a per-user limit of 3 sessions holds across replicas', async () => {
  const sessions: RawClient[] = [];
  try {
    for (let i = 0; i < 3; i++) sessions.push(await loginFrom(cluster, '127.0.0.2', 'bob'));
    const fourth = await RawClient.connect(cluster.port, cluster.host, '127.0.0.2');
    sessions.push(fourth);
    assert.equal((await fourth.reply()).code, 220);
    assert.equal((await fourth.command('USER bob')).code, 331);
    const refused = await fourth.command(`PASS ${cluster.password}`);
    assert.equal(refused.code, 421, refused.text);
    await fourth.waitClosed();
    // Log lines arrive through a pipe some time after the replies.
    const holders = () => cluster.replicas.filter((r) => r.logs.some((l) => l.event === 'login' && l.user === 'bob' && l.result === 'success'));
    await waitFor('the three logins in the replicas\' logs', () => holders().length >= 2);
    assert.ok(holders().length >= 2, `the three sessions were on ${holders().length} replicas, yet counted together`);

    sessions.shift()!.close(); // one leaves: a new one is let in
    await new Promise((resolve) => setTimeout(resolve, 200));
    sessions.push(await loginFrom(cluster, '127.0.0.2', 'bob'));
  } finally {
    for (const s of sessions) s.close();
  }
});

test('round-robin: an address banned on one replica is refused by every replica', async () => {
  const source = '127.0.0.5';
  const client = await RawClient.connect(cluster.port, cluster.host, source);
  assert.equal((await client.reply()).code, 220);
  for (let i = 0; i < 2; i++) {
    await client.command(`USER ${cluster.user}`);
    assert.equal((await client.command('PASS wrong')).code, 530);
  }
  await client.command(`USER ${cluster.user}`);
  assert.equal((await client.command('PASS wrong')).code, 421, 'the third failure bans');
  await client.waitClosed();
  const banner = () => cluster.replicas.filter((r) => r.logs.some((l) => l.msg === 'address banned after repeated failed logins'));
  await waitFor('the ban in the logs', () => banner().length > 0);
  assert.equal(banner().length, 1, 'all three failures were on one session, so one replica banned');

  for (let i = 0; i < 6; i++) {
    const again = await RawClient.connect(cluster.port, cluster.host, source);
    const reply = await again.reply();
    assert.equal(reply.code, 421, `connection ${i} refused: ${reply.text}`);
    again.close();
  }
  const refusing = () => cluster.replicas.filter((r) => r.logs.some((l) => l.msg === 'connection refused: address is banned after failed logins'));
  await waitFor('the refusals in the logs', () => refusing().length === 3).catch(() => undefined);
  assert.deepEqual(
    refusing().map((r) => r.id),
    ['edge-1', 'edge-2', 'edge-3'],
    'every replica refuses the banned address',
  );
  const other = await loginFrom(cluster, '127.0.0.6');
  other.close();
});
