import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Match } from './rules';

/** One step as written in the pipelines file: its kind and its options (snake_case keys, as in YAML). */
export interface StepSpec {
  kind: 'checksum' | 'scan' | 'move' | 'copy' | 'webhook';
  options: Record<string, unknown>;
}

export interface PipelineSpec {
  name: string;
  match: Match;
  steps: StepSpec[];
}

export interface WorkerConfig {
  /** REDIS_URL: where the upload queue lives (required: without Redis there is no queue). */
  redisUrl: string;
  /** FTP_REDIS_PREFIX: the same as the edges'. */
  redisPrefix: string;
  /** FTP_DATA_DIR: the storage the edges write (a shared volume), absolute. */
  dataDir: string;
  /** WORKER_CONCURRENCY: jobs at once per process. */
  concurrency: number;
  /** WORKER_LOCK_MS: a job whose worker stopped renewing its lock this long is taken over by another (crash). */
  lockMs: number;
  /** WORKER_ADMIN_HOST / WORKER_ADMIN_PORT: /healthz, /readyz, /metrics; port 0 = off. */
  adminHost: string;
  adminPort: number;
  /** WORKER_LOG_LEVEL. */
  logLevel: string;
  /** WORKER_PIPELINES: the pipelines file; without one, every upload gets a sha256 sidecar. */
  pipelinesFile: string;
  clamd?: { host: string; port: number };
  pipelines: PipelineSpec[];
}

export class WorkerConfigError extends Error {
  override name = 'WorkerConfigError';
}

const STEP_KINDS = ['checksum', 'scan', 'move', 'copy', 'webhook'] as const;

const DEFAULT_PIPELINES: PipelineSpec[] = [{ name: 'default', match: {}, steps: [{ kind: 'checksum', options: {} }] }];

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || value < min || value > max) throw new WorkerConfigError(`${name}: expected a whole number from ${min} to ${max}, got "${raw}"`);
  return value;
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const redisUrl = env.REDIS_URL ?? '';
  if (!redisUrl) throw new WorkerConfigError('REDIS_URL: required (the upload queue lives in Redis)');
  const pipelinesFile = env.WORKER_PIPELINES ?? './pipelines.yaml';
  const file = existsSync(pipelinesFile) ? parsePipelinesFile(pipelinesFile) : undefined;
  if (env.WORKER_PIPELINES && !file) throw new WorkerConfigError(`WORKER_PIPELINES: ${pipelinesFile} does not exist`);
  return {
    redisUrl,
    redisPrefix: env.FTP_REDIS_PREFIX ?? 'ftp:',
    dataDir: resolve(env.FTP_DATA_DIR ?? './data'),
    concurrency: integer(env, 'WORKER_CONCURRENCY', 16, 1, 1000),
    lockMs: integer(env, 'WORKER_LOCK_MS', 30_000, 1000, 3_600_000),
    adminHost: env.WORKER_ADMIN_HOST ?? '127.0.0.1',
    adminPort: integer(env, 'WORKER_ADMIN_PORT', 9091, 0, 65535),
    logLevel: env.WORKER_LOG_LEVEL ?? 'info',
    pipelinesFile,
    clamd: file?.clamd,
    pipelines: file?.pipelines ?? DEFAULT_PIPELINES,
  };
}

/** Reads and checks the pipelines file; every mistake names where it is. */
export function parsePipelinesFile(path: string): { clamd?: { host: string; port: number }; pipelines: PipelineSpec[] } {
  const fail = (where: string, message: string): never => {
    throw new WorkerConfigError(`${path}: ${where}: ${message}`);
  };
  const doc = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown> | null;
  if (!doc || typeof doc !== 'object') fail('top level', 'expected a mapping with `pipelines`');
  for (const key of Object.keys(doc!)) if (!['clamd', 'pipelines'].includes(key)) fail(key, 'unknown key');
  let clamd: { host: string; port: number } | undefined;
  if (doc!.clamd !== undefined) {
    const c = doc!.clamd as Record<string, unknown>;
    if (typeof c?.host !== 'string' || !Number.isInteger(c.port)) fail('clamd', 'expected { host, port }');
    clamd = { host: c.host as string, port: c.port as number };
  }
  const list = doc!.pipelines;
  if (!Array.isArray(list) || list.length === 0) fail('pipelines', 'expected a non-empty list');
  const pipelines = (list as Record<string, unknown>[]).map((entry, i) => {
    const where = `pipelines[${i}]`;
    if (typeof entry?.name !== 'string') fail(where, 'needs a name');
    const match = (entry.match ?? {}) as Match;
    for (const key of Object.keys(match)) {
      if (!['users', 'groups', 'paths'].includes(key)) fail(`${where}.match.${key}`, 'unknown key (users, groups, paths)');
      const values = match[key as keyof Match];
      if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) fail(`${where}.match.${key}`, 'expected a list of strings');
    }
    if (!Array.isArray(entry.steps) || entry.steps.length === 0) fail(`${where}.steps`, 'expected a non-empty list');
    const steps = (entry.steps as unknown[]).map((step, j) => {
      const at = `${where}.steps[${j}]`;
      const keys = step && typeof step === 'object' ? Object.keys(step) : [];
      if (keys.length !== 1) fail(at, `expected one of ${STEP_KINDS.join(', ')} with its options`);
      const kind = keys[0] as StepSpec['kind'];
      if (!STEP_KINDS.includes(kind)) fail(at, `unknown step "${kind}" (${STEP_KINDS.join(', ')})`);
      if (kind === 'scan' && !clamd) fail(at, 'a scan step needs `clamd: { host, port }` at the top level');
      return { kind, options: ((step as Record<string, unknown>)[kind] ?? {}) as Record<string, unknown> };
    });
    return { name: entry.name as string, match, steps };
  });
  return { clamd, pipelines };
}
