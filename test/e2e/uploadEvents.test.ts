import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { Client } from 'basic-ftp';
import { Redis } from 'ioredis';
import { hashPassword } from '@ftp/identity';
import { partialNameFor } from '@ftp/storage';
import { JOB_UPLOAD_ABORTED, JOB_UPLOAD_COMPLETED, UPLOAD_QUEUE, queuePrefix, type UploadAbortedEvent, type UploadEvent } from '@ftp/upload-events';
import { openPassive, passiveUpload, rawLogin, waitFor, writeData } from '../support/rawData';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../support/server';
import { deleteKeysUnder } from '../support/redisKeys';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every prefix used here: its queue is obliterated and its other keys (cluster state) deleted at the end. */
const used: { prefix: string; queue: Queue }[] = [];
const servers: TestServer[] = [];
const admin = new Redis(REDIS_URL);

async function serverWith(env: Record<string, string>, extraUsers?: string) {
  const prefix = `test:${randomUUID()}:`;
  // skipMetasUpdate: this reader must not write the queue's meta key itself (the `off` test checks there is none).
  const queue = new Queue<UploadEvent | UploadAbortedEvent>(UPLOAD_QUEUE, { connection: admin, prefix: queuePrefix(prefix), skipMetasUpdate: true });
  used.push({ prefix, queue });
  const server = await startTestServer({ env: { REDIS_URL, FTP_REDIS_PREFIX: prefix, ...env }, extraUsers });
  servers.push(server);
  return { server, queue, prefix };
}

let main: Awaited<ReturnType<typeof serverWith>>;
before(async () => {
  // carol has a nested home and groups, so storageKey and groups are not trivially alice's.
  const hash = await hashPassword(TEST_PASSWORD);
  main = await serverWith(
    { FTP_UPLOAD_SHA256: 'true' },
    `  carol:\n    password: "${hash}"\n    home: teams/carol\n    groups: [finance, uploads]\n`,
  );
});

after(async () => {
  for (const server of servers) await server.close();
  for (const { prefix, queue } of used) {
    await queue.obliterate({ force: true });
    await queue.close();
    await deleteKeysUnder(admin, prefix);
  }
  await admin.quit();
});

async function basicClient(server: TestServer, user = server.user, secure = false) {
  const c = new Client(10_000);
  await c.access({ host: server.host, port: server.port, user, password: server.password, secure, secureOptions: { rejectUnauthorized: false } });
  return c;
}

/** The jobs of the queue for one virtual path, by name. */
async function jobsFor(queue: Queue, path: string, name = JOB_UPLOAD_COMPLETED) {
  const jobs = await queue.getJobs(['waiting']);
  return jobs.filter((j) => j.name === name && j.data.path === path);
}

/** Checks the fields every completed event has; returns the event. */
function checkEvent(event: UploadEvent, expected: { server: TestServer; user: string; groups: string[]; path: string; file: string; since: number }) {
  const { server } = expected;
  assert.match(event.uploadId, /^[0-9a-f-]{36}$/);
  assert.equal(event.user, expected.user);
  assert.deepEqual(event.groups, expected.groups);
  assert.equal(event.path, expected.path);
  assert.equal(join(server.dataDir, event.storageKey), expected.file, 'storageKey resolves to the file under the data root');
  assert.equal(event.size, statSync(expected.file).size);
  assert.equal(event.clientAddress, '127.0.0.1');
  assert.equal(event.replicaId, server.config.replicaId);
  assert.ok(expected.since <= event.startedAt && event.startedAt <= event.completedAt && event.completedAt <= Date.now());
  assert.equal(event.traceContext, undefined);
  return event;
}

test('STOR: one job per upload, queued before the 226, with the sha256 of the stored bytes', async () => {
  const { server, queue } = main;
  const since = Date.now();
  const c = await basicClient(server, 'carol');
  const payload = randomBytes(300_000);
  await c.ensureDir('/inbox');
  await c.uploadFrom(Readable.from([payload]), 'report.bin');
  // No waiting: the job is there when the 226 has arrived.
  const [job, ...more] = await jobsFor(queue, '/inbox/report.bin');
  assert.equal(more.length, 0, 'exactly one job');
  assert.equal(job.id, job.data.uploadId);
  const file = join(server.dataDir, 'teams', 'carol', 'inbox', 'report.bin');
  const event = checkEvent(job.data as UploadEvent, { server, user: 'carol', groups: ['finance', 'uploads'], path: '/inbox/report.bin', file, since });
  assert.equal(event.storageKey, 'teams/carol/inbox/report.bin');
  assert.equal(event.sha256, sha(payload));
  assert.equal(event.sha256, sha(readFileSync(file)));
  assert.equal(event.protocol, 'ftp');
  assert.equal(job.opts.attempts, 5);

  // Overwriting is a new upload: a second job, its own id.
  await c.uploadFrom(Readable.from([payload.subarray(0, 10)]), 'report.bin');
  const jobs = await jobsFor(queue, '/inbox/report.bin');
  assert.equal(jobs.length, 2);
  assert.notEqual(jobs[0].id, jobs[1].id);
  assert.deepEqual(jobs.map((j) => j.data.size).sort((a, b) => a - b), [10, 300_000]);

  // ASCII mode: the hash is of the bytes as stored (CRLF became LF).
  await c.send('TYPE A');
  await c.uploadFrom(Readable.from([Buffer.from('one\r\ntwo\r\n')]), 'lines.txt');
  const [text] = await jobsFor(queue, '/inbox/lines.txt');
  assert.equal(text.data.size, 8);
  assert.equal((text.data as UploadEvent).sha256, sha(Buffer.from('one\ntwo\n')));
  c.close();
});

test('APPE continuing a file and REST + STOR resuming one: events without sha256, with the whole size', async () => {
  const { server, queue } = main;
  const since = Date.now();
  const home = join(server.dataDir, 'alice');
  const payload = randomBytes(200_000);

  const c = await basicClient(server);
  await c.uploadFrom(Readable.from([payload.subarray(0, 50_000)]), 'appended.bin');
  await c.appendFrom(Readable.from([payload.subarray(50_000)]), 'appended.bin');
  c.close();
  const appended = await jobsFor(queue, '/appended.bin');
  assert.equal(appended.length, 2);
  const [first, second] = appended.map((j) => j.data as UploadEvent).sort((a, b) => a.size - b.size);
  assert.equal(first.sha256, sha(payload.subarray(0, 50_000)), 'the first part started at offset 0');
  checkEvent(second, { server, user: 'alice', groups: [], path: '/appended.bin', file: join(home, 'appended.bin'), since });
  assert.equal(second.size, payload.length);
  assert.equal(second.sha256, undefined, 'an append is not hashed: the hash would only cover its own bytes');
  assert.equal(second.storageKey, 'alice/appended.bin');

  // A broken upload: the client vanishes mid-transfer. Its bytes stay a partial, and it makes no completed job.
  const broken = await rawLogin(server);
  const data = await openPassive(broken);
  assert.equal((await broken.command('STOR resumed.bin')).code, 150);
  const sent = 70_001;
  await writeData(data, payload.subarray(0, sent));
  const partial = join(home, partialNameFor('resumed.bin'));
  await waitFor('partial bytes on disk', () => existsSync(partial) && statSync(partial).size === sent);
  broken.socket.destroy();
  data.destroy();
  await waitFor('the broken upload to be audited', () => server.logs.some((l) => l.event === 'upload' && l.path === '/resumed.bin'));
  assert.equal((await jobsFor(queue, '/resumed.bin')).length, 0, 'a broken upload is not announced as completed');
  assert.equal((await jobsFor(queue, '/resumed.bin', JOB_UPLOAD_ABORTED)).length, 0, 'aborted events are off by default');

  const again = await rawLogin(server);
  assert.equal((await again.command(`REST ${sent}`)).code, 350);
  assert.equal((await passiveUpload(again, 'STOR resumed.bin', payload.subarray(sent))).final.code, 226);
  await again.command('QUIT');
  const [resumed, ...more] = await jobsFor(queue, '/resumed.bin');
  assert.equal(more.length, 0);
  const event = checkEvent(resumed.data as UploadEvent, { server, user: 'alice', groups: [], path: '/resumed.bin', file: join(home, 'resumed.bin'), since });
  assert.equal(event.size, payload.length);
  assert.equal(event.sha256, undefined);
  assert.equal(sha(readFileSync(join(home, 'resumed.bin'))), sha(payload));
});

test('FTPS: an upload over a protected data connection says protocol ftps', async () => {
  const { server, queue } = main;
  const c = await basicClient(server, server.user, true);
  await c.uploadFrom(Readable.from([Buffer.from('secret')]), 'tls.txt');
  c.close();
  const [job] = await jobsFor(queue, '/tls.txt');
  assert.equal(job.data.protocol, 'ftps');
  assert.equal((job.data as UploadEvent).sha256, sha(Buffer.from('secret')));
});

test('FTP_UPLOAD_EVENTS=all also queues upload.aborted for a broken upload; =off queues nothing', async () => {
  const all = await serverWith({ FTP_UPLOAD_EVENTS: 'all' });
  const c = await rawLogin(all.server);
  const data = await openPassive(c);
  assert.equal((await c.command('STOR cut.bin')).code, 150);
  await writeData(data, randomBytes(5000));
  const partial = join(all.server.dataDir, 'alice', partialNameFor('cut.bin'));
  await waitFor('partial bytes on disk', () => existsSync(partial) && statSync(partial).size === 5000);
  // The client vanishes: its control connection first. The server sees it before the data connection ends (which in
  // stream mode would mean "complete"), so the test does not race the edge's last-moment check of the control connection.
  c.socket.destroy();
  const sessionsActive = async () => (await all.server.edge.metrics.sessionsActive.get()).values.reduce((n, v) => n + v.value, 0);
  await waitFor('the edge to see the control connection gone', async () => (await sessionsActive()) === 0);
  data.destroy();
  await waitFor('the aborted event', async () => (await jobsFor(all.queue, '/cut.bin', JOB_UPLOAD_ABORTED)).length === 1);
  const [aborted] = await jobsFor(all.queue, '/cut.bin', JOB_UPLOAD_ABORTED);
  const event = aborted.data as UploadAbortedEvent;
  assert.equal(event.reason, 'disconnected');
  assert.equal(event.size, 4999, 'where a resume would continue (one byte short of the partial)');
  assert.equal(event.user, 'alice');
  assert.equal((await jobsFor(all.queue, '/cut.bin')).length, 0);

  const off = await serverWith({ FTP_UPLOAD_EVENTS: 'off', FTP_UPLOAD_SHA256: 'true' });
  const o = await basicClient(off.server);
  await o.uploadFrom(Readable.from([Buffer.from('quiet')]), 'quiet.txt');
  o.close();
  assert.equal(await off.queue.count(), 0);
  assert.deepEqual(await admin.keys(`${queuePrefix(off.prefix)}*`), [], 'no queue keys at all');
});

/** One 1-KiB STOR on a raw session; milliseconds from PASV to the 226. */
