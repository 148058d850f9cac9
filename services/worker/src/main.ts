// First: tracing must be running before the rest of the graph (bullmq, ioredis) is evaluated.
import { stopTracing } from './instrument';
import { createLogger } from '@ftp/telemetry';
import { loadWorkerConfig, WorkerConfigError } from './config';
import { withFailedJobs } from './failedJobs';
import { startWorker } from './worker';

let config;
try {
  config = loadWorkerConfig();
} catch (err) {
  console.error(err instanceof WorkerConfigError ? `Invalid configuration: ${err.message}` : err);
  process.exit(1);
}

// `npm run worker -- failed list` / `failed retry <id>… | --all`: the operator's view of jobs that ran out of attempts.
const [command, action, ...ids] = process.argv.slice(2);
if (command === 'failed') {
  const code = await withFailedJobs(config, async (jobs) => {
    if (action === 'list') {
      for (const job of await jobs.list()) console.log(JSON.stringify(job));
      return 0;
    }
    if (action === 'retry' && ids.length > 0) {
      console.log(`${await jobs.retry(ids[0] === '--all' ? 'all' : ids)} job(s) moved back to waiting`);
      return 0;
    }
    console.error('usage: worker failed list | failed retry <job id>… | failed retry --all');
    return 2;
  });
  process.exit(code);
}

const log = createLogger({ level: config.worker.logLevel, name: 'ftp-worker' });
const worker = await startWorker(config, log).catch((err) => {
  log.fatal({ err }, 'could not start');
  log.flush();
  process.exit(1);
});

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'finishing running jobs before exit');
  await worker.close();
  await stopTracing();
  log.info('stopped');
  log.flush();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
