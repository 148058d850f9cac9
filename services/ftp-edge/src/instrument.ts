/**
 * The first module of the edge process: starts OpenTelemetry (when OTEL_* configures it) before any other module is
 * evaluated. ESM hoists imports, so a startTracing() call in main.ts would run after the whole import graph (ioredis
 * included) was loaded; main.ts imports this module first instead.
 */
import { startTracing } from '@ftp/telemetry';

// Contexts are passed explicitly in the edge: no AsyncLocalStorage on the hot path (see SyncContextManager).
export const stopTracing = startTracing('ftp-edge', process.env, { context: 'sync' });
