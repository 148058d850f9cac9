import { HeadBucketCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

/**
 * Whether the store still takes this process: the edge's and the worker's `/readyz` add `healthy()` to their
 * conditions, so Kubernetes takes a replica whose credentials stopped working out of the Service.
 *
 * A HeadBucket every `everyMs` (one in flight at most, unref'd timer) decides; a request of the sessions that fails
 * with a credential error (or any 403) only asks for an early probe, at most one per RECHECK_MIN_MS: a client can make
 * its own request fail (a key the store signs differently), but not the bucket's HeadBucket, so no user can take a
 * replica out of the Service.
 *
 * Two kinds of failure, treated differently:
 * - refused (the store answers, and says no: expired token, deleted or rotated key, suspended user, 400/403 on the
 *   bucket, a bucket that is gone, or the SDK's credential chain yields nothing): not ready at once. Nothing this
 *   replica does can work, and it does not heal by waiting for the store, only by new credentials (the SDK's chain
 *   refreshes web-identity tokens by itself; a probe that succeeds makes the replica ready again).
 * - unreachable (network errors, timeouts, 5xx, throttling that outlasts the retries): still ready, and not ready only
 *   when every probe failed for `unreachableAfterMs` (default 2 min). A hiccup of the store is seen by every replica at
 *   once: taking them all out of the Service together would turn a few seconds of 451 replies into refused
 *   connections for the whole cluster, and make the Service flap. A store that stays away for minutes from one replica
 *   (its node's network, its DNS) is a reason for that replica to leave, so the others take its new clients; if it is
 *   away from all of them, they are all unready, and clients lose little by it: without the store no transfer works.
 *
 * Each change is logged once: `error` when readiness turns false (naming the cause: the S3 error code, never the key),
 * `warn` when the store first stops answering, `info` when it is back.
 */
export interface StoreHealth {
  healthy(): boolean;
  /** One line for `/readyz` and people: what the last probe found, since when. */
  detail(): string;
  /** Stops the probes (the client stays the caller's). */
  close(): void;
}

/** What health logs through: pino's Logger fits. */
export interface HealthLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface S3HealthOptions {
  client: S3Client;
  bucket: string;
  log: HealthLog;
  /** Milliseconds between probes (default 15 s): a credential failure turns readiness false within one period. */
  everyMs?: number;
  /** Milliseconds of failed probes (unreachable, not refused) before readiness turns false (default 2 min). */
  unreachableAfterMs?: number;
  /** Milliseconds one probe may take, its retries included (default 10 s). */
  timeoutMs?: number;
}

const EVERY_MS = 15_000;
const UNREACHABLE_AFTER_MS = 120_000;
const PROBE_TIMEOUT_MS = 10_000;
/** Early probes asked for by failing requests: at most one per this many ms. */
const RECHECK_MIN_MS = 5_000;

/**
 * S3 error codes that say the store does not take these credentials (or no longer lets them use the bucket), and the
 * SDK's own when its credential chain yields nothing (web identity token unreadable, STS refusing it).
 */
const REFUSALS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidClientTokenId',
  'InvalidIdentityToken',
  'InvalidIdentityTokenException',
  'AccessDenied',
  'AccountProblem',
  'AllAccessDisabled',
  'UserSuspended',
  'NoSuchBucket',
  'CredentialsProviderError',
]);
/** HeadBucket answers without a body: only its status tells a refusal (400: a bad or expired token on AWS). */
const REFUSED_STATUS = new Set([400, 401, 403, 404]);

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

interface Failure {
  kind: 'refused' | 'unreachable';
  cause: string;
  status?: number;
}
type Outcome = { kind: 'ok' } | Failure;

/** A probe's failure: refused or unreachable, with a cause fit for a log line (an error code, never the key). */
function classify(err: unknown): Failure {
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const named = e.name && e.name !== 'Unknown' && e.name !== 'Error' ? e.name : undefined;
  const cause = named ?? e.code ?? (status !== undefined ? `HTTP ${status}` : 'no answer');
  if ((e.name && REFUSALS.has(e.name)) || (status !== undefined && REFUSED_STATUS.has(status))) return { kind: 'refused', cause, status };
  return { kind: 'unreachable', cause, status };
}

/** Whether a failed request of the sessions is worth an early probe. */
function looksRefused(err: unknown): boolean {
  const e = (err ?? {}) as SdkError;
  return (e.name !== undefined && REFUSALS.has(e.name)) || e.$metadata?.httpStatusCode === 403;
}

/** The probes' state: one object that the timer, the request watcher and readiness share. */
interface HealthState {
  state: 'ok' | 'refused' | 'unreachable';
  /** Readiness: changed only by probes, so a change and its log line go together. */
  ready: boolean;
  /** When `state` took its value (epoch ms). */
  since: number;
  cause?: string;
  probing?: Promise<void>;
  lastRecheck: number;
  closed: boolean;
}

/** Starts watching the bucket (see StoreHealth); the first probe comes after one period (the caller just checked it). */
export function watchS3Health(options: S3HealthOptions): StoreHealth {
  const { client, bucket, log } = options;
  const everyMs = options.everyMs ?? EVERY_MS;
  const unreachableAfterMs = options.unreachableAfterMs ?? UNREACHABLE_AFTER_MS;
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS;
  const h: HealthState = { state: 'ok', ready: true, since: Date.now(), lastRecheck: 0, closed: false };

  const probeOnce = async (): Promise<Outcome> => {
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
      return { kind: 'ok' };
    } catch (err) {
      const outcome = classify(err);
      // HeadBucket has no body: one more request, only when readiness is about to turn false, names the cause.
      if (outcome.kind === 'refused' && h.state !== 'refused' && outcome.cause.startsWith('HTTP ')) outcome.cause = await nameRefusal(outcome.cause);
      return outcome;
    }
  };

  /** The S3 error code of a bodiless refusal, from a listing of nothing (it has an error body). */
  const nameRefusal = async (fallback: string): Promise<string> => {
    try {
      await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 0 }), { abortSignal: AbortSignal.timeout(timeoutMs) });
      return fallback;
    } catch (err) {
      const cause = classify(err).cause;
      return cause.startsWith('HTTP ') ? fallback : cause;
    }
  };

  const enter = (state: HealthState['state'], now: number) => {
    h.state = state;
    h.since = now;
  };

  const apply = (outcome: Outcome) => {
    if (h.closed) return;
    const now = Date.now();
    const secondsSince = () => Math.round((now - h.since) / 1000);
    if (outcome.kind === 'ok') {
      if (h.state !== 'ok') {
        const back = h.state === 'refused' ? "object storage takes this process's credentials again" : 'object storage answers again';
        log.info({ bucket, after: `${secondsSince()} s` }, h.ready ? back : `${back}: ready`);
      }
      enter('ok', now);
      h.ready = true;
      h.cause = undefined;
      return;
    }
    if (outcome.kind === 'refused') {
      if (h.state === 'refused') return;
      log.error(
        { bucket, cause: outcome.cause, status: outcome.status },
        `object storage refuses this process (${outcome.cause}): its credentials expired, were removed or lost the bucket; not ready until they work again`,
      );
      enter('refused', now);
      h.ready = false;
      h.cause = outcome.cause;
      return;
    }
    // Unreachable. After a refusal nothing new is known about the credentials: it stays.
    if (h.state === 'refused') return;
    if (h.state === 'ok') {
      const limit = Math.round(unreachableAfterMs / 1000);
      log.warn({ bucket, cause: outcome.cause }, `object storage does not answer its health probe (${outcome.cause}): still ready, not ready if that lasts ${limit} s`);
      enter('unreachable', now);
    }
    h.cause = outcome.cause;
    if (h.ready && now - h.since >= unreachableAfterMs) {
      h.ready = false;
      log.error({ bucket, cause: outcome.cause, after: `${secondsSince()} s` }, `object storage unreachable for ${secondsSince()} s (${outcome.cause}): not ready until it answers`);
    }
  };

  const probe = (): Promise<void> =>
    (h.probing ??= probeOnce()
      .then(apply)
      .finally(() => (h.probing = undefined)));

  const timer = setInterval(() => void probe(), everyMs).unref();

  // Requests of the sessions (and the sweep) that fail as a refusal would ask for an early probe.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        const now = Date.now();
        if (!h.closed && context.commandName !== 'HeadBucketCommand' && h.state !== 'refused' && looksRefused(err) && now - h.lastRecheck >= RECHECK_MIN_MS) {
          h.lastRecheck = now;
          void probe();
        }
        throw err;
      }
    },
    { step: 'initialize', name: 'storeHealthWatch' },
  );

  return {
    healthy: () => h.ready,
    detail: () => {
      const since = new Date(h.since).toISOString();
      if (h.state === 'ok') return `S3 bucket ${bucket}: ok`;
      if (h.state === 'refused') return `S3 bucket ${bucket}: refused (${h.cause}) since ${since}`;
      return `S3 bucket ${bucket}: no answer (${h.cause}) since ${since}${h.ready ? `, not ready after ${Math.round(unreachableAfterMs / 1000)} s` : ''}`;
    },
    close() {
      h.closed = true;
      clearInterval(timer);
      client.middlewareStack.remove('storeHealthWatch');
    },
  };
}
