import type { Storage } from '@ftp/storage';
import { inSpan, type Logger } from '@ftp/telemetry';
import type { UploadEvent } from '@ftp/upload-events';
import type { PipelineSpec, StepSpec, WorkerConfig } from './config';
import { matches, type Match } from './rules';
import { checksumStep } from './steps/checksum';
import { asStepError, pathOfKey } from './steps/files';
import { moveStep } from './steps/move';
import { scanStep } from './steps/scan';
import type { Step, StepResult } from './steps/types';
import { webhookStep } from './steps/webhook';

export interface Pipeline {
  name: string;
  match: Match;
  steps: Step[];
}

/** Builds every configured pipeline once, at start-up: a bad option fails the start, not a job. */
export function buildPipelines(config: WorkerConfig, env: NodeJS.ProcessEnv = process.env): Pipeline[] {
  return config.pipelineSpecs.map((spec) => ({ name: spec.name, match: spec.match, steps: buildSteps(spec, config, env) }));
}

function buildSteps(spec: PipelineSpec, config: WorkerConfig, env: NodeJS.ProcessEnv): Step[] {
  const seen = new Map<string, number>();
  return spec.steps.map((step) => {
    const count = (seen.get(step.kind) ?? 0) + 1;
    seen.set(step.kind, count);
    // Results are kept by step name: a second webhook in one pipeline needs a name of its own.
    const name = count === 1 ? step.kind : `${step.kind}#${count}`;
    return { ...createStep(step, config, env), name };
  });
}

function createStep(step: StepSpec, config: WorkerConfig, env: NodeJS.ProcessEnv): Step {
  const o = step.options;
  switch (step.kind) {
    case 'checksum':
      return checksumStep({ algorithms: o.algorithms as ('sha256' | 'md5')[] | undefined, sidecar: o.sidecar as boolean | undefined });
    case 'scan':
      return scanStep({
        host: config.clamd!.host,
        port: config.clamd!.port,
        quarantineDir: (o.quarantine as string | undefined) ?? '.quarantine',
        timeoutMs: o.timeout_ms as number | undefined,
      });
    case 'move':
    case 'copy':
      return moveStep({ to: o.to as string, copy: step.kind === 'copy', overwrite: o.overwrite as boolean | undefined });
    case 'webhook': {
      const secret = o.secret_env ? env[o.secret_env as string] : (o.secret as string | undefined);
      if (!secret) throw new Error(`webhook ${String(o.url)}: needs secret_env naming a set environment variable (or secret)`);
      return webhookStep({
        url: o.url as string,
        secret,
        timeoutMs: o.timeout_ms as number | undefined,
        attempts: o.attempts as number | undefined,
        backoffMs: o.backoff_ms as number | undefined,
        headers: o.headers as Record<string, string> | undefined,
      });
    }
  }
}

/** The first pipeline whose rule matches; none means the upload needs no processing. */
export function choosePipeline(pipelines: Pipeline[], event: UploadEvent): Pipeline | undefined {
  return pipelines.find((pipeline) => matches(pipeline.match, event));
}

export interface RunOptions {
  /** The whole data root (see StepContext.storage). */
  storage: Storage;
  log: Logger;
  /** Aborted when the worker shuts down or loses the job's lock: no step starts after that (see StepContext.signal). */
  signal: AbortSignal;
  /** Results of steps that finished in an earlier attempt of this job: they are not run again. */
  done: Record<string, StepResult>;
  /** Records a finished step before the next one starts (on the job, so a retry skips it). */
  onStepDone(name: string, result: StepResult): Promise<void>;
  observe(step: string, seconds: number, ok: boolean): void;
}

/** Runs the pipeline's steps in order from where an earlier attempt stopped; returns every step's result. */
export async function runPipeline(pipeline: Pipeline, event: UploadEvent, options: RunOptions): Promise<Record<string, StepResult>> {
  const results: Record<string, StepResult> = { ...options.done };
  // A key that points outside the data root is a PermanentStepError: never retried.
  let path = pathOfKey(event.storageKey);
  for (const step of pipeline.steps) {
    const earlier = results[step.name];
    if (earlier) {
      path = pathAfter(earlier) ?? path;
      if (earlier.stop) break;
      continue;
    }
    // Shutting down, or the job's lock is lost: no further effect (the run that takes the job over does the rest).
    options.signal.throwIfAborted();
    const started = process.hrtime.bigint();
    let result: StepResult;
    try {
      const context = { event, storage: options.storage, path, previous: { ...results }, log: options.log.child({ step: step.name }), signal: options.signal };
      // One span per step, a child of the job's `upload.process` span.
      result = await inSpan(`step ${step.name}`, { attributes: { 'ftp.step': step.name, 'ftp.upload.id': event.uploadId } }, async (span) => {
        const stepResult = await step.run(context);
        if (stepResult.stop) span.setAttribute('ftp.step.stop', true);
        return stepResult;
      });
    } catch (err) {
      options.observe(step.name, seconds(started), false);
      throw asStepError(err);
    }
    options.observe(step.name, seconds(started), true);
    results[step.name] = result;
    await options.onStepDone(step.name, result);
    path = result.path ?? path;
    if (result.stop) break;
  }
  return results;
}

const seconds = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e9;

/**
 * Where a finished step left the file. Results recorded by workers before the storage seam (a host `filePath`) name it
 * as a data-root key in `details.to` (move, copy) or `details.quarantine` (scan): a job retried across an upgrade
 * carries on from there.
 */
function pathAfter(result: StepResult & { filePath?: string }): string | undefined {
  if (result.path !== undefined || result.filePath === undefined) return result.path;
  const key = result.details?.to ?? result.details?.quarantine;
  return typeof key === 'string' ? pathOfKey(key) : undefined;
}
