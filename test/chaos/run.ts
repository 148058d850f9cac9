import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { UPLOAD_QUEUE } from '@ftp/upload-events';
import { ROOT, startProcess, stopProcess, type Proc } from '../support/processes';
import { startEnvironment, type ChaosEnv } from './environment';
import { replicaHealthy, runSchedule, type FaultRecord } from './faults';
import { readLedger, type Ledger } from './ledgerFiles';
import { startMonitor, startSessionSampler, type SessionSample } from './monitor';
import { failoverFigures, faultImpact, limitRefusals, memoryLines, resumeLines, sessionLimitLines, verdictTable, type Check } from './report';
import { resumable, resumeSample } from './resume';
import { describeFault, planFaults, FAULT_KINDS, type FaultKind } from './schedule';
import { USERS } from './users';
import { verify, type FailedJob, type Verdict } from './verify';

/**
 * One chaos run: start everything, drive partner traffic with the load generator (ledger on), run the seeded fault
 * schedule meanwhile, then check from the outside and from the storage, and print the verdict. Bounded in time at
 * every step; everything it started is stopped and its folders (and tmpfs) removed, whatever happens.
 */

export interface ChaosOptions {
  durationS: number;
  seed: number;
  kinds?: FaultKind[];
  /** Gap between periodic faults, ms. Default 6–10 s. */
  every?: { min: number; max: number };
  /** SIGSTOP length. Default 65 s (past the 60 s session TTL). */
  stopMs?: number;
  diskFullMs?: number;
  /** Failed uploads to resume with curl afterwards. Default 5. */
  resumeSample?: number;
  /** How long to wait for the last webhooks after the load. Default 60 s. */
  deliveryWaitMs?: number;
  /** Where to keep the evidence (ledger, webhook deliveries, edge and worker logs, generator output); default none. */
  evidenceDir?: string;
  log?: (line: string) => void;
}

export interface ChaosResult {
  ok: boolean;
  verdict?: Verdict;
  checks: Check[];
  faults: FaultRecord[];
  seconds: number;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The load generator as a child process; its summary lines are kept. */
function startLoad(env: ChaosEnv, durationS: number, ledgerFile: string): { proc: Proc; stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const args = ['--import', 'tsx', 'test/load/src/cli.ts', 'test/chaos/scenario.ts', '-d', `${durationS}s`, '-q', '--workers', '2', '--ledger', ledgerFile];
  const proc = startProcess('load generator', process.execPath, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
      FTP_HOST: env.cluster.host,
      FTP_PORT: String(env.cluster.port),
      SFTP_PORT: String(env.cluster.sftpPort),
      CHAOS_PASSWORD: env.password,
    },
    onStdout: (line) => stdout.push(line),
    onStderr: (line) => stderr.push(line),
  });
  return { proc, stdout, stderr };
}

/** The ERRORS block and the GENERATOR line of the generator's summary. */
function generatorLines(stdout: string[]): string[] {
  const out: string[] = [];
  let inErrors = false;
  for (let i = 0; i < stdout.length; i++) {
    const line = stdout[i];
    if (line.trim() === 'ERRORS') inErrors = true;
    else if (inErrors && !line.trim()) inErrors = false;
    else if (inErrors) out.push(`  ${line.trim()}`);
    if (line.trim() === 'GENERATOR') out.push(`  ${stdout[i + 1]?.trim() ?? ''}`);
  }
  return out;
}

async function waitForDeliveries(env: ChaosEnv, ledger: Ledger, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const wanted = [...ledger.files.values()].filter((f) => f.acknowledged).map((f) => f.key);
  const missing = () => {
    const done = new Set(env.receiver.deliveries.filter((d) => d.status >= 200 && d.status < 300).map((d) => `${(d.body.data as { user: string }).user}${(d.body.data as { path: string }).path}`));
    return wanted.filter((k) => !done.has(k));
  };
  const deadline = Date.now() + timeoutMs;
  let lastLog = Date.now();
  for (;;) {
    const left = missing();
    if (!left.length) break;
    if (Date.now() > deadline) {
      log(`  ${left.length} acknowledged upload(s) still without a successful webhook after ${sec(timeoutMs)}`);
      break;
    }
    if (Date.now() - lastLog > 5000) {
      log(`  waiting for ${left.length} webhook(s)…`);
      lastLog = Date.now();
    }
    await sleep(250);
  }
  await sleep(3000); // a duplicate would come now
}

/**
 * Writes what a bug report needs: the ledger, every webhook delivery, every edge's and worker's log lines, the
 * generator's output, the samples of live sessions per user.
 */
function keepEvidence(dir: string, env: ChaosEnv, ledgerFile: string, load: { stdout: string[]; stderr: string[] } | undefined, sessions: SessionSample[] | undefined): void {
  mkdirSync(dir, { recursive: true });
  const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  if (existsSync(ledgerFile)) copyFileSync(ledgerFile, join(dir, 'ledger.jsonl'));
  writeFileSync(join(dir, 'deliveries.jsonl'), jsonl(env.receiver.deliveries.map((d) => ({ id: d.id, status: d.status, body: d.body }))));
  for (const r of env.cluster.replicas) writeFileSync(join(dir, `${r.id}.log`), jsonl([...r.logs, ...r.stderr.map((line) => ({ stderr: line }))]));
  env.allWorkers.forEach((w, i) => writeFileSync(join(dir, `${w.name}.${i + 1}-pid${w.proc.pid}.log`), jsonl(w.proc.logs)));
  if (load) writeFileSync(join(dir, 'generator.txt'), [...load.stderr, ...load.stdout].join('\n') + '\n');
  if (sessions) writeFileSync(join(dir, 'sessions.jsonl'), jsonl(sessions));
}

async function waitForOutbox(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.json'))) await sleep(250);
}

/** Jobs in the failed set (processing gave up on them). */
async function failedJobs(env: ChaosEnv): Promise<FailedJob[]> {
  // A connection of its own, closed here: BullMQ leaves a connection it was given open.
  const connection = env.redis.duplicate();
  connection.on('error', () => {});
  const queue = new Queue(UPLOAD_QUEUE, { connection, prefix: env.queuePrefix });
  try {
    const jobs = await queue.getFailed(0, 1000);
    return jobs.map((j) => {
      const data = j.data as { user: string; path: string; size: number; sha256?: string };
      return { id: String(j.id), user: data.user, path: data.path, size: data.size, sha256: data.sha256, reason: `${j.failedReason} (attempts ${j.attemptsMade})` };
    });
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const started = Date.now();
  /** A phase line, with the time since the run started. */
  const phase = (line: string) => log(`[${sec(Date.now() - started)}] ${line}`);
  const durationMs = o.durationS * 1000;
  const kinds = o.kinds ?? FAULT_KINDS;
  const schedule = planFaults({
    durationMs,
    seed: o.seed,
    kinds,
    replicas: 3,
    workers: 2,
    every: o.every ?? { min: 6000, max: 10_000 },
    stopMs: o.stopMs ?? 65_000,
    diskFullMs: o.diskFullMs ?? 5000,
    warmupMs: Math.min(5000, durationMs * 0.1),
    quietMs: Math.min(8000, durationMs * 0.15),
  });
  log(`chaos run: ${o.durationS} s of load, seed ${o.seed}, faults: ${kinds.join(', ') || 'none (a baseline)'}`);
  log('control plane: the users file (FTP_USERS_FILE), not PostgreSQL: no PostgreSQL restart in this run');
  for (const reason of schedule.skipped) log(`skipped: ${reason}`);
  const names = { replica: (i: number) => `edge-${i + 1}`, worker: (i: number) => `worker-${i + 1}` };
  log('fault schedule (offsets from the start of the load):');
  for (const f of schedule.faults) log(`  +${sec(f.at).padStart(7)}  #${f.n} ${describeFault(f, names)}`);

  const checks: Check[] = [];
  const records: FaultRecord[] = [];
  let verdict: Verdict | undefined;
  // Bytes the run may write (nothing is deleted): ~5.5 MiB/s of uploads and sidecars on this machine, so 12 MiB per
  // second of load leaves the disk full only when the fault fills it (a tmpfs takes memory only for what is written).
  const diskBytes = Math.min(12 * 2 ** 30, Math.max(1024 * 2 ** 20, o.durationS * 12 * 2 ** 20));
  const env = await startEnvironment({ workers: 2, diskBytes, log: phase });
  let load: ReturnType<typeof startLoad> | undefined;
  let monitor: ReturnType<typeof startMonitor> | undefined;
  let sessions: ReturnType<typeof startSessionSampler> | undefined;
  try {
    const ledgerFile = join(env.disk.root, 'ledger.jsonl');
    load = startLoad(env, o.durationS, ledgerFile);
    // The load's clock: its first ledger line (VU threads up, first logins done).
    const waitStart = Date.now();
    while (!(existsSync(ledgerFile) && statSync(ledgerFile).size > 0) && !load.proc.exit && Date.now() - waitStart < 60_000) await sleep(50);
    if (load.proc.exit || !existsSync(ledgerFile)) throw new Error(`the load generator did not start: ${load.proc.tail.join(' | ')}`);
    const t0 = Date.now();
    const now = () => Date.now() - t0;
    phase(`load running (pid ${load.proc.child.pid}); faults:`);
    monitor = startMonitor(() => env.cluster.replicas.map((r) => ({ replica: r.id, pid: r.running ? r.pid : 0 })), now, 2000);
    sessions = startSessionSampler(env.redis, env.cluster.redisPrefix, Object.values(USERS), now, 2000);
    const ctx = { env, now, log, stopped: new Set<string>() };
    records.push(...(await runSchedule(ctx, schedule.faults, () => Boolean(load!.proc.exit))));
    const loadDone = await Promise.race([load.proc.exited, sleep(durationMs + 60_000 - now(), undefined, { ref: false }).then(() => undefined)]);
    if (!loadDone) {
      log('the load generator did not finish in time: stopping it');
      await stopProcess(load.proc, 'SIGTERM', 15_000);
    }
    const loadMs = Math.min(now(), durationMs);
    monitor.stop();
    sessions.stop();
    const exit = (load.proc as Proc).exit; // set meanwhile (TypeScript narrowed it to undefined above)
    phase(`load over after ${sec(now())} (exit ${exit?.code ?? exit?.signal}); generator:`);
    for (const line of generatorLines(load.stdout)) log(line);

    // Every replica healthy again (some were killed or stopped).
    const health = await Promise.all(
      env.cluster.replicas.map(async (r) => {
        const deadline = Date.now() + 30_000;
        let last = await replicaHealthy(env, r);
        while (!last.ok && Date.now() < deadline) {
          await sleep(250);
          last = await replicaHealthy(env, r);
        }
        return `${r.id} ${r.running ? `pid ${r.pid}` : 'NOT running'}: ${last.detail}`;
      }),
    );
    const faultsOk = records.every((r) => r.ok);
    checks.push({ name: 'every fault ran and every killed or stopped replica came back healthy', ok: faultsOk && health.every((h) => h.includes('/readyz 200, HAProxy UP')), detail: [...health, ...records.filter((r) => !r.ok).map((r) => `#${r.planned.n} ${r.detail}`)].join('; ') });

    const ledger = readLedger(ledgerFile);
    const users = Object.values(USERS);
    const candidates = resumable(ledger, env.disk.dir, users).length;
    phase(`resuming up to ${o.resumeSample ?? 5} of ${candidates} failed uploads that left a resumable partial (curl -C - through HAProxy):`);
    const resumed = await resumeSample(ledger, { host: env.cluster.host, port: env.cluster.port, password: env.password, dataDir: env.disk.dir, users, workDir: env.disk.root }, o.resumeSample ?? 5, o.seed);
    const resumeReport = resumeLines(resumed, candidates);
    for (const line of resumeReport.lines) log(line);
    checks.push(resumeReport.check);

    phase('waiting for the workers to process every acknowledged upload…');
    await waitForDeliveries(env, ledger, o.deliveryWaitMs ?? 60_000, log);
    await waitForOutbox(join(env.disk.dir, '..', 'outbox'), 15_000);
    const workerKillsAt = records.filter((r) => r.planned.kind === 'kill-worker').map((r) => t0 + (r.signalledAt ?? r.startedAt));
    let failed: FailedJob[] = [];
    try {
      failed = await failedJobs(env);
    } catch (err) {
      log(`could not read the failed set: ${(err as Error).message}`);
    }
    const lockLostJobs = new Set<string>();
    const webhookTimeoutJobs = new Set<string>();
    for (const w of env.allWorkers) {
      for (const line of w.proc.logs) {
        const lost = /(?:could not renew lock|Missing lock|Lock mismatch) for job ([\w-]+)/.exec(String(line.err ?? ''));
        if (lost) lockLostJobs.add(lost[1]);
        if (String(line.msg).startsWith('lost the job lock') && line.job) lockLostJobs.add(String(line.job));
        if (line.step === 'webhook' && String(line.reason ?? '').startsWith('timed out') && line.job) webhookTimeoutJobs.add(String(line.job));
      }
    }
    verdict = verify({ ledger, deliveries: env.receiver.deliveries, dataDir: env.disk.dir, users, outboxDir: join(env.disk.dir, '..', 'outbox'), workerKillsAt, failedJobs: failed, lockLostJobs, webhookTimeoutJobs });

    log('');
    log(`fault schedule, seed ${o.seed} (npm run chaos -- --duration ${o.durationS} --seed ${o.seed}):`);
    for (const r of records) log(`  +${sec(r.startedAt).padStart(7)}…+${sec(r.endedAt).padStart(7)}  #${r.planned.n} ${r.what}: ${r.ok ? '' : 'FAILED: '}${r.detail}`);
    log('');
    log('traffic during and outside faults (the 10 s after each fault starts, or while it holds):');
    for (const line of faultImpact(ledger, t0, loadMs, records)) log(line);
    const failovers = failoverFigures(ledger, t0, records);
    if (failovers.length) {
      log('Redis failovers:');
      for (const line of failovers) log(line);
    }
    log('');
    log('replica memory and file descriptors (sampled every 2 s from /proc):');
    const memory = memoryLines(monitor.series);
    for (const line of memory.lines) log(line);
    checks.push(memory.check);
    log('');
    log('live sessions per user in the cluster state (sampled every 2 s from Redis; logins refused from the edges\' logs):');
    const limited = sessionLimitLines(sessions.samples, sessions.missed, env.sessionLimits, limitRefusals(env.cluster.replicas.flatMap((r) => r.logs)));
    for (const line of limited.lines) log(line);
    checks.push(limited.check);

    checks.push(
      { name: 'no acknowledged upload lost', ok: verdict.uploads.lost === 0, detail: `${verdict.uploads.lost} of ${verdict.uploads.acknowledged}` },
      { name: 'no effect duplicated', ok: verdict.uploads.duplicated === 0, detail: `${verdict.uploads.duplicated} uploads with a duplicated effect` },
      {
        name: 'no partial or unknown content under a final name',
        ok: verdict.storage.wrongContent + verdict.storage.unknown + verdict.storage.orphanSidecars + verdict.publishedPartial === 0,
        detail: `at the end: ${verdict.storage.wrongContent} wrong, ${verdict.storage.unknown} unknown, ${verdict.storage.orphanSidecars} orphan sidecars; during the run: ${verdict.publishedPartial} partials published as complete uploads`,
      },
      {
        name: 'every failed upload absent or a resumable partial',
        ok: verdict.storage.corruptPartials + verdict.uploads.wrongUnderName === 0,
        detail: `${verdict.uploads.absent} absent, ${verdict.uploads.resumablePartial} resumable, ${verdict.uploads.completedWithoutAck} complete without their 226, ${verdict.uploads.wrongUnderName} with a part of it under the final name, ${verdict.storage.corruptPartials} corrupt partials`,
      },
      { name: "no client received another client's bytes", ok: verdict.downloads.foreign === 0, detail: `${verdict.downloads.foreign} downloads with another upload's bytes` },
      {
        name: 'every completed download byte-exact',
        ok: verdict.downloads.truncated + verdict.downloads.wrong === 0,
        detail: `${verdict.downloads.verified} byte-exact, ${verdict.downloads.truncated} truncated, ${verdict.downloads.wrong} other bytes, ${verdict.downloads.failed} failed (not counted)`,
      },
      { name: 'upload events all queued (outbox empty)', ok: verdict.outboxLeft === 0, detail: `${verdict.outboxLeft} left` },
      { name: 'the load ran', ok: verdict.uploads.acknowledged > 0 && ledger.bad === 0, detail: `${verdict.uploads.acknowledged} acknowledged uploads, ${ledger.bad} unreadable ledger lines` },
    );
    log('');
    log('problems (by kind, at most 10 lines of each):');
    const kinds = new Map<string, string[]>();
    for (const p of verdict.problems) {
      const kind = /^[A-Z][A-Z ]+(?= )/.exec(p)?.[0] ?? 'OTHER';
      kinds.set(kind, [...(kinds.get(kind) ?? []), p]);
    }
    for (const [kind, list] of kinds) {
      log(`  ${kind}: ${list.length}`);
      for (const p of list.slice(0, 10)) log(`    ${p}`);
      if (list.length > 10) log(`    … and ${list.length - 10} more`);
    }
    if (!verdict.problems.length) log('  none');
    if (failed.length) {
      log(`jobs in the failed set (${failed.length}):`);
      for (const f of failed.slice(0, 20)) log(`  ${f.id} ${f.user}${f.path} (${f.size} bytes): ${f.reason}`);
    }
  } catch (err) {
    checks.push({ name: 'the run completed', ok: false, detail: (err as Error).stack ?? String(err) });
  } finally {
    monitor?.stop();
    sessions?.stop();
    if (load && !load.proc.exit) await stopProcess(load.proc, 'SIGKILL', 0);
    if (o.evidenceDir) {
      try {
        keepEvidence(o.evidenceDir, env, join(env.disk.root, 'ledger.jsonl'), load, sessions?.samples);
        log(`evidence kept in ${o.evidenceDir}`);
      } catch (err) {
        log(`could not keep the evidence: ${(err as Error).message}`);
      }
    }
    phase('stopping everything');
    await env.close();
  }

  log('');
  log(`checks (${checks.filter((c) => c.ok).length} of ${checks.length} passed):`);
  for (const c of checks) log(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`);
  log('');
  log('verdict:');
  if (verdict) for (const line of verdictTable(verdict)) log(line);
  const seconds = (Date.now() - started) / 1000;
  const ok = checks.every((c) => c.ok) && verdict !== undefined;
  log(`${ok ? 'PASS' : 'FAIL'} (whole run ${seconds.toFixed(0)} s)`);
  return { ok, verdict, checks, faults: records, seconds };
}
