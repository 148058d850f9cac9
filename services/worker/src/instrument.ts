/**
 * The first module of the worker process: starts OpenTelemetry (when OTEL_* configures it) before any other module is
 * evaluated. ESM hoists imports, so a startTracing() call in main.ts would run after bullmq and ioredis were loaded;
 * main.ts imports this module first instead.
 */
import { startTracing } from '@ftp/telemetry';

export const stopTracing = startTracing('ftp-worker');
