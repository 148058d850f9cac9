import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { createMemoryClusterState, type ByteTake } from '@ftp/cluster-state';
import { NO_LIMITS, type EffectiveLimits, type User } from '@ftp/identity';
import { createLocalStorage, type Storage } from '@ftp/storage';
import { createEdgeMetrics, createLogger } from '@ftp/telemetry';
import { LimitError } from './limitError';
import { withLimits } from './limitedStorage';
import { quotaDiskSpace, localDiskSpace, bytesAvailable } from './space';
import { localShares } from './transferLimiter';

const KiB = 1024;
const MiB = 1024 * KiB;

async function setup(limits: Partial<EffectiveLimits>) {
  const root = await mkdtemp(path.join(os.tmpdir(), 'limits-'));
  const cluster = createMemoryClusterState({ pasvRange: { min: 50000, max: 50010 } });
  const metrics = createEdgeMetrics();
  const user: User = { name: 'alice', root, permissions: {}, groups: [], allowFrom: [], requireTls: false, anonymous: false, limits: { ...NO_LIMITS, ...limits } };
  const ctx = { budgets: cluster.budgets, usage: cluster.usage, replicaId: 'r1', metrics, log: createLogger({ level: 'silent' }), localShares: localShares() };
  const open = () => withLimits(createLocalStorage({ root, fsync: false }), user, ctx);
  return { root, cluster, metrics, user, ctx, open, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Uploads `size` bytes through the stream as FTP does; resolves 'ok' or the error the upload ended with. */
async function upload(storage: Storage, name: string, size: number, chunk = 64 * KiB): Promise<'ok' | Error> {
  const up = await storage.openUpload(name, { kind: 'replace' }).catch((err: Error) => err);
  if (up instanceof Error) return up;
  const chunks = function* () {
    for (let sent = 0; sent < size; sent += chunk) yield Buffer.alloc(Math.min(chunk, size - sent), 7);
  };
  try {
    await pipeline(Readable.from(chunks()), up.stream);
    await up.commit();
    return 'ok';
  } catch (err) {
    await up.abort();
    return err as Error;
  }
}

const hits = async (metrics: ReturnType<typeof createEdgeMetrics>, limit: string) =>
  (await metrics.limitHits.get()).values.find((v) => v.labels.limit === limit)?.value ?? 0;

test('a user without limits keeps the storage as it is: a download still offers its file for sendfile', async (t) => {
  const s = await setup({});
  t.after(s.cleanup);
  await writeFile(path.join(s.root, 'f'), Buffer.alloc(MiB));
  const download = await s.open().openRead('/f');
  assert.equal(download.file?.length, MiB);
  download.stream.destroy();
});

test('limits are read at each transfer: a cap set while the session is open holds for its next download', async (t) => {
  const s = await setup({});
  t.after(s.cleanup);
  await writeFile(path.join(s.root, 'f'), Buffer.alloc(MiB));
  let limits: EffectiveLimits = { ...NO_LIMITS };
  const storage = withLimits(createLocalStorage({ root: s.root }), s.user, s.ctx, () => limits);
  const before = await storage.openRead('/f');
  assert.ok(before.file);
  before.stream.destroy();
  limits = { ...NO_LIMITS, bandwidthDown: 1 * MiB };
  const after = await storage.openRead('/f');
  assert.equal(after.file, undefined, 'a limited download passes the gate');
  after.stream.destroy();
});

test('quota: an upload that crosses it is stopped, its partial removed; usage follows publish, overwrite, rename and delete', async (t) => {
  const s = await setup({ quotaBytes: 3 * MiB });
  t.after(s.cleanup);
  const storage = s.open();
  assert.equal(await upload(storage, '/a', 2 * MiB), 'ok');
  assert.deepEqual(await s.cluster.usage.get('alice'), { bytes: 2 * MiB, files: 1 });

  const refused = await upload(storage, '/b', 2 * MiB);
  assert.ok(refused instanceof LimitError, String(refused));
  assert.equal(refused.code, 'quota');
  assert.match(refused.message, /Quota of 3145728 bytes reached/);
  assert.deepEqual((await readdir(s.root)).sort(), ['a'], 'no partial and no file left by the refused upload');
  assert.equal(await hits(s.metrics, 'quota_bytes'), 1);

  // Overwriting may reuse the replaced file's room.
  assert.equal(await upload(storage, '/a', 3 * MiB), 'ok');
  assert.deepEqual(await s.cluster.usage.get('alice'), { bytes: 3 * MiB, files: 1 });
  await storage.rename('/a', '/c');
  assert.deepEqual(await s.cluster.usage.get('alice'), { bytes: 3 * MiB, files: 1 }, 'a rename keeps the usage');
  await storage.delete('/c');
  assert.deepEqual(await s.cluster.usage.get('alice'), { bytes: 0, files: 0 });
  assert.equal(await upload(storage, '/b', 2 * MiB), 'ok', 'the delete freed room');
});

test('quota: usage never scanned is scanned from storage first; an announced size that cannot fit is refused before a byte', async (t) => {
  const s = await setup({ quotaBytes: 1 * MiB, quotaFiles: 3 });
  t.after(s.cleanup);
  await writeFile(path.join(s.root, 'old'), Buffer.alloc(600 * KiB));
  const storage = s.open();
  await assert.rejects(storage.openUpload('/big', { kind: 'replace' }, 500 * KiB), /Quota of 1048576 bytes reached/);
  assert.deepEqual(await s.cluster.usage.get('alice'), { bytes: 600 * KiB, files: 1 }, 'scanned');
  assert.deepEqual(await readdir(s.root), ['old']);
  assert.equal(await upload(storage, '/x', 10), 'ok');
  assert.equal(await upload(storage, '/y', 10), 'ok');
  const third = await upload(storage, '/z', 10);
  assert.ok(third instanceof LimitError && third.limit === 'quota_files', String(third));
  assert.equal(await upload(storage, '/x', 20), 'ok', 'overwriting needs no new file');
});

test('quota: an append cut by the quota gives the file back as it was', async (t) => {
  const s = await setup({ quotaBytes: 1 * MiB });
  t.after(s.cleanup);
  const storage = s.open();
  assert.equal(await upload(storage, '/log', 512 * KiB), 'ok');
  const up = await storage.openUpload('/log', { kind: 'append' });
  await assert.rejects(pipeline(Readable.from([Buffer.alloc(256 * KiB), Buffer.alloc(512 * KiB)]), up.stream), LimitError);
  await up.abort();
  assert.equal((await stat(path.join(s.root, 'log'))).size, 512 * KiB);
  assert.deepEqual(await readdir(s.root), ['log']);
});

test('statvfs and AVBL of a user with a quota: the quota is the size, what is left the room', async (t) => {
  const s = await setup({ quotaBytes: 5 * MiB, quotaFiles: 10 });
  t.after(s.cleanup);
  assert.equal(await upload(s.open(), '/a', 2 * MiB), 'ok');
  const space = await quotaDiskSpace(localDiskSpace(s.root), 'alice', () => s.user.limits!, s.cluster.usage)('/');
  assert.equal(bytesAvailable(space), 3 * MiB);
  assert.equal(space.blocks * space.blockSize, 5 * MiB);
  assert.equal(space.files, 10);
  assert.equal(space.filesFree, 9);
});

test('daily volume: downloads stop with the daily limit, and unused budget is given back', async (t) => {
  const s = await setup({ dailyDownloadBytes: 1 * MiB });
  t.after(s.cleanup);
  await writeFile(path.join(s.root, 'f'), Buffer.alloc(400 * KiB));
  const storage = s.open();
  const drain = async () => {
    const d = await storage.openRead('/f');
    assert.equal(d.file, undefined, 'a limited download does not use sendfile');
    let n = 0;
    for await (const c of d.stream) n += (c as Buffer).length;
    return n;
  };
  assert.equal(await drain(), 400 * KiB);
  assert.equal(await drain(), 400 * KiB);
  await assert.rejects(drain(), /Daily download limit of 1048576 bytes reached/);
  const today = await s.cluster.budgets.today('alice');
  assert.ok(today.download <= 1 * MiB && today.download >= 800 * KiB, `counted ${today.download}`);
  assert.equal(await hits(s.metrics, 'daily_download_bytes'), 1);
});

test('bandwidth: an upload capped at 1 MiB/s takes about as long as its size says; the session cap holds too', async (t) => {
  for (const limits of [{ bandwidthUp: 1 * MiB }, { sessionBandwidthUp: 1 * MiB }]) {
    const s = await setup(limits);
    t.after(s.cleanup);
    const started = Date.now();
    assert.equal(await upload(s.open(), '/f', 2 * MiB), 'ok');
    const seconds = (Date.now() - started) / 1000;
    // 2 MiB at 1 MiB/s, less the 200 ms burst the bucket starts with; the upper bound only catches a stuck gate.
    assert.ok(seconds > 1.6 && seconds < 10, `${JSON.stringify(limits)}: ${seconds} s`);
    assert.equal((await stat(path.join(s.root, 'f'))).size, 2 * MiB);
  }
});

test('positional writes reach the storage in the order they were made, whatever their gates wait for', async (t) => {
  const s = await setup({ quotaBytes: 64 * MiB, bandwidthUp: 4 * MiB });
  t.after(s.cleanup);
  const base = createLocalStorage({ root: s.root, fsync: false });
  const order: number[] = [];
  const recording: Storage = {
    ...base,
    async openUpload(p, start, size) {
      const up = await base.openUpload(p, start, size);
      return { ...up, writeAt: (offset, data) => (order.push(offset), up.writeAt(offset, data)) };
    },
  };
  // Redis answers at its own pace: the first take is the slowest, so without ordering the second write would pass first.
  const delays = [40];
  const budgets = { ...s.cluster.budgets, take: async (r: ByteTake) => (await sleep(delays.shift() ?? 0), s.cluster.budgets.take(r)) };
  const up = await withLimits(recording, s.user, { ...s.ctx, budgets }).openUpload('/ordered', { kind: 'replace' });
  const chunk = 256 * KiB;
  await Promise.all(Array.from({ length: 12 }, (_, i) => up.writeAt(i * chunk, Buffer.alloc(chunk, i))));
  await up.commit();
  assert.deepEqual(order, Array.from({ length: 12 }, (_, i) => i * chunk));
  assert.equal((await stat(path.join(s.root, 'ordered'))).size, 12 * chunk);
});
