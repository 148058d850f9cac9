import { isSpanContextValid, trace, type Context } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';
import { tracingEnabled } from './tracing';

export type { Logger };

const NO_TRACE = Object.freeze({});
const TRACE_SOURCE = Symbol('traceSource');

type TraceSource = () => Context | undefined;

/**
 * Makes `logger` (and every child made from it afterwards: pino children inherit from their parent) log the ids of
 * the span in the context `source` returns, rather than of the active one: the edge's session logger follows the
 * session's current command or transfer, across awaits, without AsyncLocalStorage.
 */
export function bindTraceContext(logger: Logger, source: TraceSource) {
  (logger as unknown as Record<symbol, TraceSource>)[TRACE_SOURCE] = source;
}

/**
 * trace_id and span_id of the span current where the line is logged (the logger's bound context, else the active
 * one), so a log line leads to its trace.
 */
export function traceFields(_mergeObject?: object, _level?: number, logger?: Logger): Record<string, string> {
  const source = logger && (logger as unknown as Record<symbol, TraceSource | undefined>)[TRACE_SOURCE];
  const bound = source?.();
  const span = bound ? trace.getSpan(bound) : trace.getActiveSpan();
  if (!span) return NO_TRACE;
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return NO_TRACE;
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/** pino's default merges the line's fields into the mixin's object: fine for the fresh one of a traced line, not for the shared empty one. */
function mixinMergeStrategy(mergeObject: object, mixinObject: object): object {
  return mixinObject === NO_TRACE ? mergeObject : Object.assign(mixinObject, mergeObject);
}

/**
 * JSON logs to stdout. Child loggers carry session context so the hot path adds nothing. With tracing on (a tracer
 * provider registered before the logger is made), every line logged inside a span carries its trace_id and span_id;
 * with tracing off there is no mixin at all.
 */
export function createLogger(
  options: { level?: string; name?: string; destination?: pino.DestinationStream; traceIds?: boolean } = {},
): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      name: options.name,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...((options.traceIds ?? tracingEnabled()) ? { mixin: traceFields, mixinMergeStrategy } : {}),
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
