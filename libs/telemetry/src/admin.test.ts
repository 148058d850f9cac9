import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createEdgeMetrics } from './metrics';
import { startAdminServer } from './admin';

test('admin server answers /healthz, /readyz (following readiness), /metrics and 404', async () => {
  let ready = true;
  const metrics = createEdgeMetrics();
  metrics.loginsTotal.inc({ protocol: 'ftp', result: 'success' });
  const server = await startAdminServer({ host: '127.0.0.1', port: 0, registry: metrics.registry, ready: () => ready });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    ready = false;
    assert.equal((await fetch(`${base}/readyz`)).status, 503);
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /ftp_logins_total\{protocol="ftp",result="success"\} 1/);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  } finally {
    server.close();
  }
});
