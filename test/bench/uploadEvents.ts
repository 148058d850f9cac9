// What an upload.completed job adds to a STOR: 500 × 1-KiB STORs against two in-process edges on the same Redis,
// one with upload events on and one with them off, alternated one by one so outside load hits both alike.
// Usage: npx tsx test/bench/uploadEvents.ts   (BENCH_STORS=500)
import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { queuePrefix, UPLOAD_QUEUE } from '@ftp/upload-events';
import type { RawClient } from '../support/rawClient';
import { passiveUpload, rawLogin } from '../support/rawData';
import { startTestServer } from '../support/server';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const STORS = Number(process.env.BENCH_STORS ?? 500);
const WARMUP = 50;

async function timeStor(client: RawClient, name: string, payload: Buffer): Promise<number> {
  const started = process.hrtime.bigint();
  const { final } = await passiveUpload(client, `STOR ${name}`, payload);
  if (final.code !== 226) throw new Error(`STOR → ${final.code} ${final.text}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const prefix = `bench:events:${randomUUID().slice(0, 8)}:`;
const common = { REDIS_URL, FTP_REDIS_PREFIX: prefix, FTP_UPLOAD_SHA256: 'true', FTP_LOG_LEVEL: 'warn' };
const on = await startTestServer({ env: { ...common, FTP_UPLOAD_EVENTS: 'completed' } });
const off = await startTestServer({ env: { ...common, FTP_UPLOAD_EVENTS: 'off' } });
const [onClient, offClient] = await Promise.all([rawLogin(on), rawLogin(off)]);
const payload = randomBytes(1024);
const times = { on: [] as number[], off: [] as number[] };
for (let i = 0; i < STORS + WARMUP; i++) {
  const a = await timeStor(onClient, `lat-${i % 20}.bin`, payload);
  const b = await timeStor(offClient, `lat-${i % 20}.bin`, payload);
  if (i >= WARMUP) {
    times.on.push(a);
    times.off.push(b);
  }
}
const quantile = (xs: number[], q: number) => [...xs].sort((x, y) => x - y)[Math.floor(q * (xs.length - 1))];
console.log(`${STORS} × 1-KiB STOR (ms per STOR, loopback, same Redis):`);
for (const [label, q] of [['median', 0.5], ['p90', 0.9]] as const) {
  const a = quantile(times.on, q);
  const b = quantile(times.off, q);
  console.log(`  ${label.padEnd(6)} events on ${a.toFixed(3)}  off ${b.toFixed(3)}  added ${(a - b).toFixed(3)}`);
}
onClient.close();
offClient.close();
await Promise.all([on.close(), off.close()]);
const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const queue = new Queue(UPLOAD_QUEUE, { connection, prefix: queuePrefix(prefix) });
await queue.obliterate({ force: true });
await queue.close();
connection.disconnect();
