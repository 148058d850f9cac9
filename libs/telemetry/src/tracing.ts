import { NodeSDK } from '@opentelemetry/sdk-node';

/**
 * Starts the OpenTelemetry SDK only when an exporter is configured through the standard OTEL_* variables,
 * so the embedded default makes no noise. Returns a stop function that flushes.
 */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): () => Promise<void> {
  const configured = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_TRACES_EXPORTER !== 'none';
  if (!configured || env.OTEL_SDK_DISABLED === 'true') return async () => {};
  env.OTEL_SERVICE_NAME ??= serviceName;
  const sdk = new NodeSDK();
  sdk.start();
  return () => sdk.shutdown();
}
