import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMemoryClusterState, type ClusterState, type PassiveLease } from '@ftp/cluster-state';
import { retryReleases } from './heartbeat';

const CLIENT = '10.0.0.1';

/** One passive port, so a new lease after a release is on the same port. */
async function leased() {
  const cluster = createMemoryClusterState({ pasvRange: { min: 30000, max: 30000 } });
  const lease = (await cluster.ports.lease({ sessionId: 's1', replicaId: 'edge-1', relayAddress: '', clientAddress: CLIENT, ttlMs: 60_000 }))!;
  return { cluster, lease };
}

/** The same state, but every release fails as it does while Redis is away. */
const away = (cluster: ClusterState): ClusterState => ({
  ...cluster,
  ports: { ...cluster.ports, release: async () => Promise.reject(new Error('Redis connection reconnecting')) },
});

test('a lease whose release failed stays queued while the cluster state is away, and is released once it answers', async () => {
  const { cluster, lease } = await leased();
  const unreleased = new Set<PassiveLease>([lease]);

  await retryReleases({ cluster: away(cluster), unreleased });
  assert.equal(unreleased.size, 1, 'kept for the next heartbeat');
  assert.notEqual(await cluster.ports.find(lease.port, CLIENT), null, 'still leased');

  await retryReleases({ cluster, unreleased });
  assert.equal(unreleased.size, 0);
  assert.equal(await cluster.ports.find(lease.port, CLIENT), null, 'the port is free for this client again');
});

test('a retried release never frees a lease that another session holds now', async () => {
  const { cluster, lease } = await leased();
  await cluster.ports.release(lease); // released meanwhile (the first attempt did land) ...
  const next = (await cluster.ports.lease({ sessionId: 's2', replicaId: 'edge-1', relayAddress: '', clientAddress: CLIENT, ttlMs: 60_000 }))!;
  assert.equal(next.port, lease.port, '... and the same port leased again by a new session');
  const unreleased = new Set<PassiveLease>([lease]);
  await retryReleases({ cluster, unreleased });
  assert.equal(unreleased.size, 0);
  assert.equal((await cluster.ports.find(lease.port, CLIENT))?.sessionId, 's2', "the new session's lease is untouched");
});
