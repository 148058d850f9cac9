// Redis Sentinel failover as a partner sees it: how long logins stall when the primary dies. A real primary, replica
// and three sentinels (test/support/sentinel.ts); the cluster state of an edge opens a session every 20 ms (what a
// login does in Redis) while the primary is SIGKILLed, round after round (the old primary comes back as a replica
// before the next round). Per round: the longest time a login took, from being asked to being answered (the window in
// which no login could complete), and whether any login failed. Usage: npx tsx test/bench/failover.ts
// (BENCH_ROUNDS=10, BENCH_DOWN_AFTER_MS=1000: the sentinels' down-after-milliseconds)
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedisClusterState } from '@ftp/cluster-state';
import { startSentinelGroup } from '../support/sentinel';
import { spread } from './report';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const DOWN_AFTER_MS = Number(process.env.BENCH_DOWN_AFTER_MS ?? 1000);
const LOGIN_EVERY_MS = 20;

const group = await startSentinelGroup({ downAfterMs: DOWN_AFTER_MS });
const state = await createRedisClusterState({ url: group.url, prefix: `bench:failover:${process.pid}:`, pasvRange: { min: 42000, max: 42003 } });
const windows: number[] = [];
const promotions: number[] = [];
let failed = 0;
let logins = 0;
console.log(`failover bench: ${ROUNDS} rounds, down-after-milliseconds ${DOWN_AFTER_MS}, a login every ${LOGIN_EVERY_MS} ms`);
try {
  for (let round = 1; round <= ROUNDS; round++) {
    let stop = false;
    let longest = 0;
    let roundFailed = 0;
    const record = (i: number) => ({ id: `r${round}-${i}`, replicaId: 'bench', clientAddress: '10.0.0.1', startedAt: Date.now(), bytesIn: 0, bytesOut: 0 });
    // Logins at a steady pace, each on its own (a stalled one does not hold the next back), as partners arrive.
    const pending: Promise<void>[] = [];
    const loop = (async () => {
      for (let i = 0; !stop && i < 100_000; i++) {
        const asked = Date.now();
        pending.push(
          state.sessions.open(record(i), { maxSessions: 0, maxPerAddress: 0 }).then(
            () => void (longest = Math.max(longest, Date.now() - asked)),
            () => void roundFailed++,
          ),
        );
        logins++;
        await sleep(LOGIN_EVERY_MS);
      }
    })();
    await sleep(500);
    const old = await group.killPrimary();
    const killed = Date.now();
    await group.waitForNewPrimary(old);
    const promoted = Date.now() - killed;
    await sleep(1000);
    stop = true;
    await loop;
    await Promise.all(pending);
    await group.restart(old);
    windows.push(longest);
    promotions.push(promoted);
    failed += roundFailed;
    console.log(`round ${round}: primary ${old} killed, replica promoted after ${promoted} ms; longest login ${longest} ms; failed logins ${roundFailed}`);
  }
} finally {
  await state.close();
  await group.close();
}
const sorted = [...windows].sort((a, b) => a - b);
const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
console.log(`\nlongest login per failover: p50 ${p(0.5)} ms, p99 ${p(0.99)} ms (${spread(windows)}); promotion ${spread(promotions)} ms`);
console.log(`logins: ${logins}, failed: ${failed} (a login in flight when the primary dies is refused; the rest wait)`);
