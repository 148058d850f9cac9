import { isMetricName } from './vocabulary';
import { parseDuration, parseSize } from './units';

/**
 * What a scenario file exports, in k6's shape: `options` (scenarios, thresholds) and the partner scripts the
 * scenarios `exec` (default: the default export). Partners are data, not functions, so that they cross into the
 * worker threads as they are and every step is bounded by the generator. Types for authors, then the check that
 * turns a loaded module into a normalized plan.
 */

export type Duration = string | number;
export type Size = string | number;
/** One size, a log-uniform range (file sizes are heavy-tailed), or weighted choices: `{ pick: { '4KiB': 70, '1MiB': 30 } }`. */
export type SizeSpec = Size | { min: Size; max: Size } | { pick: Record<string, number> };
export type Protocol = 'ftp' | 'ftps' | 'sftp';

export type Step =
  | { list: true }
  | { upload: { files?: number; size: SizeSpec } }
  /** Downloads every file uploaded earlier in this iteration and checks its size. */
  | { download: true }
  /** Deletes every file uploaded earlier in this iteration. */
  | { delete: true }
  /** Uploads a file, cuts the connection (RST) after `cutAt` of it, reconnects, asks its size and sends the rest. */
  | { resume: { size: SizeSpec; cutAt?: number } }
  /** Idles while connected. */
  | { think: Duration | { min: Duration; max: Duration } };

export interface Partner {
  protocol: Protocol;
  /** Default: the target's user and password (or key file). */
  login?: { user?: string; password?: string; keyFile?: string };
  /** Remote folder of this partner's files, created once per VU. Default 'load'. */
  dir?: string;
  steps: Step[];
  /** Pause after the session, before the next iteration (a partner's polling interval). */
  think?: Duration | { min: Duration; max: Duration };
}

interface ScenarioBase {
  /** The partner export this scenario runs. Default 'default'. */
  exec?: string;
  startTime?: Duration;
  /** How long running iterations may finish after the end before they are cut. Default 30s. */
  gracefulStop?: Duration;
}
export type ScenarioConfig =
  | (ScenarioBase & { executor: 'constant-vus'; vus?: number; duration: Duration })
  | (ScenarioBase & { executor: 'ramping-vus'; startVUs?: number; stages: { duration: Duration; target: number }[] })
  | (ScenarioBase & { executor: 'constant-arrival-rate'; rate: number; timeUnit?: Duration; duration: Duration; preAllocatedVUs: number; maxVUs?: number });

export type ThresholdSpec = string | { threshold: string; abortOnFail?: boolean; delayAbortEval?: Duration };

export interface Options {
  scenarios: Record<string, ScenarioConfig>;
  thresholds?: Record<string, ThresholdSpec[]>;
  /** Where to connect; the environment (FTP_HOST, FTP_PORT, SFTP_PORT, FTP_USER, FTP_PASSWORD, FTP_KEY_FILE) wins. */
  target?: { host?: string; port?: number; sftpPort?: number; user?: string; password?: string; keyFile?: string };
  /** Bound on every client operation; a transfer may take longer while its bytes move. */
  timeouts?: { connect?: Duration; operation?: Duration; stall?: Duration };
  /** Pause of a VU after a failed iteration, so that a dead server is not hammered in a tight loop. Default 1s. */
  retryDelay?: Duration;
}

// ---- normalized plan (plain data, sent to the workers) ----

export type SizePlan = { kind: 'fixed'; bytes: number } | { kind: 'range'; min: number; max: number } | { kind: 'pick'; choices: { bytes: number; weight: number }[] };
export type PausePlan = { min: number; max: number };
export type StepPlan =
  | { kind: 'list' }
  | { kind: 'upload'; files: number; size: SizePlan }
  | { kind: 'download' }
  | { kind: 'delete' }
  | { kind: 'resume'; size: SizePlan; cutAt: number }
  | { kind: 'think'; pause: PausePlan };

export interface PartnerPlan {
  protocol: Protocol;
  login: { user?: string; password?: string; keyFile?: string };
  dir: string;
  steps: StepPlan[];
  think: PausePlan;
}

export type ExecutorPlan =
  | { executor: 'constant-vus'; vus: number; duration: number }
  | { executor: 'ramping-vus'; startVUs: number; stages: { duration: number; target: number }[] }
  | { executor: 'constant-arrival-rate'; rate: number; timeUnit: number; duration: number; preAllocatedVUs: number; maxVUs: number };

export type ScenarioPlan = ExecutorPlan & { name: string; exec: string; startTime: number; gracefulStop: number };

export interface LoadedScenarioFile {
  options: Options;
  partners: Record<string, PartnerPlan>;
  scenarios: ScenarioPlan[];
  timeouts: { connect: number; operation: number; stall: number };
  retryDelay: number;
}

const MAX_VUS = 5000;
const MAX_FILES_PER_STEP = 10_000;
const MAX_FILE_BYTES = 64 * 1024 ** 3;

function fail(where: string, message: string): never {
  throw new Error(`${where}: ${message}`);
}

function count(value: unknown, where: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(where, `must be an integer from ${min} to ${max}`);
  return value;
}

function sizePlan(spec: SizeSpec, where: string): SizePlan {
  const bytes = (v: Size, w: string) => {
    const n = parseSize(v, w);
    if (n > MAX_FILE_BYTES) fail(w, `larger than ${MAX_FILE_BYTES} bytes`);
    return n;
  };
  if (typeof spec === 'string' || typeof spec === 'number') return { kind: 'fixed', bytes: bytes(spec, where) };
  if (spec && 'pick' in spec) {
    const choices = Object.entries(spec.pick).map(([size, weight]) => {
      if (typeof weight !== 'number' || !(weight > 0)) fail(`${where}.pick.${size}`, 'a weight must be a positive number');
      return { bytes: bytes(size, `${where}.pick`), weight };
    });
    if (choices.length === 0) fail(where, 'pick needs at least one size');
    return { kind: 'pick', choices };
  }
  if (spec && 'min' in spec && 'max' in spec) {
    const min = bytes(spec.min, `${where}.min`);
    const max = bytes(spec.max, `${where}.max`);
    if (min < 1 || max < min) fail(where, 'needs 1 <= min <= max');
    return { kind: 'range', min, max };
  }
  return fail(where, 'a size, {min, max} or {pick: {SIZE: weight}}');
}

function pausePlan(spec: Duration | { min: Duration; max: Duration } | undefined, where: string): PausePlan {
  if (spec === undefined) return { min: 0, max: 0 };
  if (typeof spec === 'object') {
    const min = parseDuration(spec.min, `${where}.min`);
    const max = parseDuration(spec.max, `${where}.max`);
    if (max < min) fail(where, 'max is below min');
    return { min, max };
  }
  const ms = parseDuration(spec, where);
  return { min: ms, max: ms };
}

function stepPlan(step: Step, where: string): StepPlan {
  const keys = step && typeof step === 'object' ? Object.keys(step) : [];
  if (keys.length !== 1) fail(where, 'a step is an object with one key: list, upload, download, delete, resume or think');
  if ('list' in step) return { kind: 'list' };
  if ('download' in step) return { kind: 'download' };
  if ('delete' in step) return { kind: 'delete' };
  if ('upload' in step) return { kind: 'upload', files: count(step.upload.files ?? 1, `${where}.upload.files`, 1, MAX_FILES_PER_STEP), size: sizePlan(step.upload.size, `${where}.upload.size`) };
  if ('resume' in step) {
    const cutAt = step.resume.cutAt ?? 0.5;
    if (!(cutAt > 0 && cutAt < 1)) fail(`${where}.resume.cutAt`, 'a fraction between 0 and 1');
    const size = sizePlan(step.resume.size, `${where}.resume.size`);
    if ((size.kind === 'fixed' ? size.bytes : size.kind === 'range' ? size.min : Math.min(...size.choices.map((c) => c.bytes))) < 2) fail(`${where}.resume.size`, 'at least 2 bytes');
    return { kind: 'resume', size, cutAt };
  }
  if ('think' in step) return { kind: 'think', pause: pausePlan(step.think, `${where}.think`) };
  return fail(where, `unknown step "${keys[0]}"`);
}

function partnerPlan(partner: Partner, where: string): PartnerPlan {
  if (!partner || typeof partner !== 'object') fail(where, 'not a partner script (export an object with protocol and steps)');
  if (!['ftp', 'ftps', 'sftp'].includes(partner.protocol)) fail(`${where}.protocol`, 'ftp, ftps or sftp');
  if (!Array.isArray(partner.steps) || partner.steps.length === 0) fail(`${where}.steps`, 'a non-empty list');
  const dir = partner.dir ?? 'load';
  if (!/^[A-Za-z0-9._/-]+$/.test(dir) || dir.split('/').includes('..')) fail(`${where}.dir`, 'a relative folder name');
  return {
    protocol: partner.protocol,
    login: { ...partner.login },
    dir,
    steps: partner.steps.map((s, i) => stepPlan(s, `${where}.steps[${i}]`)),
    think: pausePlan(partner.think, `${where}.think`),
  };
}

/** One entry of `options.scenarios`, checked and normalized (the k6 scripts' test reads theirs with it too). */
export function scenarioPlan(name: string, s: ScenarioConfig, where = `options.scenarios.${name}`): ScenarioPlan {
  const base = {
    name,
    exec: s.exec ?? 'default',
    startTime: parseDuration(s.startTime ?? 0, `${where}.startTime`),
    gracefulStop: parseDuration(s.gracefulStop ?? '30s', `${where}.gracefulStop`),
  };
  switch (s.executor) {
    case 'constant-vus':
      return { ...base, executor: s.executor, vus: count(s.vus ?? 1, `${where}.vus`, 1, MAX_VUS), duration: positive(s.duration, `${where}.duration`) };
    case 'ramping-vus': {
      if (!Array.isArray(s.stages) || s.stages.length === 0) fail(`${where}.stages`, 'a non-empty list of {duration, target}');
      const stages = s.stages.map((st, i) => ({ duration: parseDuration(st.duration, `${where}.stages[${i}].duration`), target: count(st.target, `${where}.stages[${i}].target`, 0, MAX_VUS) }));
      if (stages.reduce((t, st) => t + st.duration, 0) <= 0) fail(`${where}.stages`, 'last no time at all');
      return { ...base, executor: s.executor, startVUs: count(s.startVUs ?? 1, `${where}.startVUs`, 0, MAX_VUS), stages };
    }
    case 'constant-arrival-rate': {
      const preAllocatedVUs = count(s.preAllocatedVUs, `${where}.preAllocatedVUs`, 1, MAX_VUS);
      const maxVUs = count(s.maxVUs ?? preAllocatedVUs, `${where}.maxVUs`, preAllocatedVUs, MAX_VUS);
      const timeUnit = positive(s.timeUnit ?? '1s', `${where}.timeUnit`);
      if (typeof s.rate !== 'number' || !(s.rate > 0) || s.rate / timeUnit > 1) fail(`${where}.rate`, 'a positive number of iterations per timeUnit, at most 1000/s');
      return { ...base, executor: s.executor, rate: s.rate, timeUnit, duration: positive(s.duration, `${where}.duration`), preAllocatedVUs, maxVUs };
    }
    default:
      return fail(`${where}.executor`, 'constant-vus, ramping-vus or constant-arrival-rate');
  }
}

function positive(value: Duration, where: string): number {
  const ms = parseDuration(value, where);
  if (!(ms > 0)) fail(where, 'must be longer than 0');
  return ms;
}

/** Checks a loaded scenario module and normalizes it. Throws one message naming the field at fault. */
export function planFromModule(mod: Record<string, unknown>, file: string): LoadedScenarioFile {
  const options = mod.options as Options | undefined;
  if (!options || typeof options !== 'object' || !options.scenarios || typeof options.scenarios !== 'object') fail(file, 'exports no `options` with `scenarios`');
  const names = Object.keys(options.scenarios);
  if (names.length === 0) fail(`${file}: options.scenarios`, 'at least one scenario');
  const scenarios = names.map((name) => scenarioPlan(name, options.scenarios[name], `options.scenarios.${name}`));
  const partners: Record<string, PartnerPlan> = {};
  for (const s of scenarios) {
    if (partners[s.exec]) continue;
    if (!(s.exec in mod)) fail(`options.scenarios.${s.name}.exec`, `the file exports no partner "${s.exec}"`);
    partners[s.exec] = partnerPlan(mod[s.exec] as Partner, s.exec === 'default' ? 'default export' : `export ${s.exec}`);
  }
  for (const metric of Object.keys(options.thresholds ?? {})) checkThresholdMetric(metric, `options.thresholds`);
  const t = options.timeouts ?? {};
  return {
    options,
    partners,
    scenarios,
    timeouts: { connect: positive(t.connect ?? '10s', 'options.timeouts.connect'), operation: positive(t.operation ?? '30s', 'options.timeouts.operation'), stall: positive(t.stall ?? '30s', 'options.timeouts.stall') },
    retryDelay: parseDuration(options.retryDelay ?? '1s', 'options.retryDelay'),
  };
}

export function checkThresholdMetric(metric: string, where: string): void {
  if (metric.includes('{')) fail(`${where}.${metric}`, 'tag filters (submetrics) are not supported');
  if (!isMetricName(metric)) fail(`${where}.${metric}`, 'no such metric (see test/load/src/vocabulary.ts)');
}

/** When a scenario (and its graceful stop) ends, from the start of the test. */
export function scenarioEnd(s: ScenarioPlan): number {
  const length = s.executor === 'ramping-vus' ? s.stages.reduce((t, st) => t + st.duration, 0) : s.duration;
  return s.startTime + length;
}

export function scenarioMaxVUs(s: ScenarioPlan): number {
  if (s.executor === 'constant-vus') return s.vus;
  if (s.executor === 'ramping-vus') return Math.max(s.startVUs, ...s.stages.map((st) => st.target));
  return s.maxVUs;
}

/**
 * `--vus` / `--duration` from the command line. `duration` is the test's length, as in k6: every scenario's times
 * (start, duration, stages) are scaled by the same factor, so a burst that starts at 1m of a 3m test still starts a
 * third of the way in. `vus`: constant-vus runs that many; ramping-vus has its targets scaled so its peak is `vus`;
 * arrival-rate takes it as preAllocatedVUs (maxVUs at least that).
 */
export function applyOverrides(scenarios: ScenarioPlan[], o: { vus?: number; duration?: number }): ScenarioPlan[] {
  const f = o.duration === undefined ? 1 : o.duration / Math.max(...scenarios.map(scenarioEnd));
  return scenarios.map((s) => {
    const startTime = s.startTime * f;
    switch (s.executor) {
      case 'constant-vus':
        return { ...s, startTime, vus: o.vus ?? s.vus, duration: s.duration * f };
      case 'ramping-vus': {
        const vusScale = o.vus === undefined ? 1 : o.vus / (scenarioMaxVUs(s) || 1);
        return {
          ...s,
          startTime,
          startVUs: Math.round(s.startVUs * vusScale),
          stages: s.stages.map((st) => ({ duration: st.duration * f, target: Math.round(st.target * vusScale) })),
        };
      }
      case 'constant-arrival-rate':
        return { ...s, startTime, duration: s.duration * f, preAllocatedVUs: o.vus ?? s.preAllocatedVUs, maxVUs: Math.max(o.vus ?? 0, s.maxVUs) };
    }
  });
}
