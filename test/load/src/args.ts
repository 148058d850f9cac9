import { parseDuration } from './units';

/** The command line, k6's where k6 has the flag. */

export interface Args {
  scenario: string;
  vus?: number;
  duration?: number;
  summaryExport?: string;
  thresholds: string[];
  allowRemote: string[];
  out?: string;
  workers?: number;
  quiet: boolean;
  ledger?: string;
}

export const USAGE = `usage: npm run load -- SCENARIO [options]

  SCENARIO                     a scenario module (test/load/scenarios/*.ts) exporting options and partners
  -u, --vus N                  VUs of every scenario (ramping-vus: its peak; arrival-rate: preAllocatedVUs)
  -d, --duration 30s           length of the test: every scenario's start, duration and stages scaled to it
  --summary-export FILE        the end-of-test summary as k6's JSON
  --threshold 'METRIC=EXPR'    add a threshold, e.g. 'ftp_errors=rate<0.01' (repeatable)
  --allow-remote HOST          allow a target outside loopback and 10.200.0.0/16 (repeatable)
  -o, --out otlp=URL           push metrics over OTLP/HTTP while running (or: --out opentelemetry + K6_OTEL_*)
  --workers N                  VU threads (default: CPU cores, at most 4)
  -q, --quiet                  no progress line
  --ledger FILE                append a JSON line per login, upload outcome and download (with sha256s) to FILE;
                               uploads then get contents of their own (for checkers such as test/chaos)
Target: FTP_HOST, FTP_PORT, SFTP_PORT, FTP_USER, FTP_PASSWORD, FTP_KEY_FILE (else the scenario's options.target).
Exit: 0, 99 when a threshold failed, 104 for a bad scenario, flag or target.`;

export function parseArgs(argv: string[]): Args {
  const args: Args = { scenario: '', thresholds: [], allowRemote: [], quiet: false };
  const positive = (flag: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} ${v}: a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '-u':
      case '--vus':
        args.vus = positive(flag, value());
        break;
      case '-d':
      case '--duration':
        args.duration = parseDuration(value(), flag);
        if (!(args.duration > 0)) throw new Error(`${flag}: longer than 0`);
        break;
      case '--summary-export':
        args.summaryExport = value();
        break;
      case '--threshold':
        args.thresholds.push(value());
        break;
      case '--allow-remote':
        args.allowRemote.push(value());
        break;
      case '-o':
      case '--out':
        args.out = value();
        break;
      case '--workers':
        args.workers = positive(flag, value());
        break;
      case '-q':
      case '--quiet':
        args.quiet = true;
        break;
      case '--ledger':
        args.ledger = value();
        break;
      case '-h':
      case '--help':
        throw new Error(USAGE);
      default:
        if (flag.startsWith('-')) throw new Error(`unknown option ${flag}\n${USAGE}`);
        if (args.scenario) throw new Error(`one scenario file only (got ${args.scenario} and ${arg})`);
        args.scenario = arg;
    }
  }
  if (!args.scenario) throw new Error(USAGE);
  return args;
}
