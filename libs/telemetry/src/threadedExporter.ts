import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

const require = createRequire(import.meta.url);

/** The OTLP exporter packages a worker can load, by OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL. */
const EXPORTER_MODULES: Record<string, string> = {
  'http/protobuf': '@opentelemetry/exporter-trace-otlp-proto',
  'http/json': '@opentelemetry/exporter-trace-otlp-http',
};

/**
 * The OTLP exporter module to run in a worker thread, or undefined when the OTEL_* variables ask for something else
 * (another exporter, several, or gRPC), which then stays on the main thread as the SDK builds it.
 */
export function threadedExporterModule(env: NodeJS.ProcessEnv): string | undefined {
  const exporters = (env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map((name) => name.trim()).filter(Boolean);
  if (exporters.length !== 1 || exporters[0] !== 'otlp') return undefined;
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  const name = EXPORTER_MODULES[protocol];
  return name ? require.resolve(name) : undefined;
}

/** A finished span as plain data: what the OTLP encoder reads of a ReadableSpan, and nothing that cannot be cloned. */
interface WireSpan {
  name: string;
  kind: number;
  context: { traceId: string; spanId: string; traceFlags: number; traceState?: string };
  parent?: { spanId: string; isRemote?: boolean };
  startTime: [number, number];
  endTime: [number, number];
  attributes: ReadableSpan['attributes'];
  droppedAttributesCount: number;
  events: ReadableSpan['events'];
  droppedEventsCount: number;
  status: ReadableSpan['status'];
  links: Array<{ context: WireSpan['context'] & { isRemote?: boolean }; attributes?: ReadableSpan['attributes']; droppedAttributesCount?: number }>;
  droppedLinksCount: number;
  scope: { name: string; version?: string; schemaUrl?: string };
  /** Index into the batch's resources. */
  resource: number;
}

interface WireResource {
  attributes: ReadableSpan['resource']['attributes'];
  schemaUrl?: string;
}

function toWire(span: ReadableSpan, resourceIndex: number): WireSpan {
  const ctx = span.spanContext();
  const parent = span.parentSpanContext;
  return {
    name: span.name,
    kind: span.kind,
    context: { traceId: ctx.traceId, spanId: ctx.spanId, traceFlags: ctx.traceFlags, traceState: ctx.traceState?.serialize() },
    parent: parent ? { spanId: parent.spanId, isRemote: parent.isRemote } : undefined,
    startTime: span.startTime,
    endTime: span.endTime,
    attributes: span.attributes,
    droppedAttributesCount: span.droppedAttributesCount,
    events: span.events,
    droppedEventsCount: span.droppedEventsCount,
    status: span.status,
    links: span.links.map((link) => ({
      context: { ...link.context, traceState: link.context.traceState?.serialize() },
      attributes: link.attributes,
      droppedAttributesCount: link.droppedAttributesCount,
    })),
    droppedLinksCount: span.droppedLinksCount,
    scope: { name: span.instrumentationScope.name, version: span.instrumentationScope.version, schemaUrl: span.instrumentationScope.schemaUrl },
    resource: resourceIndex,
  };
}

/**
 * The worker: turns plain spans back into what the OTLP encoder reads and hands them to the real exporter, which
 * encodes (protobuf or JSON) and sends them over HTTP here, off the edge's event loop. It reads the same OTEL_*
 * variables (a worker shares process.env). CommonJS by `eval`, so the edge's single-file bundle needs no second file.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { OTLPTraceExporter } = require(workerData.exporterModule);
const exporter = new OTLPTraceExporter();
const state = (s) => (s === undefined ? undefined : { serialize: () => s });
function revive(batch) {
  const resources = batch.resources.map((r) => ({ attributes: r.attributes, schemaUrl: r.schemaUrl }));
  // One object per scope, as the SDK's spans share theirs: the protobuf encoder groups spans by scope object.
  const scopes = new Map();
  const scopeOf = (s) => {
    const key = s.name + '@' + (s.version || '') + ':' + (s.schemaUrl || '');
    if (!scopes.has(key)) scopes.set(key, s);
    return scopes.get(key);
  };
  return batch.spans.map((w) => ({
    name: w.name,
    kind: w.kind,
    spanContext: () => ({ ...w.context, traceState: state(w.context.traceState) }),
    parentSpanContext: w.parent,
    startTime: w.startTime,
    endTime: w.endTime,
    attributes: w.attributes,
    droppedAttributesCount: w.droppedAttributesCount,
    events: w.events,
    droppedEventsCount: w.droppedEventsCount,
    status: w.status,
    links: w.links.map((l) => ({ ...l, context: { ...l.context, traceState: state(l.context.traceState) } })),
    droppedLinksCount: w.droppedLinksCount,
    instrumentationScope: scopeOf(w.scope),
    resource: resources[w.resource],
  }));
}
parentPort.on('message', (msg) => {
  if (msg.type === 'export') {
    exporter.export(revive(msg), (result) =>
      parentPort.postMessage({ type: 'done', id: msg.id, code: result.code, error: result.error ? String(result.error.message || result.error) : undefined }));
  } else {
    const work = msg.type === 'flush' ? exporter.forceFlush() : exporter.shutdown();
    work.then(() => parentPort.postMessage({ type: 'done', id: msg.id, code: 0 }), (err) => parentPort.postMessage({ type: 'done', id: msg.id, code: 1, error: String(err) }));
  }
});
`;

interface Done {
  type: 'done';
  id: number;
  code: number;
  error?: string;
}

/**
 * A SpanExporter that sends finished spans to a worker thread, which encodes and exports them with the OTLP exporter
 * the OTEL_* variables name. The main thread only copies each span into plain data: the protobuf encoding (about 60 %
 * of what tracing cost the edge per span) and the exporter's HTTP sockets (whose traffic through Node's shared `net`
 * and stream code made the FTP sockets' code paths polymorphic) live in another isolate. Spans still come from
 * @opentelemetry/sdk-node's tracer and BatchSpanProcessor; this is its exporter.
 */
export class ThreadedSpanExporter implements SpanExporter {
  private readonly worker: Worker;
  private readonly pending = new Map<number, (done: Done) => void>();
  private nextId = 1;
  private stopped = false;

  constructor(exporterModule: string) {
    // No execArgv of the process (--input-type=module would make the source ESM; a loader such as tsx is not needed).
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { exporterModule }, execArgv: [] });
    // Idle, it never keeps the process alive; with a call in flight it does, so the last batch of a process that
    // is shutting down (SIGTERM: sockets closed, then the SDK flushed) is sent before the process runs out of work.
    this.worker.unref();
    this.worker.on('message', (done: Done) => {
      this.pending.get(done.id)?.(done);
      this.pending.delete(done.id);
      if (this.pending.size === 0) this.worker.unref();
    });
    const failAll = (error: string) => {
      this.stopped = true;
      for (const [id, resolve] of this.pending) resolve({ type: 'done', id, code: ExportResultCode.FAILED, error });
      this.pending.clear();
    };
    this.worker.on('error', (err) => failAll(`span export worker failed: ${err.message}`));
    this.worker.on('exit', () => failAll('span export worker exited'));
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.stopped) return resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter is shut down') });
    const resources: WireResource[] = [];
    const indexOf = new Map<ReadableSpan['resource'], number>();
    const wire = spans.map((span) => {
      let index = indexOf.get(span.resource);
      if (index === undefined) {
        index = resources.push({ attributes: span.resource.attributes, schemaUrl: span.resource.schemaUrl }) - 1;
        indexOf.set(span.resource, index);
      }
      return toWire(span, index);
    });
    this.call({ type: 'export', resources, spans: wire }).then((done) =>
      resultCallback(done.code === ExportResultCode.SUCCESS ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new Error(done.error) }),
    );
  }

  async forceFlush(): Promise<void> {
    if (!this.stopped) await this.call({ type: 'flush' });
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    await this.call({ type: 'shutdown' });
    this.stopped = true;
    await this.worker.terminate();
  }

  private call(message: Record<string, unknown>): Promise<Done> {
    const id = this.nextId++;
    return new Promise<Done>((resolve) => {
      this.pending.set(id, resolve);
      this.worker.ref();
      try {
        this.worker.postMessage({ ...message, id });
      } catch (err) {
        // A value that cannot be cloned (an exotic attribute): this batch is lost, not the process.
        this.pending.delete(id);
        if (this.pending.size === 0) this.worker.unref();
        resolve({ type: 'done', id, code: ExportResultCode.FAILED, error: (err as Error).message });
      }
    });
  }
}
