import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type FtpConfig } from '@ftp/config';
import { hashPassword, type User } from '@ftp/identity';
import type { Storage } from '@ftp/storage';
import { createLogger } from '@ftp/telemetry';
import type { ZeroCopy } from '@ftp/zero-copy';
import { startEdge, type Edge } from '../../services/ftp-edge/src/server';
import { ephemeralLow, freeBlock } from './processes';

export { ephemeralLow };

export interface TestServer {
  edge: Edge;
  config: FtpConfig;
  host: string;
  port: number;
  /** Host folder that is the data root; user `alice` lives in `<dataDir>/alice`. */
  dataDir: string;
  user: string;
  password: string;
  /** Parsed pino log lines written so far. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Extra FTP_* settings, as strings, exactly as the environment would give them. */
  env?: Record<string, string>;
  /** Extra YAML for the users file (appended under `users:`), e.g. a read-only user. */
  extraUsers?: string;
  anonymous?: boolean;
  storageFor?: (user: User) => Storage;
  /** Also serve SFTP (on a free port: `edge.sftpPort`). */
  sftp?: boolean;
  /** Replaces the zero-copy addon (null: run as if it had not been built). */
  zeroCopy?: ZeroCopy | null;
}

const PASSWORD = 'correct horse battery staple';
let passwordHash: Promise<string> | undefined;

/**
 * A random block of 20 passive ports below the ephemeral range, so parallel test files do not collide, and the
 * thousands of loopback sockets in TIME_WAIT that churn tests and benchmarks leave do not block the listeners.
 */
function randomRange(): string {
  const blocks = Math.floor((ephemeralLow() - 10_000) / 20) - 1;
  const min = 10_000 + Math.floor(Math.random() * blocks) * 20;
  return `${min}-${min + 19}`;
}

/**
 * Starts a real edge in this process on loopback with user `alice` (password in `.password`), a fresh data folder
 * and a random passive range. Logs are captured for assertions.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ftp-e2e-'));
  const dataDir = join(dir, 'data');
  const usersFile = join(dir, 'users.yaml');
  passwordHash ??= hashPassword(PASSWORD);
  writeFileSync(
    usersFile,
    `users:\n  alice:\n    password: "${await passwordHash}"\n    home: alice\n${options.extraUsers ?? ''}` +
      (options.anonymous ? 'anonymous:\n  enabled: true\n  home: pub\n' : ''),
  );
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  for (let attempt = 0; ; attempt++) {
    const config = loadConfig({
      env: {
        FTP_HOST: '127.0.0.1',
        FTP_DATA_DIR: dataDir,
        FTP_USERS_FILE: usersFile,
        FTP_ADMIN_PORT: '0',
        FTP_PASV_RANGE: randomRange(),
        FTP_LOG_LEVEL: 'debug',
        FTP_FSYNC_UPLOADS: 'false',
        FTP_TLS_DIR: join(dir, 'tls'),
        FTP_RELAY_PORT: '0', // parallel test servers with REDIS_URL would all claim the default relay port
        FTP_SFTP_PORT: options.sftp ? String(await freeBlock(1, ['127.0.0.1'])) : '0',
        ...options.env,
      },
    });
    if (!options.env?.FTP_PORT) config.port = 0;
    try {
      const edge = await startEdge({ config, log: createLogger({ level: 'debug', destination: sink }), storageFor: options.storageFor, zeroCopy: options.zeroCopy });
      return {
        edge,
        config,
        host: config.host,
        port: edge.port,
        dataDir,
        user: 'alice',
        password: PASSWORD,
        logs,
        async close() {
          await edge.close(2000);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw err;
    }
  }
}

export const TEST_PASSWORD = PASSWORD;
