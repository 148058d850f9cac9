import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { byteMeter, type ByteMeter } from './clients/session';
import { openLedger } from './ledger';
import type { FromWorker, ToWorker, WorkerData } from './messages';
import { runIteration } from './partner';
import { batchIsEmpty, newBatch, record, resetBatch, type Batch } from './stats';

/**
 * A VU thread: runs the iterations the main thread hands it, many VUs at once on one event loop, and posts their
 * samples in batches. It decides nothing about timing; the main thread's executors do.
 */

const data = workerData as WorkerData;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const ledger = data.ledger ? openLedger(data.ledger) : undefined;

interface Vu {
  state: { dirReady: boolean };
  running?: AbortController;
}
const vus = new Map<number, Vu>();

/** Per scenario: the batch being filled and the byte meter of its sockets. */
const sinks = new Map<string, { batch: Batch; meter: ByteMeter }>();
function sinkOf(scenario: string) {
  let s = sinks.get(scenario);
  if (!s) sinks.set(scenario, (s = { batch: newBatch(scenario, data.scenarios[scenario].partner.protocol), meter: byteMeter() }));
  return s;
}

function flush() {
  const batches: Batch[] = [];
  for (const s of sinks.values()) {
    const bytes = s.meter.take();
    if (bytes.sent) record.add(s.batch, 'data_sent', bytes.sent);
    if (bytes.received) record.add(s.batch, 'data_received', bytes.received);
    if (!batchIsEmpty(s.batch)) batches.push(s.batch);
  }
  if (!batches.length) return;
  post({ type: 'samples', batches }); // copies them: they are emptied in place for the VUs that hold them
  for (const b of batches) resetBatch(b);
}
const flusher = setInterval(flush, data.flushEvery);

async function iterate(vuId: number, scenario: string, iteration: number) {
  let vu = vus.get(vuId);
  if (!vu) vus.set(vuId, (vu = { state: { dirReady: false } }));
  const controller = new AbortController();
  vu.running = controller;
  const s = data.scenarios[scenario];
  const sink = sinkOf(scenario);
  let result: 'ok' | 'failed' | 'interrupted';
  try {
    result = await runIteration({
      vu: vuId,
      iteration,
      runId: data.runId,
      partner: s.partner,
      host: data.host,
      port: s.port,
      login: s.login,
      timeouts: data.timeouts,
      meter: sink.meter,
      signal: controller.signal,
      batch: sink.batch,
      state: vu.state,
      ledger,
    });
  } catch (err) {
    // runIteration records its own failures; anything else is a bug worth seeing, not a silent VU.
    record.error(sink.batch, `generator: ${(err as Error).message}`);
    result = 'failed';
  }
  vu.running = undefined;
  post({ type: 'done', vu: vuId, result });
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'iterate':
      void iterate(m.vu, m.scenario, m.iteration);
      break;
    case 'abort':
      for (const [id, vu] of vus) if (!m.vus || m.vus.includes(id)) vu.running?.abort();
      break;
    case 'finish':
      clearInterval(flusher);
      flush();
      ledger?.close();
      post({ type: 'finished', elu: performance.eventLoopUtilization(eluAtReady).utilization });
      port.close();
      break;
  }
});

// Loaded (modules compiled, random block made): the run's clock and CPU count start now, not during start-up.
const eluAtReady = performance.eventLoopUtilization();
post({ type: 'ready' });

process.on('uncaughtException', (err) => post({ type: 'fatal', message: err.stack ?? String(err) }));
process.on('unhandledRejection', (err) => post({ type: 'fatal', message: (err as Error)?.stack ?? String(err) }));
