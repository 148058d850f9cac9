/**
 * Small files over FTPS with the client of the capacity report (section 3): Python's ftplib, one session,
 * storbinary then retrbinary of BENCH_FILES files of BENCH_SIZE bytes, data connections resuming the control
 * connection's TLS session. Clear FTP runs in the same rounds as the control; vsftpd (with TLS) as the reference
 * when it is installed and we run as root.
 *
 *   npx tsx test/bench/ftpsSmallFiles.ts
 *   BENCH_FILES=100 BENCH_ROUNDS=1 BENCH_VSFTPD=0 npx tsx test/bench/ftpsSmallFiles.ts   # quick
 *
 * ftplib keeps Nagle's algorithm on. Each round runs every (server, protocol) pair once, in an order that rotates, and
 * the table shows medians of the rounds with their min–max. `stalled` counts the uploads that took 35 ms or more: the
 * mark of a client waiting for the server's delayed ACK (see libs/ftp-session/src/tlsTickets.ts). Our server runs with
 * FTP_FSYNC_UPLOADS=false (vsftpd never fsyncs); BENCH_OURS_NODE_ARGS adds node flags to it (e.g. --cpu-prof).
 * BENCH_OURS_B_NODE_ARGS, when set, adds a second instance of ours (`ours-b`) started with those flags instead, measured
 * in the same rounds: an A/B of a flag or a preload (`--import ./variant.mjs`) on a machine too noisy for two runs.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { envInt } from './env';
import { median } from './report';
import { checkRangeFree, freePort, killNow, parseRange, startOurs, startVsftpd, stopServer, type RunningServer } from './servers';

const settings = {
  files: envInt('BENCH_FILES', 300),
  size: envInt('BENCH_SIZE', 4096),
  rounds: envInt('BENCH_ROUNDS', 3),
  python: process.env.BENCH_PYTHON || 'python3',
  vsftpd: process.env.BENCH_VSFTPD !== '0',
  oursPasv: parseRange(process.env.BENCH_OURS_PASV || '28200-28299'),
  oursBPasv: parseRange(process.env.BENCH_OURS_B_PASV || '28400-28499'),
  vsftpdPasv: parseRange(process.env.BENCH_VSFTPD_PASV || '28300-28399'),
  oursNodeArgs: (process.env.BENCH_OURS_NODE_ARGS || '').split(' ').filter(Boolean),
  oursBNodeArgs: process.env.BENCH_OURS_B_NODE_ARGS === undefined ? undefined : process.env.BENCH_OURS_B_NODE_ARGS.split(' ').filter(Boolean),
  out: resolve(process.env.BENCH_OUT || '.bench/ftps-small-files.json'),
};

type Protocol = 'tls' | 'clear';
interface Pass {
  uploads_per_s: number;
  downloads_per_s: number;
  upload_ms_p50: number;
  upload_ms_p90: number;
  uploads_over_35ms: number;
}

const servers: RunningServer[] = [];
let tmp: string | undefined;
process.on('exit', () => {
  for (const server of servers) killNow(server);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

function pass(server: RunningServer, protocol: Protocol, prefix: string): Promise<Pass> {
  const env = {
    ...process.env,
    BENCH_HOST: server.host,
    BENCH_PORT: String(server.port),
    BENCH_USER: server.user,
    BENCH_PASSWORD: server.password,
    BENCH_FILES: String(settings.files),
    BENCH_SIZE: String(settings.size),
    BENCH_PROTOCOL: protocol,
    BENCH_PREFIX: prefix,
  };
  const script = join(import.meta.dirname, 'ftplib_small_files.py');
  return new Promise((resolvePass, reject) => {
    execFile(settings.python, [script], { env, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${server.name} ${protocol}: ${err.message}\n${stderr}`));
      resolvePass(JSON.parse(stdout) as Pass);
    });
  });
}

/** vsftpd as in the main bench, plus explicit FTPS with our self-signed pair; clear FTP stays allowed for the control. */
function vsftpdTlsConfig(tlsDir: string): string {
  return [
    'ssl_enable=YES',
    `rsa_cert_file=${join(tlsDir, 'self-signed.crt')}`,
    `rsa_private_key_file=${join(tlsDir, 'self-signed.key')}`,
    'force_local_logins_ssl=NO',
    'force_local_data_ssl=NO',
    'require_ssl_reuse=YES',
    'ssl_ciphers=HIGH',
  ].join('\n');
}

async function main() {
  tmp = mkdtempSync(join(tmpdir(), 'ftp-bench-ftps-small-'));
  chmodSync(tmp, 0o755); // vsftpd's sessions run as the bench user and must reach their root below it
  const taken = new Set<number>();
  await checkRangeFree(settings.oursPasv, 'ours');
  const oursDir = join(tmp, 'ours');
  mkdirSync(oursDir);
  const ours = await startOurs({
    name: 'ours',
    dir: oursDir,
    port: await freePort(21610, taken),
    pasvRange: settings.oursPasv,
    fsync: false,
    nodeArgs: settings.oursNodeArgs,
    env: { FTP_TLS_DIR: join(oursDir, 'tls') },
  });
  servers.push(ours);
  if (settings.oursBNodeArgs) {
    await checkRangeFree(settings.oursBPasv, 'ours-b');
    const dir = join(tmp, 'ours-b');
    mkdirSync(dir);
    servers.push(
      await startOurs({
        name: 'ours-b',
        dir,
        port: await freePort(21610, taken),
        pasvRange: settings.oursBPasv,
        fsync: false,
        nodeArgs: settings.oursBNodeArgs,
        env: { FTP_TLS_DIR: join(dir, 'tls') },
      }),
    );
  }
  const withVsftpd = settings.vsftpd && process.getuid?.() === 0 && ['/usr/sbin/vsftpd', '/usr/bin/vsftpd'].some(existsSync);
  if (withVsftpd) {
    await checkRangeFree(settings.vsftpdPasv, 'vsftpd');
    const dir = join(tmp, 'vsftpd');
    mkdirSync(dir);
    servers.push(
      await startVsftpd({ dir, port: await freePort(21710, taken), pasvRange: settings.vsftpdPasv, extraConfig: vsftpdTlsConfig(join(oursDir, 'tls')), crypt: 'SHA512' }),
    );
  } else {
    console.log('vsftpd: not run (BENCH_VSFTPD=0, not root, or not installed)');
  }

  const pairs = servers.flatMap((server) => (['tls', 'clear'] as const).map((protocol) => ({ server, protocol })));
  const results = new Map<string, Pass[]>(pairs.map(({ server, protocol }) => [`${server.name} ${protocol}`, []]));
  console.log(`${settings.files} files of ${settings.size} bytes, ${settings.rounds} round(s), client ${settings.python} ftplib; our pid ${ours.pid}`);
  for (let round = 0; round < settings.rounds; round++) {
    for (let k = 0; k < pairs.length; k++) {
      const { server, protocol } = pairs[(k + round) % pairs.length];
      const result = await pass(server, protocol, `r${round}-${protocol}`);
      results.get(`${server.name} ${protocol}`)!.push(result);
      console.log(
        `  round ${round + 1} ${server.name.padEnd(6)} ${protocol.padEnd(5)} up ${result.uploads_per_s.toFixed(1)}/s down ${result.downloads_per_s.toFixed(1)}/s ` +
          `(upload p50 ${result.upload_ms_p50.toFixed(1)} ms, p90 ${result.upload_ms_p90.toFixed(1)} ms, ${result.uploads_over_35ms} stalled)`,
      );
    }
  }

  const spread = (values: number[]) => `${median(values)!.toFixed(1)} (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
  const line = (cells: string[]) => `| ${cells[0].padEnd(14)} | ${cells.slice(1).map((c) => c.padStart(22)).join(' | ')} |`;
  console.log();
  console.log(line(['', 'uploads/s', 'downloads/s', 'upload p50 ms', `stalled of ${settings.files}`]));
  console.log(line(['---', '---', '---', '---', '---']));
  for (const [name, passes] of results) {
    console.log(
      line([
        name,
        spread(passes.map((p) => p.uploads_per_s)),
        spread(passes.map((p) => p.downloads_per_s)),
        spread(passes.map((p) => p.upload_ms_p50)),
        spread(passes.map((p) => p.uploads_over_35ms)),
      ]),
    );
  }
  console.log(`\nmedian (min–max) of ${settings.rounds} round(s); loopback; one ftplib session per pass`);
  mkdirSync(dirname(settings.out), { recursive: true });
  writeFileSync(settings.out, JSON.stringify({ settings, results: Object.fromEntries(results) }, null, 2));
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const server of servers.splice(0)) await stopServer(server);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    tmp = undefined;
  });
