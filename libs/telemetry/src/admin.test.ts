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

test('/readyz carries detail lines (the user store) and the user store gauges follow its health at scrape time', async () => {
  let health = { backend: 'postgres', up: true, users: 12, detail: 'PostgreSQL: 12 users, listening for changes' };
  const metrics = createEdgeMetrics({ userStore: () => health });
  const server = await startAdminServer({ host: '127.0.0.1', port: 0, registry: metrics.registry, ready: () => true, details: () => [`user store: ${health.detail}`] });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    assert.equal(await (await fetch(`${base}/readyz`)).text(), 'ready\nuser store: PostgreSQL: 12 users, listening for changes\n');
    let text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /ftp_user_store_up\{backend="postgres"\} 1/);
    assert.match(text, /ftp_user_store_users\{backend="postgres"\} 12/);
    health = { ...health, up: false, detail: 'PostgreSQL unreachable since …' };
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200, 'logins go on: still ready');
    assert.match(await ready.text(), /unreachable/);
    text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /ftp_user_store_up\{backend="postgres"\} 0/);
  } finally {
    server.close();
  }
});
