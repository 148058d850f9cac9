import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { findBinary, freeBlock, makeTempDir, removeTempDir, startProcess, stopProcess, waitFor } from './processes';

/**
 * A real clamd for tests, as a child process on 127.0.0.1 with a throwaway config and its own tiny signature
 * database: no official database, no freshclam, no network. It knows one thing, the EICAR test string, anywhere in
 * a file (signature `Test.EICAR.Body.UNOFFICIAL`) or as the whole 68-byte file (`Test.EICAR.Hash.UNOFFICIAL`).
 */

export interface ClamdOptions {
  /** clamd's StreamMaxLength (`100M`, `1M`…): an INSTREAM over it gets `size limit exceeded. ERROR`. Default 100M. */
  streamMaxLength?: string;
  /** Bound on the start-up wait (spawn until PING answers PONG). Default 30 s. */
  startTimeoutMs?: number;
}

export interface Clamd {
  host: '127.0.0.1';
  port: number;
  /** Ms from spawn until the first PONG. */
  startupMs: number;
  /** SIGTERM (SIGKILL after a grace), then removes the temp folder. Fine to call twice. */
  stop(): Promise<void>;
}

/** The EICAR anti-virus test file: 68 bytes, harmless, detected by every scanner. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

const EICAR_MD5 = '44d88612fea8a8f36de82e1278abb02f';
const POLL_MS = 50;

/** True when clamd answers `zPING\0` with `PONG\0`. Kept apart from the scan step's own ping on purpose. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('zPING\0'));
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      reply += text;
      if (reply.includes('\0')) done(reply === 'PONG\0');
    });
    socket.once('end', () => done(reply === 'PONG\0'));
  });
}

function writeFiles(dir: string, port: number, streamMaxLength: string): string {
  const db = join(dir, 'db');
  mkdirSync(db);
  // .ndb body signature: the EICAR bytes at any offset of any file type, so it matches inside larger files too.
  writeFileSync(join(db, 'test.ndb'), `Test.EICAR.Body:0:*:${Buffer.from(EICAR, 'latin1').toString('hex')}\n`);
  // .hdb hash signature: MD5:size:name of the exact 68-byte file.
  writeFileSync(join(db, 'test.hdb'), `${EICAR_MD5}:${EICAR.length}:Test.EICAR.Hash\n`);
  const conf = join(dir, 'clamd.conf');
  // No LogFile: in the foreground clamd logs to stdout/stderr, which we keep as the tail (LogFile /dev/stderr is
  // refused: clamd opens log files with O_NOFOLLOW). No User: clamd runs as whoever runs the tests.
  writeFileSync(
    conf,
    [
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      'Foreground yes',
      `DatabaseDirectory ${db}`,
      `StreamMaxLength ${streamMaxLength}`,
      'MaxThreads 4',
      'ConcurrentDatabaseReload no',
      'SelfCheck 0',
      '',
    ].join('\n'),
  );
  return conf;
}

/** Starts clamd and resolves once it answers PING; rejects with its output tail if it exits or the deadline passes. */
export async function startClamd(options: ClamdOptions = {}): Promise<Clamd> {
  const binary = findBinary('clamd', 'apt-get install --no-install-recommends clamav-daemon');
  const dir = makeTempDir('clamd-');
  const port = await freeBlock(1, ['127.0.0.1']);
  const conf = writeFiles(dir, port, options.streamMaxLength ?? '100M');

  const started = Date.now();
  const proc = startProcess('clamd', binary, ['-c', conf], { cwd: dir });
  const stop = async () => {
    await stopProcess(proc);
    removeTempDir(dir);
  };
  try {
    await waitFor(`clamd PING on 127.0.0.1:${port}`, proc, () => pong(port), { timeoutMs: options.startTimeoutMs ?? 30_000, pollMs: POLL_MS });
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: '127.0.0.1', port, startupMs: Date.now() - started, stop };
}
