import type { Login, Timeouts } from './clients/session';
import type { PartnerPlan } from './scenario';
import type { Batch } from './stats';

/** What the main thread and the VU threads say to each other (structured-clone data only). */

export interface WorkerData {
  runId: string;
  host: string;
  timeouts: Timeouts;
  /** Per scenario: its partner script, port and resolved login. */
  scenarios: Record<string, { partner: PartnerPlan; port: number; login: Login }>;
  /** How often samples are posted, ms. */
  flushEvery: number;
  /** `--ledger FILE`: where every VU appends its logins, upload outcomes and downloads (src/ledger.ts). */
  ledger?: string;
}

export type ToWorker =
  | { type: 'iterate'; vu: number; scenario: string; iteration: number }
  /** Cut these VUs' running iterations (all of them without `vus`). */
  | { type: 'abort'; vus?: number[] }
  /** Post the last samples, then `finished`. */
  | { type: 'finish' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'done'; vu: number; result: 'ok' | 'failed' | 'interrupted' }
  | { type: 'samples'; batches: Batch[] }
  /** Event-loop utilization of the thread over its life, 0-1. */
  | { type: 'finished'; elu: number }
  | { type: 'fatal'; message: string };
