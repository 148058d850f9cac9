// First: tracing must be running before the rest of the graph (ioredis, the session code) is evaluated.
import { stopTracing } from './instrument';
import { ConfigError, configPathFromArgv, loadConfig } from '@ftp/config';
import { createLogger } from '@ftp/telemetry';
import { startEdge } from './server';

let config;
try {
  config = loadConfig({ file: configPathFromArgv(process.argv.slice(2)) });
} catch (err) {
  console.error(err instanceof ConfigError ? `Invalid configuration: ${err.message}` : err);
  process.exit(1);
}

const log = createLogger({ level: config.logLevel, name: 'ftp-edge' });
const edge = await startEdge({ config, log }).catch((err) => {
  log.fatal({ err }, 'could not start');
  log.flush();
  process.exit(1);
});

if (edge.createdUser) {
  // Printed once: the password exists nowhere else in clear.
  log.warn(
    { user: edge.createdUser.name, password: edge.createdUser.password, usersFile: config.usersFile },
    `created ${config.usersFile} with user "${edge.createdUser.name}" and a random password (shown only now)`,
  );
}

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'draining before exit');
  await edge.close(config.drainSeconds * 1000);
  await stopTracing();
  log.info('stopped');
  log.flush();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
// logrotate's postrotate: reopen the xferlog file.
process.on('SIGHUP', () => {
  log.info('SIGHUP: reopening the xferlog file');
  edge.reopenLogs();
});
process.on('SIGINT', () => void stop('SIGINT'));
