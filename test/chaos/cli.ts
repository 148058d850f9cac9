import { runChaos } from './run';
import { FAULT_KINDS, parseKinds, type FaultKind } from './schedule';

/**
 * `npm run chaos -- [--duration SECONDS] [--seed N] [--faults kind,…] [--resume-sample N] [--evidence DIR]`: one chaos run (run.ts);
 * exit 0 when nothing was lost or duplicated and every check passed, 1 otherwise, 2 for a bad flag.
 */

const USAGE = `usage: npm run chaos -- [--duration SECONDS] [--seed N] [--faults KIND,…] [--resume-sample N]
  --duration SECONDS   length of the load (default 120); faults run during it
  --seed N             the fault schedule's seed (default: random, printed)
  --faults KIND,…      which faults (default all): ${FAULT_KINDS.join(', ')}; none: a baseline
  --resume-sample N    failed uploads to resume with curl afterwards (default 5)
  --evidence DIR       keep the ledger, webhook deliveries, edge and worker logs and the generator's output in DIR`;

function parse(argv: string[]) {
  const o: { durationS: number; seed: number; kinds?: FaultKind[]; resumeSample?: number; evidenceDir?: string } = { durationS: 120, seed: Math.floor(Math.random() * 2 ** 31) };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag}: an integer of at least ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].includes('=') ? argv[i].split(/=(.*)/s) : [argv[i], undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--duration':
      case '-d':
        o.durationS = int(flag, value()?.replace(/s$/, ''), 20);
        break;
      case '--seed':
        o.seed = int(flag, value(), 0);
        break;
      case '--faults':
        o.kinds = parseKinds(value() ?? '');
        break;
      case '--resume-sample':
        o.resumeSample = int(flag, value(), 0);
        break;
      case '--evidence':
        o.evidenceDir = value();
        if (!o.evidenceDir) throw new Error('--evidence needs a folder');
        break;
      case '-h':
      case '--help':
        throw new Error(USAGE);
      default:
        throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    }
  }
  return o;
}

let options: ReturnType<typeof parse>;
try {
  options = parse(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
runChaos(options).then(
  (result) => process.stdout.write('', () => process.exit(result.ok ? 0 : 1)),
  (err: Error) => {
    process.stderr.write(`chaos run failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
