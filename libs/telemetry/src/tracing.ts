import { createRequire } from 'node:module';
import {
  context,
  propagation,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Context,
  type ContextManager,
  type Span,
} from '@opentelemetry/api';
import type { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { threadedExporterModule, ThreadedSpanExporter } from './threadedExporter';

/**
 * The tracer every part of the service uses. It is a proxy: the no-op tracer (spans that record nothing, cost next to
 * nothing) until a tracer provider is registered, by startTracing in a process, or by a test with an in-memory exporter.
 */
export const tracer = trace.getTracer('ftp-cluster');

const require = createRequire(import.meta.url);

/** Whether the standard OTEL_* variables ask for traces: an OTLP endpoint, or an explicit exporter other than none. */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  if (exporters.includes('none')) return false;
  return exporters.length > 0 || Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts the OpenTelemetry SDK only when traces are configured through the standard OTEL_* variables, so the embedded
 * default makes no noise and runs the no-op tracer. Call it before anything loads ioredis (an entry module of its own,
 * imported first). Metrics stay with prom-client and logs with pino: the SDK's OTLP metrics and logs exporters are off
 * unless OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER ask for them. Returns a stop function that flushes.
 */
export function startTracing(
  serviceName: string,
  env: NodeJS.ProcessEnv = process.env,
  options: { context?: 'async' | 'sync' } = {},
): () => Promise<void> {
  if (!tracingConfigured(env)) return async () => {};
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const redis = createRedisInstrumentation();
  // OTLP over HTTP is encoded and sent from a worker thread (OTEL_TRACES_EXPORT_THREAD=false keeps it on the main
  // thread); the SDK's BatchSpanProcessor, built from the same OTEL_BSP_* variables, feeds it either way.
  const exporterModule = env.OTEL_TRACES_EXPORT_THREAD === 'false' ? undefined : threadedExporterModule(env);
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? serviceName,
    instrumentations: [redis],
    contextManager: options.context === 'sync' ? new SyncContextManager() : undefined,
    traceExporter: exporterModule ? new ThreadedSpanExporter(exporterModule) : undefined,
  });
  sdk.start();
  patchRedis(redis);
  return () => sdk.shutdown();
}

/**
 * Spans for ioredis commands (cluster state, BullMQ), only as children of a span of ours (no root span per heartbeat
 * or blocking poll), and with the command name only: keys and arguments carry client addresses, job payloads and
 * user names.
 */
export function createRedisInstrumentation(): IORedisInstrumentation {
  const { IORedisInstrumentation: Instrumentation } = require('@opentelemetry/instrumentation-ioredis') as typeof import('@opentelemetry/instrumentation-ioredis');
  return new Instrumentation({ requireParentSpan: true, dbStatementSerializer: redisStatement });
}

/** `get (1 args)`; a Lua script call names its script by the start of its SHA1 (`evalsha 5ab432e8 (25 args)`). */
export function redisStatement(command: string, args: unknown[]): string {
  const script = command === 'evalsha' && typeof args[0] === 'string' ? ` ${args[0].slice(0, 8)}` : '';
  return `${command}${script} (${args.length} args)`;
}

/**
 * Patches ioredis itself. The instrumentation hooks `require`, which never sees an ESM `import` of ioredis, so the
 * hook alone misses it; patching the prototype of the one shared module instance covers every import form and every
 * connection, including those opened before.
 */
export function patchRedis(instrumentation: IORedisInstrumentation) {
  let ioredis: unknown;
  let version: string;
  try {
    ioredis = require('ioredis');
    version = (require('ioredis/package.json') as { version: string }).version;
  } catch {
    return; // a process without ioredis has nothing to patch
  }
  for (const definition of instrumentation.getModuleDefinitions()) definition.patch?.(ioredis, version);
}

/**
 * A context manager without async_hooks: `with(ctx, fn)` makes `ctx` current for the synchronous part of `fn` only.
 * The SDK's default (AsyncLocalStorage) also carries it across awaits, but on Node 20 it runs a hook for every promise
 * of the process, which cost the edge about 10 % of its sessions/s (test/bench/tracing.ts). The edge passes its
 * contexts explicitly instead (each span's parent is given; Redis calls and log lines get the session's current
 * context), so it runs with this one; the worker, which is not bound by CPU, keeps AsyncLocalStorage.
 */
export class SyncContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    const previous = this.current;
    this.current = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const manager = this;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => (target as (...a: unknown[]) => unknown).apply(this, args));
    } as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.current = ROOT_CONTEXT;
    return this;
  }
}

/** True once a real tracer provider is registered (startTracing, or a test's): spans then record. */
export function tracingEnabled(): boolean {
  const provider = trace.getTracerProvider();
  return provider instanceof ProxyTracerProvider ? provider.getDelegate() !== NOOP_PROVIDER : true;
}
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/** W3C trace context (traceparent, tracestate) of `ctx`, for a message that crosses processes; undefined when there is none. */
export function injectTraceContext(ctx: Context = context.active()): Record<string, string> | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ? carrier : undefined;
}

/** The context a message's trace context names (a fresh root when it has none). */
export function extractTraceContext(carrier: Record<string, string> | undefined): Context {
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
}

/**
 * `tracer.startSpan` for a child of `parent`, without the SDK when the parent is not sampled. Every standard sampler
 * (`parentbased_*`, `traceidratio`, `always_*`) then decides "not sampled" for the child as well, but the SDK would
 * still make ids, copy attributes and ask the sampler for each command of each unsampled session: about 55 µs per
 * session in a profile of the edge (test/bench/README.md). The child is the parent's non-recording span context, so
 * what it propagates (the upload event, the webhook) stays unsampled.
 */
export function startChildSpan(name: string, options: Parameters<typeof tracer.startSpan>[1], parent: Context): Span {
  const parentSpan = trace.getSpan(parent);
  if (parentSpan && !parentSpan.isRecording() && !(parentSpan.spanContext().traceFlags & TraceFlags.SAMPLED)) {
    return trace.wrapSpanContext(parentSpan.spanContext());
  }
  return tracer.startSpan(name, options, parent);
}

/** Marks a span failed with a short message, as an FTP reply or an exception would say it. */
export function failSpan(span: Span, message: string, err?: unknown) {
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/**
 * Runs `fn` inside a new span made current (children and log lines see it), ends it when `fn` settles and marks it
 * failed when `fn` throws. With tracing off the span is the no-op one.
 */
export async function inSpan<T>(
  name: string,
  options: Parameters<typeof tracer.startSpan>[1],
  fn: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  const span = startChildSpan(name, options, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    failSpan(span, (err as Error)?.message ?? String(err), err);
    throw err;
  } finally {
    span.end();
  }
}
