import { propagation, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { injectTraceContext, startChildSpan, tracer } from './tracing';

// As deployed with OTEL_TRACES_SAMPLER=parentbased_traceidratio and a ratio of 0: no root is sampled.
const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  }),
);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

const remote = (traceFlags: TraceFlags) =>
  trace.setSpanContext(ROOT_CONTEXT, { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags, isRemote: true });

test('a child of a sampled parent is recorded by the SDK and exported', () => {
  exporter.reset();
  const child = startChildSpan('ftp RETR', { attributes: { 'ftp.session.id': 's1' } }, remote(TraceFlags.SAMPLED));
  assert.equal(child.isRecording(), true);
  child.end();
  const [span] = exporter.getFinishedSpans();
  assert.equal(span.name, 'ftp RETR');
  assert.equal(span.spanContext().traceId, 'a'.repeat(32));
  assert.equal(span.parentSpanContext?.spanId, 'b'.repeat(16));
  assert.equal(span.attributes['ftp.session.id'], 's1');
});

test('a child of an unsampled session is not recorded, and what it propagates stays unsampled', () => {
  exporter.reset();
  const session = tracer.startSpan('ftp session', { root: true });
  assert.equal(session.isRecording(), false, 'ratio 0: the root is not sampled');
  const sessionContext = trace.setSpan(ROOT_CONTEXT, session);
  const command = startChildSpan('ftp STOR', {}, sessionContext);
  const transfer = startChildSpan('ftp transfer', {}, trace.setSpan(sessionContext, command));
  assert.equal(command.isRecording(), false);
  assert.equal(transfer.isRecording(), false);
  assert.equal(transfer.spanContext().traceId, session.spanContext().traceId, 'same trace as the session');
  assert.equal(command.spanContext().spanId, session.spanContext().spanId, "the session's context: the SDK was not asked");
  // The SDK itself would have decided the same for this child.
  assert.equal(tracer.startSpan('ftp STOR', {}, sessionContext).isRecording(), false);
  const carried = injectTraceContext(trace.setSpan(sessionContext, transfer));
  assert.match(carried!.traceparent, new RegExp(`^00-${session.spanContext().traceId}-[0-9a-f]{16}-00$`), 'flags 00: the worker does not sample');
  for (const span of [transfer, command, session]) span.end();
  assert.equal(exporter.getFinishedSpans().length, 0);
});

test('an unsampled remote parent (a job from an unsampled session) gives an unrecorded child', () => {
  exporter.reset();
  const child = startChildSpan('upload.process', {}, remote(TraceFlags.NONE));
  assert.equal(child.isRecording(), false);
  assert.equal(child.spanContext().traceId, 'a'.repeat(32));
  child.end();
  assert.equal(exporter.getFinishedSpans().length, 0);
});

test('without a parent span the SDK decides: a root is made (and here not sampled)', () => {
  const root = startChildSpan('upload.process', {}, ROOT_CONTEXT);
  assert.equal(root.isRecording(), false);
  assert.notEqual(root.spanContext().traceId, '0'.repeat(32), 'a real new trace id from the SDK');
});
