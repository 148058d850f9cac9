export { createLogger, type Logger } from './logger';
export { createEdgeMetrics, replyClass, type EdgeMetrics } from './metrics';
export { startTracing } from './tracing';
export { startAdminServer } from './admin';
