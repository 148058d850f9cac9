export { bindTraceContext, createLogger, traceFields, type Logger } from './logger';
export { createEdgeMetrics, replyClass, type EdgeMetrics, type EdgeMetricsOptions } from './metrics';
export {
  createRedisInstrumentation,
  extractTraceContext,
  failSpan,
  injectTraceContext,
  inSpan,
  patchRedis,
  startChildSpan,
  startTracing,
  SyncContextManager,
  tracer,
  tracingConfigured,
  tracingEnabled,
} from './tracing';
export { startAdminServer } from './admin';
export { startHaproxyAgent } from './haproxyAgent';
export { createXferlog, formatXferlogLine, type Xferlog, type XferlogEntry } from './xferlog';
