import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger } from '@ftp/telemetry';
import { queuePrefix, UPLOAD_QUEUE } from '@ftp/upload-events';
import { loadWorkerConfig } from '../../services/worker/src/config';
import { startWorker } from '../../services/worker/src/worker';
import { startTestServer } from '../support/server';
import { one, parentOf, scriptedUpload, startTestTracing } from '../support/tracing';
import { deleteKeysUnder } from '../support/redisKeys';

// The worker's context manager (AsyncLocalStorage, the SDK default, as services/worker/src/instrument.ts starts it):
// an upload through an in-process edge, processed by an in-process worker, is one trace. AsyncLocalStorage also
// carries the context through BullMQ's own awaits, so its Redis commands show under the publish here.
const tracing = startTestTracing({ context: 'async' });
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

after(() => tracing.shutdown());

test("the worker's job and step spans join the upload's trace; Redis and BullMQ calls are child spans", async () => {
  tracing.reset();
  const prefix = `test:tracing:${randomUUID()}:`;
  const server = await startTestServer({ env: { REDIS_URL, FTP_REDIS_PREFIX: prefix } });
  const config = loadWorkerConfig({ REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_DATA_DIR: server.dataDir, WORKER_ADMIN_PORT: '0' });
  const worker = await startWorker(config, createLogger({ level: 'silent' }));
  try {
    await scriptedUpload(server, 'to-worker.bin');
    const job = await tracing.waitForSpan('the worker span', (s) => s.name === 'upload.process', 15_000);
    const spans = await tracing.spans();
    const transfer = one(spans, 'ftp transfer');
    assert.equal(job.spanContext().traceId, transfer.spanContext().traceId, 'the worker span is in the upload trace');
    assert.equal(parentOf(job), transfer.spanContext().spanId, 'its parent is the transfer (the context the event carried)');
    assert.equal(job.kind, SpanKind.CONSUMER);
    assert.equal(job.attributes['ftp.path'], '/to-worker.bin');
    const step = one(spans, 'step checksum');
    assert.equal(parentOf(step), job.spanContext().spanId, 'each step is a child of the job span');

    // The publish is a producer span under the transfer; BullMQ's Redis commands are its children.
    const send = one(spans, `send ${UPLOAD_QUEUE}`);
    assert.equal(send.kind, SpanKind.PRODUCER);
    assert.equal(parentOf(send), transfer.spanContext().spanId);
    const redisUnder = (parent: ReadableSpan) => spans.filter((s) => parentOf(s) === parent.spanContext().spanId && s.attributes['db.system.name'] === 'redis');
    assert.ok(redisUnder(send).length >= 1, 'the queue add is a Redis child span of the publish');
    // The cluster-state calls of the session too: the passive-port lease under EPSV, the ban check under the session.
    assert.ok(redisUnder(one(spans, 'ftp EPSV')).length >= 1, 'the lease is a Redis child span of EPSV');
    assert.ok(redisUnder(one(spans, 'ftp session')).length >= 1, 'admission is a Redis child span of the session');
    // Their statements name the command only: no keys (client addresses) and no job payload.
    for (const span of spans.filter((s) => s.attributes['db.system.name'] === 'redis')) {
      assert.match(String(span.attributes['db.query.text']), /^(\w+|evalsha [0-9a-f]{8}) \(\d+ args\)$/);
    }
  } finally {
    await worker.close();
    await server.close();
    const admin = new Redis(REDIS_URL);
    const queue = new Queue(UPLOAD_QUEUE, { connection: admin, prefix: queuePrefix(prefix) });
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await deleteKeysUnder(admin, prefix);
    await admin.quit();
  }
});
