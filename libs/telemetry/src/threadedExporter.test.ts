import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { SpanKind, SpanStatusCode, trace, TraceFlags, ROOT_CONTEXT } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { threadedExporterModule, ThreadedSpanExporter } from './threadedExporter';

// A real OTLP/HTTP receiver on loopback; every body is kept, so the threaded exporter's requests can be compared
// byte for byte with what the SDK's own exporter sends for the same spans.
let server: Server;
let url: string;
const bodies: Array<{ type: string; body: Buffer }> = [];
before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push({ type: String(req.headers['content-type']), body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': String(req.headers['content-type']) }).end(req.headers['content-type'] === 'application/json' ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
});
after(() => new Promise((resolve) => server.close(resolve)));

/** Spans with everything the encoder reads: parent, remote parent, attributes of each type, events, links, status. */
function makeSpans(): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'edge-test', 'service.instance.id': 'r1' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('ftp-cluster', '1.2.3');
  const remote = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.SAMPLED, isRemote: true });
  const session = tracer.startSpan('ftp session', { kind: SpanKind.SERVER, attributes: { 'ftp.session.id': 's1', port: 2121, secure: true, list: ['a', 'b'] } }, remote);
  const child = tracer.startSpan('ftp RETR', { links: [{ context: session.spanContext(), attributes: { why: 'test' } }] }, trace.setSpan(ROOT_CONTEXT, session));
  child.addEvent('first byte', { bytes: 1 });
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'broken pipe' });
  child.end();
  session.end();
  return memory.getFinishedSpans();
}

function exportWith(exporter: SpanExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

for (const [protocol, Direct] of [
  ['http/protobuf', ProtoExporter],
  ['http/json', JsonExporter],
] as const) {
  test(`${protocol}: the worker sends the same request the SDK's exporter sends on the main thread`, async () => {
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = url;
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL = protocol;
    const module = threadedExporterModule({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: protocol });
    assert.ok(module, 'a worker exporter for this protocol');
    const spans = makeSpans();
    bodies.length = 0;

    const direct = new Direct({ url });
    assert.equal((await exportWith(direct, spans)).code, ExportResultCode.SUCCESS);
    await direct.shutdown();
    const threaded = new ThreadedSpanExporter(module);
    assert.equal((await exportWith(threaded, spans)).code, ExportResultCode.SUCCESS);
    await threaded.shutdown();

    assert.equal(bodies.length, 2);
    assert.equal(bodies[1].type, bodies[0].type);
    assert.ok(bodies[0].body.length > 200, 'a real request');
    assert.ok(bodies[1].body.equals(bodies[0].body), 'byte for byte the same request');
  });
}

test('an unreachable collector fails the export (the batch processor drops it), and a shut-down exporter refuses', async () => {
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = 'http://127.0.0.1:9/v1/traces';
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  const threaded = new ThreadedSpanExporter(threadedExporterModule({})!);
  const result = await exportWith(threaded, makeSpans());
  assert.equal(result.code, ExportResultCode.FAILED);
  await threaded.shutdown();
  assert.equal((await exportWith(threaded, makeSpans())).code, ExportResultCode.FAILED);
});

test('a process with nothing else to do, started as ESM with a loader, exports its last batch through the worker', async () => {
  // The worker's source is CommonJS: before it was started without the process's execArgv, --input-type=module made
  // it ESM ("require is not defined") and every export failed. The process also has no other work left once it
  // has called export(): the batch must still leave (the exporter holds its worker while a call is in flight).
  bodies.length = 0;
  const child = String.raw`
    import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
    import { threadedExporterModule, ThreadedSpanExporter } from './libs/telemetry/src/threadedExporter.ts';
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] });
    provider.getTracer('t').startSpan('last span').end();
    new ThreadedSpanExporter(threadedExporterModule(process.env)).export(memory.getFinishedSpans(), (r) => console.log('result', r.code, r.error?.message));
  `;
  // npm test exports OTEL_TRACES_EXPORTER=none for every test process: this one asks for OTLP itself.
  const env = { ...process.env, OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' };
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { env, cwd: new URL('../../..', import.meta.url).pathname, timeout: 30_000 }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
    ),
  );
  assert.match(stdout, /result 0/, 'the export completed');
  assert.equal(bodies.length, 1, 'the receiver got the batch');
});

test('only a single OTLP/HTTP exporter moves to the worker', () => {
  assert.ok(threadedExporterModule({}), 'the default: otlp over http/protobuf');
  assert.ok(threadedExporterModule({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }));
  assert.equal(threadedExporterModule({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), undefined);
  assert.equal(threadedExporterModule({ OTEL_TRACES_EXPORTER: 'console' }), undefined);
  assert.equal(threadedExporterModule({ OTEL_TRACES_EXPORTER: 'otlp,console' }), undefined);
});
