import { setTimeout as sleep } from 'node:timers/promises';
import { hmacSignature, signedHeaders, verifyHmacSignature } from '@ftp/signing';
import { injectTraceContext } from '@ftp/telemetry';
import { knownSha256 } from './checksum';
import { PermanentStepError } from './errors';
import { keyOf } from './files';
import type { Step, StepContext, StepResult } from './types';

export interface WebhookOptions {
  /** http(s) endpoint. Credentials in it (`https://user:pass@host/`) are sent as basic auth and never shown. */
  url: string;
  /** HMAC key shared with the receiver (see verifyWebhookSignature). */
  secret: string;
  /** Per attempt, headers and body. Default 10 000. */
  timeoutMs?: number;
  /** Deliveries tried in one run of the step; after the last, the job's own retry takes over. Default 3. */
  attempts?: number;
  /** Wait before the second attempt, doubled before each next one. Default 1000. */
  backoffMs?: number;
  /** Longest Retry-After waited for inside the step; a longer one ends the run and leaves it to the job's retry. Default 30 000. */
  maxRetryAfterMs?: number;
  /** Extra request headers (an API key, a tenant); they cannot replace the content type or the x-ftp-* headers. */
  headers?: Record<string, string>;
}

/** What the receiver gets, as JSON. */
export interface WebhookPayload {
  type: 'upload.completed';
  /**
   * The upload id: also in x-ftp-delivery, the same on every attempt, every retry of the job and a run of another
   * worker that took the job over: the receiver's idempotency key (apply each once, answer a repeat 2xx).
   */
  id: string;
  /** When the upload completed, ISO 8601. */
  occurredAt: string;
  data: {
    user: string;
    /** As the FTP client saw it: `/inbox/report.csv`. */
    path: string;
    size: number;
    sha256: string | null;
    /** Where the file is now, relative to the data root (after any move). */
    storageKey: string;
    /** Where it was uploaded, relative to the data root. */
    originalStorageKey: string;
    clientAddress: string;
    protocol: 'ftp' | 'ftps' | 'sftp';
  };
}

/**
 * POSTs an `upload.completed` event, signed Stripe-style: `x-ftp-signature: sha256=<hex HMAC-SHA256(secret,
 * timestamp + "." + body)>` with the timestamp (epoch seconds) in `x-ftp-timestamp`, so a receiver can refuse forged
 * and replayed deliveries. Network errors, timeouts, 408, 429 and 5xx are retried inside the step with exponential
 * backoff (Retry-After honoured when small); any other answer that is not 2xx is a PermanentStepError at once. When
 * the attempts are spent the error is retryable, so the job's retry tries again later. Redirects are not followed.
 * Details: { status, attempts, url } (the url without credentials or query).
 *
 * At least once: a delivery whose answer came but whose step was not recorded (the worker died, or lost the job's
 * lock and stopped: the signal aborts a request in flight) is sent again by the run that carries on, with the same
 * x-ftp-delivery and body. The receiver contract (services/worker/README.md, "Webhook receivers"): apply each
 * x-ftp-delivery once and answer a repeat with a 2xx.
 */
export function webhookStep(options: WebhookOptions): Step {
  const target = parseUrl(options.url);
  if (typeof options.secret !== 'string' || options.secret === '') throw new Error('webhook: a secret is required');
  const timeoutMs = positive('timeoutMs', options.timeoutMs, 10_000);
  const attempts = positive('attempts', options.attempts, 3);
  const backoffMs = positive('backoffMs', options.backoffMs, 1000, 0);
  const maxRetryAfterMs = positive('maxRetryAfterMs', options.maxRetryAfterMs, 30_000, 0);
  const extra: Record<string, string> = {};
  if (target.authorization) extra.authorization = target.authorization;
  for (const [name, value] of Object.entries(options.headers ?? {})) extra[name.toLowerCase()] = String(value);
  const shown = target.shown;

  return {
    name: 'webhook',
    async run(context): Promise<StepResult> {
      const { event, log, signal } = context;
      const body = JSON.stringify(webhookPayload(context));
      for (let attempt = 1; ; attempt++) {
        signal.throwIfAborted();
        const headers = {
          ...extra,
          // traceparent/tracestate of the `step webhook` span (with tracing on): the receiver can join the upload's trace.
          ...injectTraceContext(),
          'content-type': 'application/json',
          'x-ftp-delivery': event.uploadId,
          ...signedHeaders(options.secret, body), // x-ftp-timestamp, x-ftp-signature (@ftp/signing)
        };
        const outcome = await deliver(target.href, headers, body, timeoutMs, signal);
        if (outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300) {
          log.info({ url: shown, status: outcome.status, attempts: attempt }, 'webhook delivered');
          return { details: { status: outcome.status, attempts: attempt, url: shown } };
        }
        if (outcome.status !== undefined && !retryable(outcome.status)) {
          throw new PermanentStepError(`webhook ${shown} answered ${outcome.status}${outcome.text ? `: ${outcome.text}` : ''}`);
        }
        const reason = outcome.status !== undefined ? `HTTP ${outcome.status}` : outcome.error;
        let wait = backoffMs * 2 ** (attempt - 1);
        if (outcome.retryAfterMs !== undefined) {
          if (outcome.retryAfterMs > maxRetryAfterMs) {
            throw new Error(`webhook ${shown}: ${reason}, retry after ${outcome.retryAfterMs} ms: left to the job's retry`);
          }
          wait = outcome.retryAfterMs;
        }
        if (attempt >= attempts) {
          const tries = `${attempt} attempt${attempt === 1 ? '' : 's'}`;
          throw new Error(`webhook ${shown}: not delivered after ${tries}: ${reason}`, { cause: outcome.cause });
        }
        log.warn({ url: shown, attempt, reason, waitMs: wait }, 'webhook not delivered, retrying');
        // Aborted: throw the worker's reason rather than the timer's AbortError.
        await sleep(wait, undefined, { signal }).catch((err: unknown) => {
          signal.throwIfAborted();
          throw err;
        });
      }
    },
  };
}

/** The event a webhook step sends for this context. */
export function webhookPayload({ event, path, previous }: StepContext): WebhookPayload {
  const storageKey = keyOf(path) || event.storageKey;
  return {
    type: 'upload.completed',
    id: event.uploadId,
    occurredAt: new Date(event.completedAt).toISOString(),
    data: {
      user: event.user,
      path: event.path,
      size: event.size,
      sha256: knownSha256(previous, event) ?? null,
      storageKey,
      originalStorageKey: event.storageKey,
      clientAddress: event.clientAddress,
      protocol: event.protocol,
    },
  };
}

/**
 * The x-ftp-signature value: `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. The scheme lives in
 * `@ftp/signing`, shared with the identity hook's login requests; these names stay for receivers written against them.
 */
export const signWebhook = hmacSignature;

/**
 * For receivers: true when `header` (x-ftp-signature) signs `timestamp` (x-ftp-timestamp) and the raw `body` with
 * `secret`, within 300 s of now (see `verifyHmacSignature` in `@ftp/signing`).
 */
export const verifyWebhookSignature = verifyHmacSignature;

interface Outcome {
  status?: number;
  /** A little of the answer's body, for the error of a refused delivery. */
  text?: string;
  retryAfterMs?: number;
  error?: string;
  cause?: unknown;
}

async function deliver(
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Outcome> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
  } catch (err) {
    // Shutting down: not a failed delivery, the job is retried.
    signal.throwIfAborted();
    const error = (err as Error).name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : describe(err);
    return { error, cause: err };
  }
  const status = response.status;
  const ok = status >= 200 && status < 300;
  const text = ok ? undefined : await snippet(response).catch(() => undefined);
  if (ok) await response.body?.cancel().catch(() => {});
  return { status, text, retryAfterMs: retryable(status) ? retryAfter(response.headers.get('retry-after')) : undefined };
}

function retryable(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Up to 200 characters of the body, on one line. */
async function snippet(response: Response): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (!reader) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < 1024) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const text = Buffer.concat(chunks).toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 200);
  return text || undefined;
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  return code ? `${message} (${code})` : message;
}

function parseUrl(raw: string): { href: string; shown: string; authorization?: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`webhook: "${raw}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`webhook: ${url.protocol} URLs are not supported (http, https)`);
  }
  let authorization: string | undefined;
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  // fetch refuses URLs with credentials; the query may carry a token too, so it is not shown either.
  const href = url.href;
  url.search = '';
  url.hash = '';
  return { href, shown: url.href, authorization };
}

function positive(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`webhook: ${name} must be a whole number ≥ ${min}`);
  }
  return value;
}
