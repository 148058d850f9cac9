import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCluster } from '../support/cluster';
import { RawClient } from '../support/rawClient';

// Smoke test of test/support/cluster.ts: Redis, three replicas and HAProxy come up, and a client logs in through
// HAProxy (which needs the edge to read the PROXY v2 header HAProxy sends first, FTP_PROXY_PROTOCOL_FROM).

for (const balance of ['roundrobin', 'source'] as const) {
  test(`cluster harness (${balance}): log in through HAProxy`, async () => {
    const cluster = await startCluster({ balance });
    try {
      assert.equal(cluster.replicas.length, 3);
      const servers = await cluster.haproxy.servers();
      assert.deepEqual(
        servers.filter((s) => s.backend === 'ftp_control').map((s) => `${s.server} ${s.status}`),
        ['edge-1 UP', 'edge-2 UP', 'edge-3 UP'],
      );
      const client = await RawClient.connect(cluster.port, cluster.host);
      try {
        await client.login(cluster.user, cluster.password);
        const quit = await client.command('QUIT');
        assert.equal(quit.code, 221);
      } finally {
        client.close();
      }
      assert.match(await cluster.replicas[0].metrics(), /# TYPE /);
    } finally {
      await cluster.close();
    }
  });
}
