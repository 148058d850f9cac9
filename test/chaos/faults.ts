import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterReplica } from '../support/cluster';
import type { ChaosEnv } from './environment';
import { describeFault, type PlannedFault } from './schedule';

/**
 * Runs a fault schedule against the environment: periodic faults one after another (each waits for its recovery),
 * the SIGSTOP and the full disk beside them. Every fault is logged when it starts and when it is over, with what it
 * did and how long the recovery took; a recovery that fails (a replica that does not come back healthy) is a failed
 * fault, and the run's verdict fails.
 */

export interface FaultRecord {
  planned: PlannedFault;
  what: string;
  /** ms from the start of the load. */
  startedAt: number;
  endedAt: number;
  ok: boolean;
  detail: string;
  /** Until the system had recovered (replica back UP, new primary serving, worker replaced), ms from startedAt. */
  recoveryMs?: number;
  /** When the signal went out, ms from the start of the load (a worker kill first waits for jobs in progress). */
  signalledAt?: number;
  skipped?: boolean;
}

export interface FaultContext {
  env: ChaosEnv;
  /** ms since the start of the load. */
  now: () => number;
  log: (line: string) => void;
  /** Replicas under SIGSTOP (not to be picked by another fault). */
  stopped: Set<string>;
  /** Lock tokens of killed workers (`<worker id>:<n>`): their locks outlive them, they are no live worker's jobs. */
  deadTokens?: Set<string>;
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export const faultNames = (env: ChaosEnv) => ({ replica: (i: number) => env.cluster.replicas[i]?.id ?? `replica ${i}`, worker: (i: number) => env.workers[i]?.name ?? `worker ${i}` });

/** The replica a fault planned for `index` hits: that one, or the next one that is running and not stopped. */
function replicaFor(ctx: FaultContext, index: number): ClusterReplica | undefined {
  const all = ctx.env.cluster.replicas;
  for (let i = 0; i < all.length; i++) {
    const r = all[(index + i) % all.length];
    if (r.running && !ctx.stopped.has(r.id)) return r;
  }
  return undefined;
}

/** Polls `check` every `everyMs` until true; false after `ms`. */
async function within(ms: number, check: () => Promise<boolean>, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

async function readyz(r: ClusterReplica): Promise<number> {
  const res = await fetch(`http://${r.address}:${r.adminPort}/readyz`, { signal: AbortSignal.timeout(1000) });
  await res.arrayBuffer();
  return res.status;
}

/** Healthy: /readyz 200 and HAProxy has it UP. */
export async function replicaHealthy(env: ChaosEnv, r: ClusterReplica): Promise<{ ok: boolean; detail: string }> {
  const status = await readyz(r).catch((err: Error) => `no answer (${(err.cause as Error)?.message ?? err.message})`);
  const row = (await env.cluster.haproxy.servers()).find((x) => x.backend === 'ftp_control' && x.server === r.id);
  return { ok: status === 200 && row?.status === 'UP', detail: `/readyz ${status}, HAProxy ${row?.status ?? '?'}` };
}

async function killReplica(ctx: FaultContext, f: PlannedFault, signal: 'SIGKILL' | 'SIGTERM'): Promise<Partial<FaultRecord>> {
  const r = replicaFor(ctx, f.target!);
  if (!r) return { ok: false, detail: 'no running replica to hit' };
  const retarget = r.id === ctx.env.cluster.replicas[f.target!].id ? '' : ` (planned ${ctx.env.cluster.replicas[f.target!].id}: busy)`;
  const t0 = Date.now();
  const pid = r.pid;
  // A drain is bounded by FTP_DRAIN_SECONDS: a replica still there well after it is a failure (and gets SIGKILL).
  const drainMs = Number(r.env.FTP_DRAIN_SECONDS ?? 30) * 1000 + 10_000;
  const exit = await Promise.race([r.kill(signal), sleep(drainMs, undefined, { ref: false }).then(() => undefined)]);
  const exitMs = Date.now() - t0;
  if (!exit) {
    await r.kill('SIGKILL');
    await r.restart();
    return { ok: false, recoveryMs: Date.now() - t0, detail: `${r.id} pid ${pid} did NOT exit within ${s(drainMs)} of ${signal}; killed and restarted` };
  }
  if (signal === 'SIGKILL') await sleep(500); // long enough for HAProxy to see it gone and for clients to notice
  await r.restart();
  const recoveryMs = Date.now() - t0;
  const how = signal === 'SIGTERM' ? `drained and exited with ${exit.code ?? exit.signal} after ${s(exitMs)}` : 'killed';
  const ok = signal === 'SIGKILL' || exit.code === 0;
  return { ok, recoveryMs, detail: `${r.id}${retarget} pid ${pid} ${how}; back (pid ${r.pid}, /readyz 200, HAProxy UP) after ${s(recoveryMs)}` };
}

/** The queue's active jobs and who holds their locks (a worker's lock token starts with its id). */
async function activeLocks(env: ChaosEnv): Promise<Map<string, string>> {
  const ids = await env.redis.lrange(`${env.queuePrefix}:uploads:active`, 0, -1);
  const locks = new Map<string, string>();
  for (const id of ids) {
    const token = await env.redis.get(`${env.queuePrefix}:uploads:${id}:lock`);
    if (token) locks.set(id, token);
  }
  return locks;
}

async function killWorker(ctx: FaultContext, f: PlannedFault): Promise<Partial<FaultRecord>> {
  const slot = ctx.env.workers[f.target!];
  const t0 = Date.now();
  // Mid-job: wait (a little) until jobs are being processed (two: likelier that both workers are busy), then kill.
  // Locks of workers killed before are not live jobs.
  const dead = (ctx.deadTokens ??= new Set<string>());
  const live = async () => new Map([...(await activeLocks(ctx.env))].filter(([, token]) => !dead.has(token)));
  let before = new Map<string, string>();
  // Jobs take milliseconds: poll tightly (a Redis round trip on loopback), for 3 s at most.
  const busy = await within(2000, async () => (before = await live()).size >= 2, 2);
  if (!busy) await within(1000, async () => (before = await live()).size >= 1, 2);
  const pid = slot.proc.pid;
  const signalledAt = ctx.now();
  await slot.proc.kill('SIGKILL');
  ctx.env.replaceWorker(slot);
  // Jobs that were this worker's: still locked by the same token a moment later (the live worker's take milliseconds,
  // a dead worker's lock stays until it expires).
  await sleep(400);
  const after = await activeLocks(ctx.env).catch(() => new Map<string, string>());
  const orphaned = [...before].filter(([id, token]) => after.get(id) === token).map(([id]) => id);
  for (const id of orphaned) dead.add(before.get(id)!);
  return {
    ok: true,
    signalledAt,
    recoveryMs: Date.now() - t0,
    detail: `${slot.name} pid ${pid} killed with ${before.size} job(s) active in the queue, ${orphaned.length} of them its own (left to stall and be taken over: ${orphaned.map((id) => id.slice(0, 8)).join(', ') || '-'}); new pid ${slot.proc.pid}`,
  };
}

async function failover(ctx: FaultContext): Promise<Partial<FaultRecord>> {
  const t0 = Date.now();
  const old = await ctx.env.group.killPrimary();
  const port = await ctx.env.group.waitForNewPrimary(old, 30_000);
  const promotedMs = Date.now() - t0;
  await sleep(2000);
  await ctx.env.group.restart(old);
  return { ok: true, recoveryMs: promotedMs, detail: `primary :${old} killed, :${port} promoted after ${s(promotedMs)}; :${old} back as its replica, in sync, after ${s(Date.now() - t0)}` };
}

async function stopReplica(ctx: FaultContext, f: PlannedFault): Promise<Partial<FaultRecord>> {
  const r = replicaFor(ctx, f.target!);
  if (!r) return { ok: false, detail: 'no running replica to stop' };
  const pid = r.pid;
  ctx.stopped.add(r.id);
  try {
    process.kill(pid, 'SIGSTOP');
    const down = await within(10_000, async () => (await ctx.env.cluster.haproxy.servers()).some((x) => x.backend === 'ftp_control' && x.server === r.id && x.status === 'DOWN'));
    ctx.log(`          ${r.id} pid ${pid} stopped; HAProxy ${down ? 'marked it DOWN' : 'did NOT mark it DOWN within 10 s'}`);
    await sleep(f.holdMs!);
    process.kill(pid, 'SIGCONT');
  } finally {
    ctx.stopped.delete(r.id);
  }
  const t0 = Date.now();
  const back = await within(30_000, async () => r.running && (await replicaHealthy(ctx.env, r)).ok);
  if (!back) {
    const state = r.running ? (await replicaHealthy(ctx.env, r)).detail : 'it exited';
    return { ok: false, detail: `${r.id} pid ${pid} stopped ${s(f.holdMs!)}, continued; NOT healthy 30 s later (${state})` };
  }
  return { ok: true, recoveryMs: f.holdMs! + (Date.now() - t0), detail: `${r.id} pid ${pid} stopped ${s(f.holdMs!)}, continued, healthy again ${s(Date.now() - t0)} later (same pid: ${r.pid === pid})` };
}

async function fillDisk(ctx: FaultContext, f: PlannedFault): Promise<Partial<FaultRecord>> {
  const disk = ctx.env.disk;
  if (disk.cannotFill) return { ok: true, skipped: true, detail: `skipped: ${disk.cannotFill}` };
  const before = disk.usage();
  const bytes = disk.fill();
  await sleep(f.holdMs!);
  disk.free();
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  return { ok: true, recoveryMs: f.holdMs, detail: `${mib(before.usedBytes)} of ${mib(before.totalBytes)} used; filled with ${mib(bytes)} for ${s(f.holdMs!)}, then freed` };
}

export async function runFault(ctx: FaultContext, f: PlannedFault): Promise<FaultRecord> {
  const what = describeFault(f, faultNames(ctx.env));
  const startedAt = ctx.now();
  ctx.log(`  +${s(startedAt).padStart(7)}  #${f.n} ${what}${startedAt - f.at > 1000 ? ` (planned +${s(f.at)})` : ''}`);
  let result: Partial<FaultRecord>;
  try {
    switch (f.kind) {
      case 'kill-replica':
        result = await killReplica(ctx, f, 'SIGKILL');
        break;
      case 'term-replica':
        result = await killReplica(ctx, f, 'SIGTERM');
        break;
      case 'kill-worker':
        result = await killWorker(ctx, f);
        break;
      case 'redis-failover':
        result = await failover(ctx);
        break;
      case 'stop-replica':
        result = await stopReplica(ctx, f);
        break;
      case 'disk-full':
        result = await fillDisk(ctx, f);
        break;
    }
  } catch (err) {
    result = { ok: false, detail: `failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const record: FaultRecord = {
    planned: f,
    what,
    startedAt,
    endedAt: ctx.now(),
    ok: result.ok ?? false,
    detail: result.detail ?? '',
    recoveryMs: result.recoveryMs,
    signalledAt: result.signalledAt,
    skipped: result.skipped,
  };
  ctx.log(`  +${s(record.endedAt).padStart(7)}  #${f.n} ${record.ok ? 'done' : 'FAILED'}: ${record.detail}`);
  return record;
}

/** Runs the schedule; resolves when every fault is over. `shouldStop` ends it early (the load ended). */
export async function runSchedule(ctx: FaultContext, faults: PlannedFault[], shouldStop: () => boolean): Promise<FaultRecord[]> {
  const records: FaultRecord[] = [];
  const background: Promise<void>[] = [];
  for (const f of faults) {
    while (f.at > ctx.now() && !shouldStop()) await sleep(Math.min(500, f.at - ctx.now()));
    if (shouldStop()) {
      ctx.log(`  #${f.n} not run: the load is over`);
      break;
    }
    const run = runFault(ctx, f).then((r) => void records.push(r));
    if (f.kind === 'stop-replica' || f.kind === 'disk-full') background.push(run);
    else await run;
  }
  await Promise.all(background);
  return records.sort((a, b) => a.planned.n - b.planned.n);
}
