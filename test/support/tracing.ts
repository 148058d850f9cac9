import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRedisInstrumentation, patchRedis, SyncContextManager } from '@ftp/telemetry';
import { RawClient } from './rawClient';
import { openEpsv, waitFor } from './rawData';
import type { TestServer } from './server';

/**
 * Tracing for a test process, as startTracing sets it up in a real one (context manager, W3C propagation, ioredis
 * spans) but exporting into memory. `sync` is the edge's context manager (no AsyncLocalStorage), `async` the worker's.
 * Call it before starting servers: loggers made afterwards carry trace ids.
 */
export function startTestTracing(options: { context: 'sync' | 'async' }) {
  const exporter = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor(exporter);
  const provider = new BasicTracerProvider({ spanProcessors: [processor] });
  context.setGlobalContextManager(options.context === 'sync' ? new SyncContextManager() : new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  const redis = createRedisInstrumentation();
  redis.setTracerProvider(provider);
  patchRedis(redis);

  const spans = async (): Promise<ReadableSpan[]> => {
    await processor.forceFlush();
    return exporter.getFinishedSpans();
  };
  return {
    spans,
    reset: () => exporter.reset(),
    /** Waits until a finished span matches, and returns it. */
    async waitForSpan(what: string, match: (span: ReadableSpan) => boolean, timeoutMs = 10_000): Promise<ReadableSpan> {
      let found: ReadableSpan | undefined;
      await waitFor(what, async () => Boolean((found = (await spans()).find(match))), timeoutMs);
      return found!;
    },
    async shutdown() {
      redis.disable();
      await provider.shutdown();
    },
  };
}

/** The span's parent span id ('' for a root). */
export const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId ?? '';

export const byName = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);

/** The one span named `name` (asserts there is exactly one). */
export function one(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = byName(spans, name);
  assert.equal(found.length, 1, `one ${name} span (got ${found.length})`);
  return found[0];
}

/** LOGIN → EPSV → STOR → QUIT on a raw control connection; returns what was uploaded. */
export async function scriptedUpload(server: TestServer, name: string): Promise<Buffer> {
  const client = await RawClient.connect(server.port);
  await client.login(server.user, server.password);
  const data = await openEpsv(client);
  const payload = randomBytes(70_000);
  const opening = await client.command(`STOR ${name}`);
  assert.equal(opening.code, 150);
  data.end(payload);
  assert.equal((await client.reply(10_000)).code, 226);
  assert.equal((await client.command('QUIT')).code, 221);
  await client.waitClosed();
  return payload;
}
