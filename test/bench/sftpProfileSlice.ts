/**
 * Cuts a .cpuprofile of ours (BENCH_PROFILE=1 npm run bench:sftp) down to the measured windows of one phase, so that
 * profileSummary.ts shows what the server did during e.g. the 1 GiB download only (not start-up, other phases, idle
 * gaps). V8's profile timestamps and the windows in the results JSON are both CLOCK_MONOTONIC microseconds.
 *   npx tsx test/bench/sftpProfileSlice.ts PROFILE.cpuprofile .bench/sftp-results.json "download aes128-gcm" [SERVER] > OUT.cpuprofile
 *   npx tsx test/bench/profileSummary.ts OUT.cpuprofile
 * Without a phase it lists the phases. Prints to stderr how much of the windows the profile covers.
 */
import { readFileSync } from 'node:fs';

interface Profile {
  nodes: unknown[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}
interface Results {
  windows: Array<{ phase: string; server: string; startUs: number; endUs: number }>;
}

const [profileFile, resultsFile, phase, server = 'ours'] = process.argv.slice(2);
if (!profileFile || !resultsFile) {
  console.error('usage: sftpProfileSlice.ts PROFILE RESULTS.json [PHASE] [SERVER]');
  process.exit(2);
}
const results = JSON.parse(readFileSync(resultsFile, 'utf8')) as Results;
if (!phase) {
  console.error([...new Set(results.windows.map((w) => `${w.phase} (${w.server})`))].join('\n'));
  process.exit(0);
}
const windows = results.windows.filter((w) => w.phase === phase && w.server === server);
if (windows.length === 0) {
  console.error(`no window "${phase}" of ${server} in ${resultsFile}`);
  process.exit(1);
}
const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
const samples: number[] = [];
const deltas: number[] = [];
let t = profile.startTime;
let kept = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const delta = profile.timeDeltas[i] ?? 0;
  t += delta;
  if (windows.some((w) => t >= w.startUs && t <= w.endUs)) {
    samples.push(profile.samples[i]);
    deltas.push(delta);
    kept += delta;
  }
}
const windowUs = windows.reduce((a, w) => a + (w.endUs - w.startUs), 0);
console.error(`${windows.length} window(s) of ${(windowUs / 1e6).toFixed(2)} s; ${(kept / 1e6).toFixed(2)} s of profile samples inside (${samples.length} samples)`);
// profileSummary divides by endTime - startTime: make that the time covered.
process.stdout.write(JSON.stringify({ ...profile, samples, timeDeltas: deltas, startTime: 0, endTime: kept }));
