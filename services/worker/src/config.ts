import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { configPathFromArgv, loadConfig, type FtpConfig } from '@ftp/config';
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

/**
 * The worker's configuration: the same model as the edge's (@ftp/config: one YAML file given with `--config`, the same
 * FTP_* and REDIS_URL names), so both agree on the storage, its data root and the Redis prefix; `worker` holds the
 * WORKER_* settings of its own. Plus the pipelines file, read and checked.
 */
export interface WorkerConfig extends FtpConfig {
  clamd?: { host: string; port: number };
  pipelineSpecs: PipelineSpec[];
}

export class WorkerConfigError extends Error {
  override name = 'WorkerConfigError';
}

const STEP_KINDS = ['checksum', 'scan', 'move', 'copy', 'webhook'] as const;

const DEFAULT_PIPELINES: PipelineSpec[] = [{ name: 'default', match: {}, steps: [{ kind: 'checksum', options: {} }] }];
const DEFAULT_PIPELINES_FILE = './pipelines.yaml';

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = process.argv.slice(2)): WorkerConfig {
  let config: FtpConfig;
  try {
    config = loadConfig({ file: configPathFromArgv(argv), env });
  } catch (err) {
    // A bad value (ConfigError) or `--config` without a path: either is the operator's to fix, named in one line.
    throw new WorkerConfigError((err as Error).message);
  }
  if (!config.redisUrl) throw new WorkerConfigError('REDIS_URL: required (the upload queue lives in Redis)');
  const pipelinesFile = config.worker.pipelines;
  const file = existsSync(pipelinesFile) ? parsePipelinesFile(pipelinesFile) : undefined;
  if (!file && pipelinesFile !== DEFAULT_PIPELINES_FILE) throw new WorkerConfigError(`WORKER_PIPELINES: ${pipelinesFile} does not exist`);
  return { ...config, clamd: file?.clamd, pipelineSpecs: file?.pipelines ?? DEFAULT_PIPELINES };
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
