// What durable uploads cost on this disk: one fsync / fdatasync / directory fsync, and small-file commit throughput
// through the storage API (no network, no FTP), with FTP_FSYNC_UPLOADS on and off.
// Usage: npx tsx test/bench/fsyncCost.ts
//   BENCH_DIR=.bench/fsync-cost   where the files are written (the folder the data would live in; emptied at the end)
//   BENCH_SYNC_ITER=500           iterations of each syscall loop, per round
//   BENCH_FILES=1000              4 KiB uploads per throughput window
//   BENCH_REPEAT=5                rounds; every figure printed is the median of the rounds (min–max beside it)
//   BENCH_BASELINE=path/local.ts  also measure another copy of the local backend (e.g. the code before a change),
//                                 alternated with the current one within each round
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createLocalStorage as currentLocalStorage, type Storage } from '@ftp/storage';
import { envInt } from './env';

type MakeStorage = (options: { root: string; fsync?: boolean; metadataIo?: 'sync' | 'async' }) => Storage;

const DIR = path.resolve(process.env.BENCH_DIR ?? '.bench/fsync-cost');
const ITER = envInt('BENCH_SYNC_ITER', 500);
const FILES = envInt('BENCH_FILES', 1000);
const ROUNDS = envInt('BENCH_REPEAT', 5);
const PAYLOAD = Buffer.alloc(4096, 0x61);

const implementations: { name: string; make: MakeStorage }[] = [{ name: 'current', make: currentLocalStorage }];
if (process.env.BENCH_BASELINE) {
  const mod = (await import(pathToFileURL(path.resolve(process.env.BENCH_BASELINE)).href)) as { createLocalStorage: MakeStorage };
  implementations.push({ name: 'baseline', make: mod.createLocalStorage });
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const median = (xs: number[]) => quantile(xs, 0.5);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
/** Untimed: write back what earlier phases left dirty, so it is not paid inside the next window. */
const settle = () => execSync('sync');

/** One round of a syscall loop: the time of `timed` per iteration (ms), with `prepare` run untimed before each. */
function loop(name: string, prepare: (i: number) => number, timed: (fd: number, i: number) => void, cleanup: (fd: number, i: number) => void): number[] {
  const times: number[] = [];
  for (let i = 0; i < ITER; i++) {
    const fd = prepare(i);
    const t0 = nowMs();
    timed(fd, i);
    times.push(nowMs() - t0);
    cleanup(fd, i);
  }
  if (times.length === 0) throw new Error(`${name}: no samples`);
  return times;
}

async function loopAsync(prepare: (i: number) => number, timed: (fd: number, i: number) => Promise<void>, cleanup: (fd: number, i: number) => void): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < ITER; i++) {
    const fd = prepare(i);
    const t0 = nowMs();
    await timed(fd, i);
    times.push(nowMs() - t0);
    cleanup(fd, i);
  }
  return times;
}

const fsyncOnPool = promisify(fs.fsync);

async function syscallRound(round: number): Promise<Record<string, number[]>> {
  const dir = path.join(DIR, `sys-${round}`);
  fs.mkdirSync(dir, { recursive: true });
  const newFile = (tag: string) => (i: number) => fs.openSync(path.join(dir, `${tag}-${i}`), 'wx');
  const close = (fd: number) => fs.closeSync(fd);
  const results: Record<string, number[]> = {};
  settle();
  results['write 4 KiB + fsync (new file)'] = loop('fsync', newFile('s'), (fd) => (fs.writeSync(fd, PAYLOAD), fs.fsyncSync(fd)), close);
  settle();
  results['write 4 KiB + fdatasync (new file)'] = loop('fdatasync', newFile('d'), (fd) => (fs.writeSync(fd, PAYLOAD), fs.fdatasyncSync(fd)), close);
  settle();
  // What a commit adds: rename the (already flushed) file to its final name, then flush the directory.
  const flushed = (i: number) => {
    const fd = fs.openSync(path.join(dir, `.r-${i}.part`), 'wx');
    fs.writeSync(fd, PAYLOAD);
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
    return fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  };
  results['rename + directory fsync'] = loop('dir', flushed, (dirFd, i) => (fs.renameSync(path.join(dir, `.r-${i}.part`), path.join(dir, `r-${i}`)), fs.fsyncSync(dirFd)), close);
  settle();
  // The same, with the fsync on libuv's thread pool as commit() does it: adds the pool's round trip.
  results['rename + directory fsync (thread pool)'] = await loopAsync(
    (i) => flushed(ITER + i),
    async (dirFd, i) => (fs.renameSync(path.join(dir, `.r-${ITER + i}.part`), path.join(dir, `r-${ITER + i}`)), await fsyncOnPool(dirFd)),
    close,
  );
  settle();
  results['directory fsync, nothing changed'] = loop('dir-clean', () => fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY), (dirFd) => fs.fsyncSync(dirFd), close);
  fs.rmSync(dir, { recursive: true, force: true });
  return results;
}

/** FILES uploads of 4 KiB into one fresh directory, `writers` at a time, through Storage: files per second. */
async function throughput(make: MakeStorage, fsync: boolean, writers: number, tag: string): Promise<number> {
  const root = path.join(DIR, tag);
  fs.mkdirSync(path.join(root, 'in'), { recursive: true });
  const storage = make({ root, fsync, metadataIo: 'sync' });
  // Warm-up (JIT, code paths) in another directory, then start from clean pages.
  for (let i = 0; i < 20; i++) await uploadOne(storage, `/warm-${i}`);
  settle();
  let next = 0;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let i = next++; i < FILES; i = next++) await uploadOne(storage, `/in/f-${i}`);
    }),
  );
  const elapsed = nowMs() - t0;
  if (fs.readdirSync(path.join(root, 'in')).length !== FILES) throw new Error(`${tag}: expected ${FILES} files`);
  fs.rmSync(root, { recursive: true, force: true });
  return (FILES / elapsed) * 1000;
}

async function uploadOne(storage: Storage, vpath: string): Promise<void> {
  const upload = await storage.openUpload(vpath, { kind: 'replace' });
  upload.stream.end(PAYLOAD);
  await upload.commit();
}

fs.mkdirSync(DIR, { recursive: true });
const fsType = execSync(`findmnt -n -o FSTYPE -T ${JSON.stringify(DIR)}`).toString().trim();
const device = execSync(`df --output=source ${JSON.stringify(DIR)} | tail -1`).toString().trim();
console.log(`fsync cost in ${DIR} (${fsType} on ${device}), ${ROUNDS} rounds; figures are medians of the rounds (min–max of the rounds)`);

const syscalls: Record<string, { p50: number[]; p99: number[] }> = {};
const rates: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, times] of Object.entries(await syscallRound(round))) {
    syscalls[name] ??= { p50: [], p99: [] };
    syscalls[name].p50.push(median(times));
    syscalls[name].p99.push(quantile(times, 0.99));
  }
  // Alternate everything within the round (and the code's order from round to round), so a burst of outside load
  // hits every variant alike.
  for (const writers of [1, 8]) {
    for (const fsync of [true, false]) {
      for (const impl of round % 2 ? [...implementations].reverse() : implementations) {
        const key = `${impl.name}|${fsync ? 'on' : 'off'}|${writers}`;
        (rates[key] ??= []).push(await throughput(impl.make, fsync, writers, `tp-${round}-${impl.name}-${fsync}-${writers}`));
      }
    }
  }
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}

const ms = (x: number) => x.toFixed(3);
const span = (xs: number[], f: (x: number) => string) => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
console.log(`\none syscall, ${ITER} iterations per round (ms)`);
console.log(`  ${'operation'.padEnd(38)} ${'median'.padEnd(24)} p99`);
for (const [name, { p50, p99 }] of Object.entries(syscalls)) console.log(`  ${name.padEnd(38)} ${span(p50, ms).padEnd(24)} ${span(p99, ms)}`);
console.log(`\n${FILES} × 4 KiB uploads into one directory through Storage (metadataIo sync), files/s`);
console.log(`  ${'code'.padEnd(10)} ${'fsync'.padEnd(6)} ${'1 writer'.padEnd(24)} 8 writers`);
for (const impl of implementations) {
  for (const fsync of ['on', 'off']) {
    const cell = (w: number) => span(rates[`${impl.name}|${fsync}|${w}`], (x) => x.toFixed(0));
    console.log(`  ${impl.name.padEnd(10)} ${fsync.padEnd(6)} ${cell(1).padEnd(24)} ${cell(8)}`);
  }
}
// Ratios within each round (the variants ran back to back there), then their median: steadier than a ratio of medians.
const ratio = (a: string, b: string) => span(rates[a].map((x, i) => x / rates[b][i]), (x) => x.toFixed(2));
console.log('\nratios, median of the per-round ratios (min–max)');
const pairs: [string, string, string][] = [['current fsync on / off', 'current|on', 'current|off']];
if (implementations.length > 1) pairs.push(['current / baseline, fsync on', 'current|on', 'baseline|on'], ['baseline fsync on / off', 'baseline|on', 'baseline|off']);
for (const [label, a, b] of pairs) console.log(`  ${label.padEnd(30)} 1 writer ${ratio(`${a}|1`, `${b}|1`).padEnd(20)} 8 writers ${ratio(`${a}|8`, `${b}|8`)}`);
fs.rmSync(DIR, { recursive: true, force: true });
