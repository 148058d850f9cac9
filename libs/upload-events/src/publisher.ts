import { Queue, type JobsOptions } from 'bullmq';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { connectRedis } from '@ftp/cluster-state';
import { extractTraceContext, startChildSpan, type Logger } from '@ftp/telemetry';
import { createOutboxJournal } from './journal';
import { JOB_UPLOAD_ABORTED, JOB_UPLOAD_COMPLETED, UPLOAD_QUEUE, queuePrefix, type UploadAbortedEvent, type UploadEvent } from './types';

/**
 * What became of one event: added to the queue (at once or from the outbox), kept in the outbox, found in the outbox
 * journal at start (an earlier process deferred it), or given up.
 */
export type PublishOutcome = 'queued' | 'deferred' | 'recovered' | 'lost';

export interface UploadPublisherOptions {
  redisUrl: string;
  /** The deployment's key prefix (FTP_REDIS_PREFIX); the queue lives under queuePrefix(redisPrefix). */
  redisPrefix: string;
  log: Logger;
  /** Tries a worker gets per job. Default 5. */
  attempts?: number;
  /** First retry delay of a failed job, doubling each time. Default 2 s. */
  backoffMs?: number;
  /** 'all' also sends upload.aborted; default 'completed' (publishAborted is then a no-op). */
  events?: 'completed' | 'all';
  /** Events kept while Redis is away; beyond it the oldest is dropped (and logged in full). Default 100 000. */
  outboxLimit?: number;
  /** An add not answered within this goes to the outbox (the add is idempotent, so a late success does no harm). Default 2 s. */
  commandTimeoutMs?: number;
  /**
   * FTP_OUTBOX_DIR: where deferred events are also written (one file each), so that they outlive this process; the
   * next start delivers them. Unset = memory only: an edge that dies while Redis is away loses its outbox.
   */
  journalDir?: string;
  /** Called for every outcome, with the outbox size after it: for metrics. */
  onOutcome?: (outcome: PublishOutcome, pending: number) => void;
}

/** What the edge holds: publishing never throws and costs one Redis round trip while Redis answers. */
export interface UploadPublisher {
  publishCompleted(event: UploadEvent): Promise<void>;
  publishAborted(event: UploadAbortedEvent): Promise<void>;
  /** Events waiting in the outbox for Redis to come back. */
  pending(): number;
  /** The connection to Redis is up. */
  available(): boolean;
  /** Drains the outbox until the deadline (best effort), logs what is left as lost, closes the connection. */
  close(deadlineMs?: number): Promise<void>;
}

interface Entry {
  name: string;
  data: UploadEvent | UploadAbortedEvent;
}

const DAY_SECONDS = 24 * 3600;
/** Jobs per addBulk while draining the outbox: one pipelined round trip each. */
const DRAIN_BATCH = 500;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10_000;

/**
 * The edge's producer of upload jobs. Its connection fails fast (no offline queue, no retries per command), which
 * BullMQ allows for a Queue (only a Worker's blocking connection needs `maxRetriesPerRequest: null`): an add while
 * Redis is away must not hold a 226 back. Such an event waits in an in-memory outbox (and, with journalDir, on disk)
 * and is re-added in the background.
 * Adding is idempotent (job id = uploadId), so an add that timed out but did land is not doubled by its retry.
 */
export function createUploadPublisher(options: UploadPublisherOptions): UploadPublisher {
  const { log } = options;
  const wantAborted = options.events === 'all';
  const limit = options.outboxLimit ?? 100_000;
  const jobOptions: JobsOptions = {
    attempts: options.attempts ?? 5,
    backoff: { type: 'exponential', delay: options.backoffMs ?? 2000 },
    removeOnComplete: { age: DAY_SECONDS, count: 10_000 },
    removeOnFail: false,
  };
  /** Oldest first; keyed by uploadId, so an event re-published while waiting is kept once. */
  const outbox = new Map<string, Entry>();
  let timer: NodeJS.Timeout | undefined;
  let retryMs = RETRY_MIN_MS;
  let draining: Promise<void> | undefined;
  /** Set once close() is called. */
  let closed: Promise<void> | undefined;
  const inFlight = new Set<Promise<unknown>>();
  const report = (outcome: PublishOutcome) => options.onOutcome?.(outcome, outbox.size);
  const journal = options.journalDir ? createOutboxJournal(options.journalDir, log) : undefined;

  // Either REDIS_URL form: one server, or Sentinel (a failover is an outage the outbox bridges).
  const redis = connectRedis(options.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout: 5000,
    retryStrategy: (times: number) => Math.min(times * 100, 2000),
    // disconnect() during an outage ends the last, already dead socket and waits this long for a 'close' that
    // never comes: the default 2 s would hold the process that long after close().
    disconnectTimeout: 200,
  });
  // One warning per outage and one line when it ends, not one per reconnect attempt.
  let outage = false;
  const outageBegan = (err: string) => {
    if (outage || closed) return;
    outage = true;
    log.warn({ err, pending: outbox.size }, 'upload events: Redis unreachable, events wait in the outbox');
  };
  redis.on('error', (err: Error) => outageBegan(err.message));
  redis.on('close', () => outageBegan('connection closed'));
  redis.on('ready', () => {
    if (outage) log.info({ pending: outbox.size }, 'upload events: Redis reachable again');
    outage = false;
    clearTimeout(timer); // no need to wait out the backoff
    timer = undefined;
    if (outbox.size > 0) schedule(0);
  });

  let queue = openQueue();

  // What an earlier process left in the journal joins the outbox (behind nothing: this one has not published yet).
  const recovered = journal
    ?.load()
    .then((entries) => {
      for (const entry of entries) {
        if (outbox.has(entry.data.uploadId)) continue;
        outbox.set(entry.data.uploadId, entry as Entry);
        report('recovered');
      }
      if (entries.length > 0) log.warn({ recovered: entries.length, dir: options.journalDir }, 'upload events: deferred events of an earlier run found in the journal, delivering them');
      if (outbox.size > 0 && redis.status === 'ready') schedule(0);
    })
    .catch((err: Error) => log.error({ err: err.message, dir: options.journalDir }, 'upload events: could not read the outbox journal'));
  /** A Queue whose set-up failed (the connection dropped during it) never recovers: make a new one on the same connection. */
  function openQueue(): Queue {
    const q = new Queue(UPLOAD_QUEUE, { connection: redis, prefix: queuePrefix(options.redisPrefix) });
    q.on('error', () => {}); // connection errors are logged above, once per outage
    q.waitUntilReady().catch(() => {
      if (queue === q && !closed) {
        queue = openQueue();
        void q.close().catch(() => {});
      }
    });
    return q;
  }

  /** Into the outbox (and the journal: resolves once the event is on disk, so a 226 never outruns it). */
  function defer(entry: Entry, err: unknown): Promise<void> {
    if (outbox.size === 0) log.warn({ err: errorText(err), uploadId: entry.data.uploadId }, 'upload event deferred: Redis unavailable');
    else log.debug({ err: errorText(err), uploadId: entry.data.uploadId }, 'upload event deferred');
    outbox.delete(entry.data.uploadId);
    outbox.set(entry.data.uploadId, entry);
    const saved = journal?.save(entry) ?? Promise.resolve();
    if (outbox.size > limit) {
      const [oldestId, oldest] = outbox.entries().next().value as [string, Entry];
      outbox.delete(oldestId);
      journal?.remove(oldestId);
      log.error(
        { lost: oldest.data, job: oldest.name, limit },
        'UPLOAD EVENT LOST: outbox full while Redis is away, dropped the oldest event (re-enqueue it from this line)',
      );
      report('lost');
    }
    report('deferred');
    schedule(retryMs);
    return saved;
  }

  function schedule(ms: number) {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      void drain();
    }, ms);
    timer.unref(); // the edge's listeners keep the process alive; a forgotten publisher must not
  }

  /** One pass at a time: a call while one runs gets that one. */
  function drain(): Promise<void> {
    // Set before the pass can settle: a pass that fails at once must not leave `draining` set for good (it did: the
    // outbox then never drained again after an outage whose first retry came before Redis was back).
    draining ??= drainOnce().finally(() => (draining = undefined));
    return draining;
  }

  /** Batches until the outbox is empty or an add fails (then retry later, backing off). */
  async function drainOnce(): Promise<void> {
    try {
      while (outbox.size > 0) {
        if (redis.status !== 'ready') throw new Error(`Redis connection ${redis.status}`);
        const batch = [...take(outbox.values(), DRAIN_BATCH)];
        await queue.addBulk(batch.map((e) => ({ name: e.name, data: e.data, opts: { ...jobOptions, jobId: e.data.uploadId } })));
        for (const e of batch) {
          // Re-published meanwhile? Then it is already in the queue under the same id; drop it either way.
          outbox.delete(e.data.uploadId);
          journal?.remove(e.data.uploadId);
          report('queued');
        }
        log.info({ delivered: batch.length, pending: outbox.size }, 'upload events: deferred events delivered');
      }
      retryMs = RETRY_MIN_MS;
    } catch (err) {
      log.debug({ err: errorText(err), pending: outbox.size }, 'upload events: outbox not drained yet');
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      schedule(retryMs);
    }
  }

  /**
   * One `send uploads` span (messaging semantic conventions) per event published by a session; the queue's Redis
   * commands are its children. What the outbox delivers later has no span (no session is waiting for it). Its parent
   * is the context the event carries (the upload's transfer), so no ambient context is needed.
   */
  function publish(entry: Entry): Promise<void> {
    const parent = extractTraceContext(entry.data.traceContext);
    const span = startChildSpan(`send ${UPLOAD_QUEUE}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'bullmq',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'add',
        'messaging.destination.name': UPLOAD_QUEUE,
        'messaging.message.id': entry.data.uploadId,
        'ftp.upload.event': entry.name,
      },
    }, parent);
    return context.with(trace.setSpan(parent, span), () => publishNow(entry)).then((outcome) => {
      span.setAttribute('ftp.upload.outcome', outcome);
      if (outcome !== 'queued') span.setStatus({ code: SpanStatusCode.ERROR, message: `event ${outcome}` });
      span.end();
    });
  }

  function publishNow(entry: Entry): Promise<PublishOutcome> {
    if (closed) {
      log.error({ lost: entry.data, job: entry.name }, 'UPLOAD EVENT LOST: published after close() (re-enqueue it from this line)');
      report('lost');
      return Promise.resolve('lost');
    }
    if (redis.status !== 'ready') {
      // Not even trying: while the connection is down an add would wait for the queue's set-up.
      return defer(entry, new Error(`Redis connection ${redis.status}`)).then(() => 'deferred');
    }
    const attempt: Promise<PublishOutcome> = queue
      .add(entry.name, entry.data, { ...jobOptions, jobId: entry.data.uploadId })
      .then(
        () => {
          report('queued');
          return 'queued' as const;
        },
        (err: unknown) => defer(entry, err).then(() => 'deferred' as const),
      )
      .finally(() => inFlight.delete(attempt));
    inFlight.add(attempt);
    return attempt;
  }

  return {
    publishCompleted: (event) => publish({ name: JOB_UPLOAD_COMPLETED, data: event }),
    publishAborted: (event) => (wantAborted ? publish({ name: JOB_UPLOAD_ABORTED, data: event }) : Promise.resolve()),
    pending: () => outbox.size,
    available: () => redis.status === 'ready',
    close(deadlineMs = 5000) {
      closed ??= (async () => {
        const deadline = Date.now() + deadlineMs;
        await recovered;
        await Promise.all(inFlight);
        clearTimeout(timer);
        timer = undefined;
        while (outbox.size > 0 && Date.now() < deadline) {
          if (redis.status === 'ready') await drain();
          if (outbox.size > 0) await sleep(Math.min(100, Math.max(deadline - Date.now(), 0)));
        }
        // Every journal write and removal asked for so far is done: what the files say is final.
        await journal?.settled();
        if (outbox.size > 0 && journal) {
          // What is on disk waits for the next start; what is not (its write failed) is lost like without a journal.
          const kept = [...outbox.keys()].filter((id) => journal.has(id));
          if (kept.length > 0) {
            log.warn({ kept: kept.length, dir: options.journalDir, uploadIds: kept }, 'upload events: Redis did not come back in time; deferred events stay in the journal for the next start');
          }
          for (const id of kept) outbox.delete(id);
        }
        if (outbox.size > 0) {
          for (const e of outbox.values()) log.error({ lost: e.data, job: e.name }, 'UPLOAD EVENT LOST at shutdown (re-enqueue it from this line)');
          log.error({ lost: outbox.size, uploadIds: [...outbox.keys()] }, 'upload events lost at shutdown: Redis did not come back in time');
          const count = outbox.size;
          outbox.clear();
          for (let i = 0; i < count; i++) report('lost');
        }
        await queue.close().catch(() => {});
        if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
        else if (redis.status !== 'end') redis.disconnect();
      })();
      return closed;
    },
  };
}

function* take<T>(items: Iterable<T>, n: number): Generator<T> {
  if (n <= 0) return;
  for (const item of items) {
    yield item;
    if (--n === 0) return;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
