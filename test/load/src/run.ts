import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { arrivalsBy, initialVUs, targetVUs } from './executors';
import type { FromWorker, ToWorker, WorkerData } from './messages';
import { scenarioEnd, type ScenarioPlan } from './scenario';
import { addBatch, aggregate, batchIsEmpty, newBatch, newStats, record, resetBatch, setGauge, type Batch, type Stats } from './stats';
import { evaluate, type Threshold } from './thresholds';

/**
 * The main thread of a test run: k6's executors decide when each VU starts an iteration, VU threads run them, and
 * their samples land in one Stats. Every scenario stops starting iterations at its end, cuts the running ones after
 * its gracefulStop, and the run itself is bounded by the last scenario's end plus its gracefulStop.
 */

export interface RunOptions {
  scenarios: ScenarioPlan[];
  workerData: Omit<WorkerData, 'flushEvery'>;
  retryDelay: number;
  /** Thresholds with abortOnFail are checked every second. */
  thresholds: Threshold[];
  workers: number;
  /** Every batch of samples, as it arrives (the OTLP output). */
  onSamples?: (b: Batch) => void;
}

export interface Progress {
  elapsed: number;
  vus: number;
  vusMax: number;
  complete: number;
  interrupted: number;
  scenarios: { name: string; elapsed: number; length: number; vus: number; over: boolean }[];
}

export interface RunResult {
  stats: Stats;
  durationMs: number;
  /** CPU time of the whole generator process (every thread), microseconds. */
  cpu: NodeJS.CpuUsage;
  /** Event-loop utilization of each VU thread, 0-1. */
  elu: number[];
  complete: number;
  interrupted: number;
  /** Why the run stopped early (a threshold with abortOnFail, a signal). */
  stoppedBy?: string;
}

export interface RunHandle {
  done: Promise<RunResult>;
  progress(): Progress;
  /** Stop starting iterations; running ones get their scenario's gracefulStop (a first Ctrl-C). */
  stop(reason: string): void;
  /** Cut running iterations now (a second Ctrl-C). */
  hardStop(reason: string): void;
}

interface Vu {
  id: number;
  scenario: ScenarioState;
  /** Index within its scenario: ramping-vus runs those below the target. */
  index: number;
  worker: Worker;
  busy: boolean;
  iteration: number;
  notBefore: number;
}

interface ScenarioState {
  plan: ScenarioPlan;
  vus: Vu[];
  /** Arrival-rate iterations started or dropped so far. */
  arrivals: number;
  /** Where the search for a free arrival-rate VU starts. */
  cursor: number;
  stopAt: number;
  hardAt: number;
  cut: boolean;
  batch: Batch;
}

const TICK_MS = 20;
const FLUSH_MS = 250;
/** How long VU threads get to post their last samples. */
const FINISH_GRACE_MS = 3000;
const READY_TIMEOUT_MS = 30_000;

export function startRun(o: RunOptions): RunHandle {
  const stats = newStats();
  const total = o.scenarios.reduce((n, s) => n + initialVUs(s), 0);
  const threads = Array.from({ length: Math.max(1, Math.min(o.workers, total)) }, () => {
    const data: WorkerData = { ...o.workerData, flushEvery: FLUSH_MS };
    return new Worker(new URL('./workerBoot.mjs', import.meta.url), { workerData: data });
  });
  const vusById = new Map<number, Vu>();
  let nextId = 1;
  const allocate = (state: ScenarioState) => {
    const vu: Vu = { id: nextId, scenario: state, index: state.vus.length, worker: threads[(nextId - 1) % threads.length], busy: false, iteration: 0, notBefore: 0 };
    nextId++;
    state.vus.push(vu);
    vusById.set(vu.id, vu);
    return vu;
  };
  const states = o.scenarios.map((plan) => {
    const end = scenarioEnd(plan);
    const state: ScenarioState = { plan, vus: [], arrivals: 0, cursor: 0, stopAt: end, hardAt: end + plan.gracefulStop, cut: false, batch: newBatch(plan.name, o.workerData.scenarios[plan.name].partner.protocol) };
    for (let i = 0; i < initialVUs(plan); i++) allocate(state);
    return state;
  });
  // The clock starts once every VU thread is ready.
  let started = Infinity;
  let cpuAtStart = process.cpuUsage();
  const now = () => Math.max(0, performance.now() - started);
  let complete = 0;
  let interrupted = 0;
  let stoppedBy: string | undefined;

  const send = (vu: Vu, m: ToWorker) => vu.worker.postMessage(m);
  const dispatch = (s: ScenarioState, vu: Vu) => {
    vu.busy = true;
    send(vu, { type: 'iterate', vu: vu.id, scenario: s.plan.name, iteration: vu.iteration++ });
  };
  /** A looping VU starts its next iteration when its executor wants it and its retry pause is over. */
  const consider = (s: ScenarioState, vu: Vu, t: number) => {
    if (vu.busy || t >= s.stopAt || t < s.plan.startTime || vu.notBefore > t) return;
    if (vu.index < targetVUs(s.plan, t - s.plan.startTime)) dispatch(s, vu);
  };
  const arrive = (s: ScenarioState, t: number) => {
    if (s.plan.executor !== 'constant-arrival-rate' || t >= s.stopAt) return;
    const due = arrivalsBy(s.plan, t - s.plan.startTime);
    for (; s.arrivals < due; s.arrivals++) {
      // The next free VU after the last one started, so that the VU threads share the arrivals.
      let vu: Vu | undefined;
      for (let i = 0; i < s.vus.length && !vu; i++) {
        const candidate = s.vus[(s.cursor + i) % s.vus.length];
        if (!candidate.busy) vu = candidate;
      }
      if (!vu && s.vus.length < s.plan.maxVUs) vu = allocate(s);
      if (vu) {
        s.cursor = vu.index + 1;
        dispatch(s, vu);
      } else record.add(s.batch, 'dropped_iterations');
    }
  };

  const onMessage = (m: FromWorker) => {
    switch (m.type) {
      case 'samples':
        for (const b of m.batches) {
          addBatch(stats, b);
          o.onSamples?.(b);
        }
        break;
      case 'done': {
        const vu = vusById.get(m.vu)!;
        const s = vu.scenario;
        vu.busy = false;
        if (m.result === 'interrupted') interrupted++;
        else complete++;
        const t = now();
        if (m.result === 'failed') vu.notBefore = t + o.retryDelay;
        if (s.plan.executor !== 'constant-arrival-rate') consider(s, vu, t);
        break;
      }
      case 'fatal': {
        // A bug in a VU thread: shown with the errors, the run goes on.
        const reason = `generator: ${m.message.split('\n')[0]}`;
        stats.errors.set(reason, (stats.errors.get(reason) ?? 0) + 1);
        break;
      }
      case 'ready':
        if (++ready === threads.length) {
          started = performance.now();
          cpuAtStart = process.cpuUsage();
          ticker = setInterval(tick, TICK_MS);
          clearTimeout(readyTimer);
        }
        break;
      case 'finished':
        break;
    }
  };

  let finishRun!: (r: RunResult) => void;
  let failRun!: (e: Error) => void;
  const done = new Promise<RunResult>((resolve, reject) => [finishRun, failRun] = [resolve, reject]);
  for (const w of threads) {
    w.on('message', onMessage);
    w.on('error', (err) => failRun(new Error(`VU thread failed: ${err.message}`)));
  }

  const flushMainBatches = () => {
    for (const s of states) {
      if (batchIsEmpty(s.batch)) continue;
      addBatch(stats, s.batch);
      o.onSamples?.(s.batch);
      resetBatch(s.batch);
    }
  };
  const busyCount = () => states.reduce((n, s) => n + s.vus.filter((v) => v.busy).length, 0);
  let lastGauge = -Infinity;
  let lastAbortCheck = 0;

  const stop = (reason: string) => {
    stoppedBy ??= reason;
    const t = now();
    for (const s of states) {
      s.stopAt = Math.min(s.stopAt, t);
      s.hardAt = Math.min(s.hardAt, t + s.plan.gracefulStop);
    }
  };
  const hardStop = (reason: string) => {
    stop(reason);
    for (const s of states) s.hardAt = now();
  };

  let finishing = false;
  const tick = () => {
    const t = now();
    for (const s of states) {
      if (t >= s.hardAt && !s.cut) {
        s.cut = true;
        const running = s.vus.filter((v) => v.busy);
        for (const w of threads) w.postMessage({ type: 'abort', vus: running.map((v) => v.id) } satisfies ToWorker);
      }
      if (s.plan.executor === 'constant-arrival-rate') arrive(s, t);
      else for (const vu of s.vus) consider(s, vu, t);
    }
    if (t - lastGauge >= 1000) {
      lastGauge = t;
      setGauge(stats, 'vus', busyCount());
      setGauge(stats, 'vus_max', vusById.size);
    }
    if (t - lastAbortCheck >= 1000) {
      lastAbortCheck = t;
      const armed = o.thresholds.filter((th) => th.abortOnFail && t >= th.delayAbortEval);
      const failed = evaluate(armed, (m, method, p) => aggregate(stats, m, method, t / 1000, p)).find((r) => !r.ok);
      if (failed) stop(`threshold ${failed.threshold.metric} '${failed.threshold.source}' crossed (abortOnFail)`);
    }
    flushMainBatches();
    const over = states.every((s) => t >= s.stopAt) && busyCount() === 0;
    const lastHard = Math.max(...states.map((s) => s.hardAt));
    if ((over || t >= lastHard + FINISH_GRACE_MS) && !finishing) {
      finishing = true;
      void finish();
    }
  };
  let ready = 0;
  let ticker: NodeJS.Timeout | undefined;
  const readyTimer = setTimeout(() => failRun(new Error(`VU threads not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);

  async function finish() {
    clearInterval(ticker);
    const durationMs = now();
    setGauge(stats, 'vus', busyCount());
    setGauge(stats, 'vus_max', vusById.size);
    const elu = await Promise.all(
      threads.map(
        (w) =>
          new Promise<number>((resolve) => {
            const timer = setTimeout(() => resolve(NaN), FINISH_GRACE_MS);
            w.on('message', (m: FromWorker) => {
              if (m.type !== 'finished') return;
              clearTimeout(timer);
              resolve(m.elu);
            });
            w.postMessage({ type: 'finish' } satisfies ToWorker);
          }),
      ),
    );
    flushMainBatches();
    const cpu = process.cpuUsage(cpuAtStart);
    await Promise.all(threads.map((w) => w.terminate()));
    finishRun({ stats, durationMs, cpu, elu, complete, interrupted, stoppedBy });
  }

  return {
    done,
    stop,
    hardStop,
    progress: () => {
      const t = now();
      return {
        elapsed: t,
        vus: busyCount(),
        vusMax: vusById.size,
        complete,
        interrupted,
        scenarios: states.map((s) => ({
          name: s.plan.name,
          elapsed: Math.max(0, Math.min(t, s.stopAt) - s.plan.startTime),
          length: scenarioEnd(s.plan) - s.plan.startTime,
          vus: s.vus.filter((v) => v.busy).length,
          over: t >= s.stopAt,
        })),
      };
    },
  };
}
