import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import type { Storage } from '@ftp/storage';
import { createLogger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';
import { PermanentStepError } from './errors';
import type { StepContext, StepResult } from './types';
import { retryAfter, signWebhook, verifyWebhookSignature, webhookPayload, webhookStep, type WebhookOptions } from './webhook';

const log = createLogger({ level: 'silent' });
const SECRET = 'whsec_test';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  method?: string;
  url?: string;
}

type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

const servers: http.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

/** A receiver on 127.0.0.1 answering with `answers` in turn (the last one repeats), recording every request. */
async function receiver(...answers: Answer[]): Promise<{ url: string; received: Received[]; okCount: () => number }> {
  const received: Received[] = [];
  let ok = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), method: req.method, url: req.url });
      const answer = answers[Math.min(received.length - 1, answers.length - 1)];
      if (answer === 'hang') return;
      if (answer.status >= 200 && answer.status < 300) ok++;
      res.writeHead(answer.status, answer.headers).end(answer.body ?? '');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/ftp`, received, okCount: () => ok };
}

const event: UploadEvent = {
  uploadId: '7f0c2b0e-upload',
  user: 'alice',
  groups: ['partners'],
  path: '/inbox/report.csv',
  storageKey: 'alice/inbox/report.csv',
  size: 1234,
  sha256: 'e'.repeat(64),
  clientAddress: '203.0.113.9',
  protocol: 'ftps',
  startedAt: Date.UTC(2024, 1, 9, 12, 0, 0),
  completedAt: Date.UTC(2024, 1, 9, 12, 0, 5),
  replicaId: 'edge-1',
};

/**
 * A webhook tells about the file and never touches it, so it needs no backend: a storage that fails every call proves
 * it (a step that used it would fail its delivery).
 */
const untouchable = new Proxy({} as Storage, {
  get: (_, method) => (method === 'then' ? undefined : () => Promise.reject(new Error(`the webhook step used the storage (${String(method)})`))),
});

function contextFor(extra: Partial<StepContext> = {}): StepContext {
  return {
    event,
    storage: untouchable,
    path: `/${event.storageKey}`,
    previous: {},
    log,
    signal: new AbortController().signal,
    ...extra,
  };
}

const step = (options: Partial<WebhookOptions> & { url: string }) => webhookStep({ secret: SECRET, backoffMs: 5, timeoutMs: 2000, ...options });

function assertSigned(request: Received): void {
  const timestamp = request.headers['x-ftp-timestamp'] as string;
  assert.ok(verifyWebhookSignature(SECRET, timestamp, request.body, request.headers['x-ftp-signature'] as string));
}

test('500 three times then 200: four requests, one delivery, the same delivery id and a valid signature on each', async () => {
  const hook = await receiver({ status: 500 }, { status: 500 }, { status: 502 }, { status: 200 });
  const result = await step({ url: hook.url, attempts: 4 }).run(contextFor());
  assert.deepEqual(result.details, { status: 200, attempts: 4, url: hook.url });
  assert.equal(hook.received.length, 4);
  assert.equal(hook.okCount(), 1);
  for (const request of hook.received) {
    assert.equal(request.method, 'POST');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['x-ftp-delivery'], event.uploadId);
    assert.equal(request.body, hook.received[0].body);
    assertSigned(request);
  }
});

test('the body is the upload.completed event, with the digest from the checksum step and the file where it is now', async () => {
  const hook = await receiver({ status: 204 });
  const previous: Record<string, StepResult> = {
    checksum: { details: { sha256: 'a'.repeat(64), bytes: 1234 } },
    move: { path: '/alice/archive/report.csv', details: { to: 'alice/archive/report.csv' } },
  };
  await step({ url: hook.url }).run(contextFor({ previous, path: '/alice/archive/report.csv' }));
  assert.deepEqual(JSON.parse(hook.received[0].body), {
    type: 'upload.completed',
    id: event.uploadId,
    occurredAt: '2024-02-09T12:00:05.000Z',
    data: {
      user: 'alice',
      path: '/inbox/report.csv',
      size: 1234,
      sha256: 'a'.repeat(64),
      storageKey: 'alice/archive/report.csv',
      originalStorageKey: 'alice/inbox/report.csv',
      clientAddress: '203.0.113.9',
      protocol: 'ftps',
    },
  });
});

test("the payload: the edge's sha256 when no step computed one, none at all as null; a file in quarantine by its key", () => {
  assert.equal(webhookPayload(contextFor()).data.sha256, 'e'.repeat(64));
  assert.equal(webhookPayload(contextFor({ event: { ...event, sha256: undefined } })).data.sha256, null);
  const quarantined = webhookPayload(contextFor({ path: '/.quarantine/7f0c2b0e-upload/report.csv' }));
  assert.deepEqual([quarantined.data.storageKey, quarantined.data.originalStorageKey], ['.quarantine/7f0c2b0e-upload/report.csv', 'alice/inbox/report.csv']);
  // A context whose path is the data root itself names no file: the upload's own key is sent.
  assert.equal(webhookPayload(contextFor({ path: '/' })).data.storageKey, 'alice/inbox/report.csv');
});

test('500 on every attempt: a retryable error once the attempts are spent', async () => {
  const hook = await receiver({ status: 503 });
  await assert.rejects(step({ url: hook.url, attempts: 3 }).run(contextFor()), (err: Error) => {
    assert.ok(!(err instanceof PermanentStepError));
    assert.match(err.message, /not delivered after 3 attempts: HTTP 503/);
    return true;
  });
  assert.equal(hook.received.length, 3);
});

test('400 fails for good at once, with what the receiver said', async () => {
  const hook = await receiver({ status: 400, body: '{"error":"unknown user"}' }, { status: 200 });
  await assert.rejects(step({ url: hook.url, attempts: 5 }).run(contextFor()), (err: Error) => {
    assert.ok(err instanceof PermanentStepError);
    assert.match(err.message, /answered 400: \{"error":"unknown user"\}/);
    return true;
  });
  assert.equal(hook.received.length, 1);
});

test('408 and 429 are retried; a redirect is not followed and fails for good', async () => {
  const retried = await receiver({ status: 408 }, { status: 429 }, { status: 200 });
  assert.equal((await step({ url: retried.url, attempts: 3 }).run(contextFor())).details?.attempts, 3);
  const moved = await receiver({ status: 301, headers: { location: 'http://127.0.0.1:1/' } });
  await assert.rejects(step({ url: moved.url }).run(contextFor()), PermanentStepError);
  assert.equal(moved.received.length, 1);
});

test('a hanging receiver times out on each attempt: a retryable timeout error', async () => {
  const hook = await receiver('hang');
  const started = Date.now();
  await assert.rejects(step({ url: hook.url, timeoutMs: 100, attempts: 2 }).run(contextFor()), (err: Error) => {
    assert.ok(!(err instanceof PermanentStepError));
    assert.match(err.message, /timed out after 100 ms/);
    return true;
  });
  assert.equal(hook.received.length, 2);
  assert.ok(Date.now() - started < 2000);
});

test('a refused connection is retried, then a retryable error', async () => {
  const hook = await receiver({ status: 200 });
  servers.pop()!.close();
  await new Promise((resolve) => setTimeout(resolve, 10));
  await assert.rejects(step({ url: hook.url, attempts: 2 }).run(contextFor()), (err: Error) => {
    assert.ok(!(err instanceof PermanentStepError));
    assert.match(err.message, /ECONNREFUSED/);
    return true;
  });
});

test('a small Retry-After replaces the backoff; a large one leaves the retry to the job', async () => {
  // With a 60 s backoff, this test only finishes quickly because Retry-After: 0 is honoured.
  const small = await receiver({ status: 429, headers: { 'retry-after': '0' } }, { status: 200 });
  assert.equal((await step({ url: small.url, backoffMs: 60_000 }).run(contextFor())).details?.attempts, 2);
  const large = await receiver({ status: 503, headers: { 'retry-after': '3600' } }, { status: 200 });
  await assert.rejects(step({ url: large.url, attempts: 5 }).run(contextFor()), (err: Error) => {
    assert.ok(!(err instanceof PermanentStepError));
    assert.match(err.message, /retry after 3600000 ms/);
    return true;
  });
  assert.equal(large.received.length, 1);
});

test('shutting down stops the backoff at once', async () => {
  const hook = await receiver({ status: 500 });
  const controller = new AbortController();
  const running = step({ url: hook.url, backoffMs: 60_000, attempts: 3 }).run(contextFor({ signal: controller.signal }));
  setTimeout(() => controller.abort(new Error('worker closing')), 50);
  await assert.rejects(running, /worker closing/);
  assert.equal(hook.received.length, 1);
});

test('extra headers are sent but cannot replace the signed ones; URL credentials become basic auth and are not shown', async () => {
  const hook = await receiver({ status: 200 });
  const withCredentials = hook.url.replace('http://', 'http://hook%20user:p%40ss@') + '?token=abc';
  const result = await step({
    url: withCredentials,
    headers: { 'X-Tenant': 'acme', 'X-FTP-Signature': 'forged', 'Content-Type': 'text/plain' },
  }).run(contextFor());
  assert.equal(result.details?.url, hook.url);
  const request = hook.received[0];
  assert.equal(request.url, '/hooks/ftp?token=abc');
  assert.equal(request.headers['x-tenant'], 'acme');
  assert.equal(request.headers['content-type'], 'application/json');
  assert.equal(request.headers.authorization, `Basic ${Buffer.from('hook user:p@ss').toString('base64')}`);
  assertSigned(request);
});

test('verifyWebhookSignature accepts the real thing and rejects tampering, wrong secrets and replays', () => {
  const now = Date.UTC(2024, 1, 9, 12, 0, 0);
  const timestamp = String(now / 1000);
  const body = '{"type":"upload.completed","id":"x"}';
  const header = signWebhook(SECRET, timestamp, body);
  assert.match(header, /^sha256=[0-9a-f]{64}$/);
  assert.equal(verifyWebhookSignature(SECRET, timestamp, body, header, { now }), true);
  assert.equal(verifyWebhookSignature(SECRET, timestamp, Buffer.from(body), header, { now }), true);
  assert.equal(verifyWebhookSignature(SECRET, timestamp, body.replace('"x"', '"y"'), header, { now }), false);
  assert.equal(verifyWebhookSignature('other', timestamp, body, header, { now }), false);
  assert.equal(verifyWebhookSignature(SECRET, String(now / 1000 + 1), body, header, { now }), false);
  assert.equal(verifyWebhookSignature(SECRET, timestamp, body, header, { now: now + 301_000 }), false);
  assert.equal(verifyWebhookSignature(SECRET, timestamp, body, `sha256=${'0'.repeat(64)}, ${header}`, { now }), true);
  assert.equal(verifyWebhookSignature(SECRET, timestamp, body, 'garbage', { now }), false);
  assert.equal(verifyWebhookSignature(SECRET, timestamp, body, undefined, { now }), false);
  assert.equal(verifyWebhookSignature(SECRET, 'not-a-number', body, header, { now }), false);
});

test('bad options fail at construction', () => {
  assert.throws(() => webhookStep({ url: 'not a url', secret: 's' }), /not a URL/);
  assert.throws(() => webhookStep({ url: 'ftp://example.com/', secret: 's' }), /not supported/);
  assert.throws(() => webhookStep({ url: 'https://example.com/', secret: '' }), /secret/);
  assert.throws(() => webhookStep({ url: 'https://example.com/', secret: 's', attempts: 0 }), /attempts/);
  assert.throws(() => webhookStep({ url: 'https://example.com/', secret: 's', timeoutMs: 1.5 }), /timeoutMs/);
});

test('retryAfter reads seconds and HTTP dates', () => {
  const now = Date.UTC(2024, 1, 9, 12, 0, 0);
  assert.equal(retryAfter(null, now), undefined);
  assert.equal(retryAfter('5', now), 5000);
  assert.equal(retryAfter('Fri, 09 Feb 2024 12:00:30 GMT', now), 30_000);
  assert.equal(retryAfter('Fri, 09 Feb 2024 11:00:00 GMT', now), 0);
  assert.equal(retryAfter('soon', now), undefined);
});
