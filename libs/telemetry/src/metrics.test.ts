import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEdgeMetrics, replyClass } from './metrics';

test('edge metrics render in Prometheus text format with default process metrics', async () => {
  const metrics = createEdgeMetrics();
  metrics.commandsTotal.inc({ verb: 'RETR', class: replyClass(226) });
  metrics.transferBytes.inc({ protocol: 'ftp', direction: 'download' }, 1024);
  const text = await metrics.registry.metrics();
  assert.match(text, /ftp_commands_total\{verb="RETR",class="2xx"\} 1/);
  assert.match(text, /ftp_transfer_bytes_total\{protocol="ftp",direction="download"\} 1024/);
  assert.match(text, /process_cpu_user_seconds_total/);
});

test('two registries do not collide', () => {
  createEdgeMetrics();
  createEdgeMetrics();
});
