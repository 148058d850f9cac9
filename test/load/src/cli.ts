import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from './args';
import type { Login } from './clients/session';
import type { WorkerData } from './messages';
import { startOtlp, otlpConfig } from './otlp';
import { startProgress } from './progress';
import { startRun, type RunHandle } from './run';
import { applyOverrides, planFromModule, scenarioEnd, scenarioMaxVUs, type PartnerPlan, type ScenarioPlan } from './scenario';
import { aggregate } from './stats';
import { summaryExport, textSummary } from './summary';
import { checkTarget, resolveTarget, type Target } from './target';
import { evaluate, parseThresholdFlag, parseThresholds } from './thresholds';
import { formatDuration } from './units';

/**
 * `npm run load -- SCENARIO [flags]`: k6's `run` for FTP, FTPS and SFTP. Exit codes as k6's: 0, 99 when a threshold
 * failed, 104 for a bad configuration (a refused target included).
 */

const EXIT_THRESHOLDS = 99;
const EXIT_CONFIG = 104;
const PROGRESS_EVERY_MS = 5000;

/**
 * The partner's own login fields, else the target's. With a key file (SFTP), the password goes along only when the
 * partner names one (a user that needs both): a wrong password tried first would count as a failed login and get
 * the generator banned.
 */
function loginFor(partner: PartnerPlan, target: Target, where: string): Login {
  const user = partner.login.user ?? target.user;
  const keyFile = partner.protocol === 'sftp' ? (partner.login.keyFile ?? target.keyFile) : undefined;
  const password = keyFile ? partner.login.password : (partner.login.password ?? target.password);
  if (!user) throw new Error(`${where}: no user (FTP_USER, options.target.user or the partner's login.user)`);
  if (!password && !keyFile) throw new Error(`${where}: no password${partner.protocol === 'sftp' ? ' or key file' : ''} for ${user} (FTP_PASSWORD / FTP_KEY_FILE)`);
  let privateKey: string | undefined;
  if (keyFile) {
    try {
      privateKey = readFileSync(keyFile, 'utf8');
    } catch (err) {
      throw new Error(`${where}: key file ${keyFile}: ${(err as Error).message}`);
    }
  }
  return { user, password, privateKey };
}

function header(file: string, target: Target, scenarios: ScenarioPlan[], out: string | undefined): string {
  const maxVUs = scenarios.reduce((n, s) => n + scenarioMaxVUs(s), 0);
  const longest = Math.max(...scenarios.map((s) => scenarioEnd(s) + s.gracefulStop));
  const describe = (s: ScenarioPlan) => {
    const what =
      s.executor === 'constant-vus'
        ? `${s.vus} looping VUs for ${formatDuration(s.duration)}`
        : s.executor === 'ramping-vus'
          ? `up to ${scenarioMaxVUs(s)} looping VUs for ${formatDuration(scenarioEnd(s) - s.startTime)} over ${s.stages.length} stages`
          : `${s.rate} iterations per ${formatDuration(s.timeUnit)} for ${formatDuration(s.duration)} (maxVUs: ${s.maxVUs})`;
    return `           * ${s.name}: ${what} (exec: ${s.exec}${s.startTime ? `, startTime: ${formatDuration(s.startTime)}` : ''}, gracefulStop: ${formatDuration(s.gracefulStop)})`;
  };
  return [
    `     script: ${file}`,
    `     target: ${target.host} (FTP ${target.port}, SFTP ${target.sftpPort})`,
    `     output: ${out ?? '-'}`,
    `  scenarios: ${scenarios.length} scenario${scenarios.length === 1 ? '' : 's'}, ${maxVUs} max VUs, ${formatDuration(longest)} max duration (incl. graceful stop):`,
    ...scenarios.map(describe),
    '',
  ].join('\n');
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const stderr = (text: string) => process.stderr.write(text + '\n');
  let prepared;
  try {
    const args = parseArgs(argv);
    const mod = (await import(pathToFileURL(resolve(args.scenario)).href)) as Record<string, unknown>;
    const file = planFromModule(mod, args.scenario);
    const scenarios = applyOverrides(file.scenarios, { vus: args.vus, duration: args.duration });
    const thresholds = [...parseThresholds(file.options.thresholds), ...args.thresholds.map(parseThresholdFlag)];
    const target = resolveTarget(file.options.target, env);
    await checkTarget(target.host, args.allowRemote);
    const workerScenarios: WorkerData['scenarios'] = {};
    for (const s of scenarios) {
      const partner = file.partners[s.exec];
      workerScenarios[s.name] = { partner, port: partner.protocol === 'sftp' ? target.sftpPort : target.port, login: loginFor(partner, target, `scenario ${s.name}`) };
    }
    const otlp = otlpConfig(args.out, env);
    prepared = { args, file, scenarios, thresholds, target, workerScenarios, otlp };
  } catch (err) {
    stderr(`error: ${(err as Error).message}`);
    return EXIT_CONFIG;
  }
  const { args, file, scenarios, thresholds, target, workerScenarios, otlp } = prepared;
  const runId = randomBytes(4).toString('hex');
  stderr(header(args.scenario, target, scenarios, otlp && `otlp (${otlp.url})`));

  // The OTLP gauges read the run's progress, which exists once the run does.
  const live: { progress?: RunHandle['progress'] } = {};
  const gauges = () => {
    const p = live.progress?.();
    return { vus: p?.vus ?? 0, vus_max: p?.vusMax ?? 0 };
  };
  const output = otlp && startOtlp(otlp, gauges, { testid: runId });
  const handle = startRun({
    scenarios,
    workerData: { runId, host: target.host, timeouts: file.timeouts, scenarios: workerScenarios, ...(args.ledger ? { ledger: resolve(args.ledger) } : {}) },
    retryDelay: file.retryDelay,
    thresholds,
    workers: args.workers ?? Math.max(1, Math.min(4, availableParallelism())),
    onSamples: output ? output.onSamples : undefined,
  });
  live.progress = handle.progress;
  let signals = 0;
  const onSignal = () => (++signals === 1 ? handle.stop('interrupted (first signal: graceful stop)') : handle.hardStop('interrupted (second signal)'));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const stopProgress = args.quiet ? () => {} : startProgress(handle.progress, { stream: process.stderr, tty: process.stderr.isTTY === true, everyMs: PROGRESS_EVERY_MS });

  const result = await handle.done;
  stopProgress();
  if (output) await output.stop();
  const seconds = result.durationMs / 1000;
  const results = evaluate(thresholds, (m, method, p) => aggregate(result.stats, m, method, seconds, p));
  process.stdout.write(textSummary({ result, thresholds: results, cores: availableParallelism() }) + '\n');
  if (args.summaryExport) writeFileSync(args.summaryExport, JSON.stringify(summaryExport(result.stats, results, result.durationMs), null, 4) + '\n');
  const failed = results.filter((r) => !r.ok);
  if (failed.length) stderr(`error: thresholds on metrics '${[...new Set(failed.map((r) => r.threshold.metric))].join("', '")}' have been crossed`);
  return failed.length ? EXIT_THRESHOLDS : 0;
}

// Exit explicitly once the output is written: the run is over, nothing may keep the process alive.
main(process.argv.slice(2), process.env).then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (err: Error) => {
    process.stderr.write(`error: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
