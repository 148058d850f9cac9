/**
 * The admin REST API's figures, on a real two-replica cluster (test/support/cluster.ts: its own redis-server, HAProxy,
 * edges as child processes) with users in PostgreSQL (a database of its own, dropped after):
 *
 *   npm run bench:admin-api
 *   BENCH_SESSIONS=2000 BENCH_SECONDS=5 BENCH_CONCURRENCY=8 BENCH_CHANGES=100 npm run bench:admin-api
 *
 * 1. GET /sessions with BENCH_SESSIONS live sessions registered (records written straight into the cluster's session
 *    registry, as replicas write them): requests/s with BENCH_CONCURRENCY clients for BENCH_SECONDS, latency p50/p99,
 *    and Redis CPU per request (INFO cpu of the cluster's private redis-server).
 * 2. What live transfer bytes cost Redis: one registry update (the progress report of one running transfer, sent
 *    every FTP_TRANSFER_PROGRESS_SECONDS while it runs) and one full listing, in Redis CPU.
 * 3. Time from an API change on edge-1 (PATCH a user's description) to its effect on edge-2 (its API, answering from
 *    the same memory logins use, shows the new value; polled every 2 ms): p50/p99 over BENCH_CHANGES changes.
 */
import { Redis } from 'ioredis';
import { createRedisClusterState } from '@ftp/cluster-state';
import { createPostgresStore } from '@ftp/identity';
import { adminApi } from '../support/adminApi';
import { startCluster } from '../support/cluster';
import { createTestDatabase } from '../support/postgres';
import { freeBlock } from '../support/processes';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 100);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)![1]);
  return (sys + user) * 1000;
}

const db = await createTestDatabase('bench_admin_api');
const apiPort = await freeBlock(1, ['127.0.0.11', '127.0.0.12']);
const cluster = await startCluster({
  replicas: 2,
  pasvPorts: 4,
  startTimeoutMs: 120_000,
  env: { FTP_USERS_DATABASE_URL: db.url, FTP_API_PORT: String(apiPort), FTP_LOG_LEVEL: 'warn' },
  replicaEnv: (index) => ({ FTP_API_HOST: `127.0.0.${10 + index}` }),
});
const redis = new Redis(cluster.redis.url);
const store = await createPostgresStore({ connection: db.url, dataRoot: cluster.dataDir });
try {
  const { token } = await store.createToken({ name: 'bench', scopes: ['users:read', 'users:write', 'sessions:read'] }, { name: 'bench' });
  const edge1 = adminApi(`http://127.0.0.11:${apiPort}`, token);
  const edge2 = adminApi(`http://127.0.0.12:${apiPort}`, token);
  for (let i = 0; (await edge2.get('/users')).status !== 200; i++) {
    if (i > 500) throw new Error('edge-2 never learned the token');
    await sleep(10);
  }

  // --- 1. GET /sessions with SESSIONS live records --------------------------------------------------------------
  const state = await createRedisClusterState({ url: cluster.redis.url, prefix: cluster.redisPrefix, pasvRange: cluster.pasvRange });
  const now = Date.now();
  for (let i = 0; i < SESSIONS; i++) {
    const id = `bench-${i}`;
    await state.sessions.open(
      { id, replicaId: `edge-${1 + (i % 2)}`, clientAddress: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, startedAt: now, protocol: i % 3 === 0 ? 'sftp' : 'ftp', bytesIn: 0, bytesOut: 0 },
      { maxSessions: 0, maxPerAddress: 0 },
    );
    await state.sessions.bindUser(id, `partner${i % 100}`, { maxPerUser: 0 });
    await state.sessions.update(id, { command: 'STOR', transfer: { direction: 'upload', path: `/inbox/file-${i}.bin`, startedAt: now, bytes: i * 1000 } });
  }
  const listed = await edge1.get('/sessions');
  if (listed.body.items.length < SESSIONS) throw new Error(`listed ${listed.body.items.length} of ${SESSIONS}`);
  const bodyBytes = JSON.stringify(listed.body).length;

  const latencies: number[] = [];
  const cpu0 = await redisCpuMs(redis);
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        const res = await edge1.get('/sessions');
        if (res.status !== 200) throw new Error(`GET /sessions: ${res.status}`);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu1 = await redisCpuMs(redis);
  latencies.sort((a, b) => a - b);
  console.log(`GET /sessions, ${SESSIONS} live sessions (${(bodyBytes / 1024).toFixed(0)} KiB of JSON), ${CONCURRENCY} clients for ${SECONDS} s:`);
  console.log(`  ${(latencies.length / elapsed).toFixed(1)} requests/s, latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`);
  console.log(`  Redis CPU ${((cpu1 - cpu0) / latencies.length).toFixed(2)} ms per request (${((cpu1 - cpu0) / elapsed / 10).toFixed(1)} % of a core)`);

  // --- 2. What live bytes cost Redis ----------------------------------------------------------------------------
  const rounds = 3;
  const u0 = await redisCpuMs(redis);
  for (let r = 0; r < rounds; r++) {
    await Promise.all(
      Array.from({ length: SESSIONS }, (_, i) =>
        state.sessions.update(`bench-${i}`, { transfer: { direction: 'upload', path: `/inbox/file-${i}.bin`, startedAt: now, bytes: (r + 2) * 1_000_000 + i } }),
      ),
    );
  }
  const perUpdateUs = ((await redisCpuMs(redis)) - u0) * 1000 / (rounds * SESSIONS);
  const l0 = await redisCpuMs(redis);
  for (let r = 0; r < 10; r++) await state.sessions.list();
  const perListMs = ((await redisCpuMs(redis)) - l0) / 10;
  console.log('Live transfer bytes in Redis:');
  console.log(`  one progress report (registry update): ${perUpdateUs.toFixed(1)} µs of Redis CPU`);
  console.log(`  => ${SESSIONS} transfers reporting every second: ${((perUpdateUs * SESSIONS) / 10_000).toFixed(1)} % of a Redis core`);
  console.log(`  one listing of ${SESSIONS} records: ${perListMs.toFixed(1)} ms of Redis CPU (Redis does nothing else meanwhile)`);
  await state.close();
  const keys: string[] = [];
  for (let i = 0; i < SESSIONS; i++) keys.push(`${cluster.redisPrefix}session:bench-${i}`);
  await redis.del(...keys, `${cluster.redisPrefix}sessions`);

  // --- 3. API change on edge-1 → effect on edge-2 ----------------------------------------------------------------
  if ((await edge1.post('/users', { name: 'bench-user', password: 'bench-password' })).status !== 201) throw new Error('could not create bench-user');
  const delays: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const description = `change ${i}`;
    const t = performance.now();
    const res = await edge1.patch('/users/bench-user', { description });
    if (res.status !== 200) throw new Error(`PATCH: ${res.status}`);
    for (;;) {
      if ((await edge2.get('/users/bench-user')).body.description === description) break;
      if (performance.now() - t > 10_000) throw new Error(`change ${i} not seen on edge-2 within 10 s`);
      await sleep(2);
    }
    delays.push(performance.now() - t);
  }
  delays.sort((a, b) => a - b);
  console.log(`API change on edge-1 → in force on edge-2 (PATCH returns, then edge-2 shows it), ${CHANGES} changes:`);
  console.log(`  p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${percentile(delays, 99).toFixed(1)} ms, max ${delays.at(-1)!.toFixed(1)} ms`);
} finally {
  await store.close();
  await redis.quit();
  await cluster.close();
  await db.drop();
}
