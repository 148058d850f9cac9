import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger } from '@ftp/telemetry';
import { startRedisProxy } from '../../../test/support/redisProxy';
import { createUploadPublisher, type PublishOutcome, type UploadPublisherOptions } from './publisher';
import { JOB_UPLOAD_ABORTED, JOB_UPLOAD_COMPLETED, UPLOAD_QUEUE, queuePrefix, type UploadEvent } from './types';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Every queue this file wrote to, obliterated at the end; every connection it made, closed at the end. */
const queues = new Set<Queue>();
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  for (const q of queues) {
    await q.obliterate({ force: true });
    await q.close();
    await (q.opts.connection as Redis).quit(); // a connection handed to a Queue is the caller's to close
  }
});

/** A publisher on a fresh prefix, with its log lines and outcomes captured, and a reader queue on the same keys. */
function setup(options: Partial<UploadPublisherOptions> = {}) {
  const redisPrefix = options.redisPrefix ?? `test:${randomUUID()}:`;
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const outcomes: PublishOutcome[] = [];
  const publisher = createUploadPublisher({
    redisUrl: REDIS_URL,
    redisPrefix,
    log: createLogger({ level: 'debug', destination: sink }),
    onOutcome: (outcome) => outcomes.push(outcome),
    ...options,
  });
  closers.push(() => publisher.close(0));
  const reader = new Queue(UPLOAD_QUEUE, { connection: new Redis(REDIS_URL), prefix: queuePrefix(redisPrefix) });
  queues.add(reader);
  return { publisher, reader, logs, outcomes };
}

function event(overrides: Partial<UploadEvent> = {}): UploadEvent {
  return {
    uploadId: randomUUID(),
    user: 'alice',
    groups: ['staff'],
    path: '/inbox/report.csv',
    storageKey: 'alice/inbox/report.csv',
    size: 1234,
    sha256: 'ab'.repeat(32),
    clientAddress: '10.0.0.7',
    protocol: 'ftps',
    startedAt: 1_700_000_000_000,
    completedAt: 1_700_000_000_500,
    replicaId: 'edge-1',
    ...overrides,
  };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A Redis proxy that can be cut and reopened, cut again at the end. */
async function redisProxy() {
  const proxy = await startRedisProxy(REDIS_URL);
  closers.push(proxy.cut);
  return proxy;
}

test('publisher: a completed upload becomes one job named upload.completed, whose data is the event', async () => {
  const { publisher, reader, outcomes } = setup({ attempts: 3, backoffMs: 500 });
  await waitFor('the connection', () => publisher.available());
  const sent = event();
  await publisher.publishCompleted(sent);
  await publisher.publishCompleted(sent); // a retried publish
  await publisher.publishCompleted({ ...sent, size: 1 }); // even with other data: the first one stays

  const counts = await reader.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
  assert.equal(counts.waiting, 1, 'one job per uploadId');
  const job = await reader.getJob(sent.uploadId);
  assert.ok(job);
  assert.equal(job.name, JOB_UPLOAD_COMPLETED);
  assert.deepEqual(job.data, sent);
  assert.equal(job.opts.attempts, 3);
  assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 500 });
  assert.deepEqual(job.opts.removeOnComplete, { age: 86_400, count: 10_000 });
  assert.equal(job.opts.removeOnFail, false);
  assert.deepEqual(outcomes, ['queued', 'queued', 'queued']);
  assert.equal(publisher.pending(), 0);
  await publisher.close();
});

test('publisher: aborted uploads are sent only with events "all"', async () => {
  const { sha256: _sha256, storageKey: _storageKey, ...rest } = event();
  const completedOnly = setup();
  await waitFor('the connection', () => completedOnly.publisher.available());
  await completedOnly.publisher.publishAborted({ ...rest, reason: 'aborted' });
  assert.equal(await completedOnly.reader.count(), 0);
  await completedOnly.publisher.close();

  const all = setup({ events: 'all' });
  await waitFor('the connection', () => all.publisher.available());
  await all.publisher.publishAborted({ ...rest, reason: 'aborted' });
  const job = await all.reader.getJob(rest.uploadId);
  assert.equal(job?.name, JOB_UPLOAD_ABORTED);
  assert.deepEqual(job?.data, { ...rest, reason: 'aborted' });
  await all.publisher.close();
});

test('publisher: events published while Redis is away wait in the outbox and are delivered once it is back', async () => {
  const proxy = await redisProxy();
  const { publisher, reader, logs, outcomes } = setup({ redisUrl: proxy.url });
  await waitFor('the connection', () => publisher.available());
  const before = event();
  await publisher.publishCompleted(before);

  await proxy.cut();
  await waitFor('the connection to drop', () => !publisher.available());
  const started = Date.now();
  const during = [event(), event()];
  for (const e of during) await publisher.publishCompleted(e); // never throws
  assert.ok(Date.now() - started < 500, `publishing during the outage took ${Date.now() - started} ms`);
  assert.equal(publisher.pending(), 2);
  assert.deepEqual(outcomes, ['queued', 'deferred', 'deferred']);
  assert.ok(logs.some((l) => l.level === 40 && /Redis unreachable|deferred/.test(String(l.msg))), 'the outage is logged');

  await proxy.reopen();
  await waitFor('the outbox to drain', () => publisher.pending() === 0);
  for (const e of [before, ...during]) assert.deepEqual((await reader.getJob(e.uploadId))?.data, e);
  assert.equal(await reader.count(), 3);
  assert.deepEqual(outcomes, ['queued', 'deferred', 'deferred', 'queued', 'queued']);
  await publisher.close();
});

test('publisher: an outage that outlasts the first retries still drains once Redis is back', async () => {
  // The retry timer fires while Redis is still away (250 ms, 500 ms…): those passes fail at once. The outbox used
  // to stay stuck after that, its events lost at shutdown.
  const proxy = await redisProxy();
  const { publisher, reader } = setup({ redisUrl: proxy.url });
  await waitFor('the connection', () => publisher.available());
  await proxy.cut();
  await waitFor('the connection to drop', () => !publisher.available());
  const during = event();
  await publisher.publishCompleted(during);
  await new Promise((resolve) => setTimeout(resolve, 1200));
  assert.equal(publisher.pending(), 1);
  await proxy.reopen();
  await waitFor('the outbox to drain', () => publisher.pending() === 0, 15_000);
  assert.deepEqual((await reader.getJob(during.uploadId))?.data, during);
  await publisher.close();
});

test('publisher: Redis away from the start, then back: nothing waits for it, everything arrives', async () => {
  const proxy = await redisProxy();
  await proxy.cut();
  const { publisher, reader } = setup({ redisUrl: proxy.url });
  const sent = event();
  const started = Date.now();
  await publisher.publishCompleted(sent);
  assert.ok(Date.now() - started < 200);
  assert.equal(publisher.pending(), 1);
  await proxy.reopen();
  await waitFor('the outbox to drain', () => publisher.pending() === 0);
  assert.deepEqual((await reader.getJob(sent.uploadId))?.data, sent);
  await publisher.close();
});

test('publisher: a full outbox drops its oldest event loudly', async () => {
  const proxy = await redisProxy();
  await proxy.cut();
  const { publisher, logs, outcomes } = setup({ redisUrl: proxy.url, outboxLimit: 2 });
  const sent = [event(), event(), event()];
  for (const e of sent) await publisher.publishCompleted(e);
  assert.equal(publisher.pending(), 2);
  const dropped = logs.find((l) => l.level === 50 && /outbox full/.test(String(l.msg)));
  assert.deepEqual(dropped?.lost, sent[0], 'the whole event is in the log line, to re-enqueue it');
  assert.deepEqual(outcomes, ['deferred', 'deferred', 'lost', 'deferred']);
  await publisher.close(0);
});

test('publisher: close() drains the outbox until its deadline, then logs what is left as lost, and releases everything', async () => {
  const resources = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'Timeout').length;
  const baseline = resources();
  const proxy = await redisProxy();
  await proxy.cut();
  const { publisher, logs, outcomes } = setup({ redisUrl: proxy.url });
  const sent = [event(), event()];
  for (const e of sent) await publisher.publishCompleted(e);

  const started = Date.now();
  await publisher.close(300);
  assert.ok(Date.now() - started < 1500, `close took ${Date.now() - started} ms`);
  const summary = logs.find((l) => /lost at shutdown/.test(String(l.msg)));
  assert.deepEqual(summary?.uploadIds, sent.map((e) => e.uploadId));
  assert.equal(logs.filter((l) => /UPLOAD EVENT LOST at shutdown/.test(String(l.msg))).length, 2);
  assert.deepEqual(outcomes.slice(-2), ['lost', 'lost']);
  assert.equal(publisher.pending(), 0);
  const late = event();
  await publisher.publishCompleted(late); // after close: logged in full, never thrown
  assert.deepEqual(logs.at(-1)?.lost, late);
  assert.equal(publisher.pending(), 0);

  // The reader queue of setup() still holds a socket; only the publisher's must be gone.
  await waitFor('the publisher to release its socket and timers', () => resources() <= baseline + 1, 3000);
});

test('publisher: close() with Redis up delivers what is pending before returning', async () => {
  const proxy = await redisProxy();
  const { publisher, reader } = setup({ redisUrl: proxy.url });
  await waitFor('the connection', () => publisher.available());
  await proxy.cut();
  await waitFor('the connection to drop', () => !publisher.available());
  const sent = event();
  await publisher.publishCompleted(sent);
  assert.equal(publisher.pending(), 1);
  await proxy.reopen();
  await publisher.close(5000);
  assert.deepEqual((await reader.getJob(sent.uploadId))?.data, sent);
});

/** A directory for one journal test, removed at the end. */
function journalDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ftp-outbox-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A Redis address nothing listens on: every add is deferred. */
const DEAD_REDIS = 'redis://127.0.0.1:1';

test('journal: an event deferred during an outage is on disk before publish resolves, and close() keeps it there', async () => {
  const dir = journalDir();
  const { publisher, logs, outcomes } = setup({ redisUrl: DEAD_REDIS, journalDir: dir });
  const e = event();
  await publisher.publishCompleted(e);
  assert.deepEqual(outcomes, ['deferred']);
  assert.deepEqual(readdirSync(dir), [`${e.uploadId}.json`], 'written by the time publish resolved (the 226 follows it)');
  await publisher.close(0);
  assert.ok(existsSync(join(dir, `${e.uploadId}.json`)), 'still there after close');
  assert.ok(logs.some((l) => /stay in the journal/.test(String(l.msg))));
  assert.ok(!logs.some((l) => /LOST/.test(String(l.msg))), 'not reported lost: it is on disk');
});

test('journal: the next start delivers what a killed process left, one job, and removes the file', async () => {
  const dir = journalDir();
  const redisPrefix = `test:${randomUUID()}:`;
  const e = event();
  // A real process, killed with SIGKILL right after its publish resolved: nothing of it runs after that point.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { createUploadPublisher } from ${JSON.stringify(new URL('./publisher.ts', import.meta.url).pathname)};
       import { createLogger } from '@ftp/telemetry';
       const p = createUploadPublisher({ redisUrl: ${JSON.stringify(DEAD_REDIS)}, redisPrefix: ${JSON.stringify(redisPrefix)},
         log: createLogger({ level: 'fatal' }), journalDir: ${JSON.stringify(dir)} });
       await p.publishCompleted(${JSON.stringify(e)});
       console.log('published');
       setInterval(() => {}, 1000);`,
    ],
    { cwd: new URL('.', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => String(chunk).includes('published') && resolve());
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before publishing`)));
  });
  child.kill('SIGKILL');
  await exited;

  const { publisher, reader, logs, outcomes } = setup({ redisPrefix, journalDir: dir });
  await waitFor('the recovered event on the queue', async () => (await reader.getJobCounts('wait')).wait === 1);
  const [job] = await reader.getJobs(['wait']);
  assert.equal(job.id, e.uploadId);
  assert.deepEqual(job.data, e);
  await waitFor('the journal file removed', () => readdirSync(dir).length === 0);
  assert.ok(logs.some((l) => l.recovered === 1));
  assert.deepEqual(outcomes, ['recovered', 'queued']);
  assert.equal(publisher.pending(), 0);
});

test('journal: an unreadable file is set aside as .bad, the good ones are delivered', async () => {
  const dir = journalDir();
  const good = event();
  writeFileSync(join(dir, `${good.uploadId}.json`), JSON.stringify({ name: JOB_UPLOAD_COMPLETED, data: good }));
  writeFileSync(join(dir, 'broken.json'), '{"name": "upload.comp');
  const { reader, logs } = setup({ journalDir: dir });
  await waitFor('the good event on the queue', async () => (await reader.getJobCounts('wait')).wait === 1);
  await waitFor('only the .bad file left', () => readdirSync(dir).join() === 'broken.json.bad');
  assert.ok(logs.some((l) => l.level === 50 && /unreadable journal file/.test(String(l.msg))));
});

test('journal: when the journal cannot be written the event is still delivered from memory, and at shutdown counted lost, not kept', async () => {
  const notADir = join(journalDir(), 'file');
  writeFileSync(notADir, 'in the way');
  const proxy = await redisProxy();
  const { publisher, reader, logs, outcomes } = setup({ redisUrl: proxy.url, journalDir: notADir });
  await waitFor('connected', () => publisher.available());
  await proxy.cut();
  await waitFor('disconnected', () => !publisher.available());
  await publisher.publishCompleted(event());
  assert.ok(logs.some((l) => l.level === 50 && /journal save failed/.test(String(l.msg))), 'the failed write is logged');
  await proxy.reopen();
  await waitFor('delivered from memory', async () => (await reader.getJobCounts('wait')).wait === 1);

  await proxy.cut();
  await waitFor('disconnected again', () => !publisher.available());
  await publisher.publishCompleted(event());
  await publisher.close(0);
  assert.ok(!logs.some((l) => /stay in the journal/.test(String(l.msg))), 'nothing claimed kept');
  assert.deepEqual(outcomes.slice(-2), ['deferred', 'lost']);
});
