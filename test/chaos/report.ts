import type { FaultRecord } from './faults';
import type { Ledger } from './ledgerFiles';
import { judgeGrowth, type ProcessSeries, type SessionSample } from './monitor';
import type { ResumeResult } from './resume';
import type { Verdict } from './verify';

/** What the run prints at its end: the verdict table, the checks, the faults with their effect on the traffic, the replicas' memory. */

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const pad = (v: string | number, n: number) => String(v).padStart(n);

export function verdictTable(v: Verdict): string[] {
  const u = v.uploads;
  const d = v.downloads;
  const rows = [
    ['operation', 'attempted', 'acknowledged', 'verified', 'lost', 'duplicated'],
    ['uploads (files)', u.files, u.acknowledged, u.verified, u.lost, u.duplicated],
    ['upload operations', u.operations, '', '', '', ''],
    ['downloads', d.attempted, d.attempted - d.failed, d.verified, d.foreign + d.truncated + d.wrong, ''],
    ['logins', v.logins.attempted, v.logins.ok, '', '', ''],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const by = u.duplicatedBy;
  const rb = v.webhooks.redeliveredBy;
  return [
    ...rows.map((r) => '  ' + r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : pad(c, widths[i]))).join('  ')),
    `  duplicated by cause: ${by['partial-published']} partial published then resumed (two jobs), ${by.other} other (two files, sidecars or jobs, a redelivery saying something else)`,
    `  downloads not byte-exact: ${d.foreign} another upload's bytes, ${d.truncated} truncated, ${d.wrong} other bytes (each after the server's 226 / EOF)`,
    `  unacknowledged uploads: ${u.unacknowledged} = ${u.absent} absent + ${u.resumablePartial} resumable partial + ${u.completedWithoutAck} complete (226 lost)` +
      ` + ${u.wrongUnderName} with other bytes under the final name + ${u.unacknowledged - u.absent - u.resumablePartial - u.completedWithoutAck - u.wrongUnderName} corrupt partial`,
    `  storage: ${v.storage.files} files, ${v.storage.sidecars} sidecars, ${v.storage.partials} partials, ${v.storage.otherHidden} other hidden; ` +
      `${v.storage.wrongContent} with wrong bytes, ${v.storage.unknown} unknown, ${v.storage.corruptPartials} corrupt partials, ${v.storage.orphanSidecars} orphan sidecars`,
    `  webhooks: ${v.webhooks.successes} successful deliveries of ${v.webhooks.uploadIds} upload ids (${v.webhooks.deliveries} requests), ${v.webhooks.redelivered} ids delivered twice or more`,
    `  redeliveries by cause (each applied once; ${v.webhooks.dropped} repeat(s) dropped by the receiver): ${rb['worker-kill']} across a worker SIGKILL, ` +
      `${rb['lock-loss']} after its worker lost the job lock, ${rb.timeout} retried after the worker's request timed out, ${rb.other} other`,
    ...v.webhooks.redeliveries.slice(0, 5).map((line) => `    ${line}`),
    ...(v.webhooks.redeliveries.length > 5 ? [`    … and ${v.webhooks.redeliveries.length - 5} more`] : []),
    `acknowledged: ${u.acknowledged}`,
    `lost: ${u.lost}`,
    `duplicated: ${u.duplicated}`,
    `redelivered (same x-ftp-delivery, dropped by the receiver): ${v.webhooks.redelivered}`,
  ];
}

interface Window {
  from: number;
  to: number;
}

/** Per fault: acknowledged uploads and logins in the 10 s after it started (or while it held), next to the run's rates. */
export function faultImpact(ledger: Ledger, t0: number, loadMs: number, records: FaultRecord[]): string[] {
  const acks = ledger.uploads.filter((u) => u.acknowledged && u.at >= t0 && u.at <= t0 + loadMs).map((u) => u.at - t0);
  const logins = ledger.logins.filter((l) => l.at >= t0 && l.at <= t0 + loadMs);
  const windowOf = (r: FaultRecord): Window => ({ from: r.startedAt, to: Math.max(r.startedAt + 10_000, r.planned.holdMs ? r.endedAt : 0) });
  const windows = records.filter((r) => !r.skipped).map(windowOf);
  const inAny = (t: number) => windows.some((w) => t >= w.from && t < w.to);
  // Time inside some window (the union), to turn counts into rates.
  let covered = 0;
  let edge = 0;
  for (const w of [...windows].sort((a, b) => a.from - b.from)) {
    const from = Math.max(w.from, edge);
    const to = Math.min(w.to, loadMs);
    if (to > from) covered += to - from;
    edge = Math.max(edge, to);
  }
  const rate = (n: number, ms: number) => (ms > 0 ? (n / (ms / 1000)).toFixed(1) : '-');
  const loginOk = logins.filter((l) => l.ok).map((l) => l.at - t0);
  const loginBad = logins.filter((l) => !l.ok).map((l) => l.at - t0);
  const lines = [
    `  overall: ${rate(acks.length, loadMs)} acknowledged uploads/s, ${rate(loginOk.length, loadMs)} logins/s, ${loginBad.length} failed logins in ${sec(loadMs)}`,
    `  during faults (${sec(covered)}): ${rate(acks.filter(inAny).length, covered)} uploads/s, ${rate(loginOk.filter(inAny).length, covered)} logins/s, ${loginBad.filter(inAny).length} failed logins; ` +
      `outside (${sec(loadMs - covered)}): ${rate(acks.filter((t) => !inAny(t)).length, loadMs - covered)} uploads/s, ${rate(loginOk.filter((t) => !inAny(t)).length, loadMs - covered)} logins/s, ${loginBad.filter((t) => !inAny(t)).length} failed logins`,
    `  ${'#'.padStart(3)}  ${'start'.padStart(7)}  ${'fault'.padEnd(15)}  ${'up/s'.padStart(5)}  ${'login/s'.padStart(7)}  ${'failed logins'.padStart(13)}  ${'recovery'.padStart(8)}`,
  ];
  for (const r of records) {
    const w = windowOf(r);
    const ms = Math.min(w.to, loadMs) - w.from;
    const within = (t: number) => t >= w.from && t < w.to;
    lines.push(
      `  ${pad(r.planned.n, 3)}  ${pad(sec(r.startedAt), 7)}  ${r.planned.kind.padEnd(15)}  ${pad(rate(acks.filter(within).length, ms), 5)}  ${pad(rate(loginOk.filter(within).length, ms), 7)}  ` +
        `${pad(loginBad.filter(within).length, 13)}  ${pad(r.recoveryMs === undefined ? '-' : sec(r.recoveryMs), 8)}${r.skipped ? '  (skipped)' : ''}${r.ok ? '' : '  FAILED'}`,
    );
  }
  return lines;
}

/**
 * Redis failovers: how long no login could complete. From the kill to the end of the first successful login begun
 * after it (logins wait for the promoted replica rather than fail), p50 and max over the run's failovers.
 */
export function failoverFigures(ledger: Ledger, t0: number, records: FaultRecord[]): string[] {
  const gaps: number[] = [];
  const lines: string[] = [];
  for (const r of records.filter((x) => x.planned.kind === 'redis-failover' && x.ok)) {
    const kill = t0 + r.startedAt;
    const first = ledger.logins.filter((l) => l.ok && l.at - l.ms >= kill).sort((a, b) => a.at - b.at)[0];
    const failed = ledger.logins.filter((l) => !l.ok && l.at >= kill && l.at < kill + 15_000);
    if (!first) continue;
    gaps.push(first.at - kill);
    const reasons = new Map<string, number>();
    for (const l of failed) reasons.set(`${l.protocol} ${l.error}`, (reasons.get(`${l.protocol} ${l.error}`) ?? 0) + 1);
    const why = [...reasons].map(([reason, n]) => `${n} × ${reason}`).join(', ');
    lines.push(
      `  #${r.planned.n} at +${sec(r.startedAt)}: promoted after ${sec(r.recoveryMs ?? 0)}; first login begun after the kill done at +${sec(first.at - kill)}; ` +
        `${failed.length} failed login(s) in the 15 s after${why ? ` (${why}; ended at +${failed.map((l) => sec(l.at - kill)).join(', +')})` : ''}`,
    );
  }
  if (gaps.length) {
    const sorted = [...gaps].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
    lines.unshift(`  "no login possible" window: p50 ${sec(q(0.5))}, p99 ${sec(q(0.99))} over ${gaps.length} failover(s)`);
  }
  return lines;
}

export function memoryLines(series: ProcessSeries[]): { lines: string[]; check: Check } {
  const lines: string[] = [];
  const replicas = [...new Set(series.map((s) => s.replica))].sort();
  const flagged: string[] = [];
  for (const replica of replicas) {
    const mine = series.filter((s) => s.replica === replica);
    const all = mine.flatMap((s) => s.samples);
    if (!all.length) continue;
    const rss = all.map((x) => x.rssBytes);
    const fds = all.map((x) => x.fds);
    const judged = mine.map((s) => judgeGrowth(s));
    const longest = Math.max(...mine.map((s) => (s.samples.length ? s.samples[s.samples.length - 1].t - s.firstSeen : 0)));
    const verdicts = judged.filter((j) => j.judged);
    for (const j of verdicts.filter((x) => x.unbounded.length)) flagged.push(`${replica} pid ${j.series.pid}: ${j.unbounded.join(' and ')} grew from ${mib(j.baseline!.rssBytes)}/${j.baseline!.fds} fds to ${mib(j.end!.rssBytes)}/${j.end!.fds} fds and still rising`);
    lines.push(
      `  ${replica}: ${mine.length} process(es), ${all.length} samples; RSS ${mib(Math.min(...rss))}–${mib(Math.max(...rss))}, fds ${Math.min(...fds)}–${Math.max(...fds)}; ` +
        `longest-lived ${sec(longest)}; ${verdicts.length} judged (≥ 60 s after a 20 s warm-up), ${verdicts.filter((x) => x.unbounded.length).length} growing without bound`,
    );
  }
  const judgedAny = series.some((s) => judgeGrowth(s).judged);
  return {
    lines,
    check: {
      name: 'replica memory and fds bounded',
      ok: flagged.length === 0,
      detail: flagged.length ? flagged.join('; ') : judgedAny ? 'no process doubled its RSS or fds after warm-up while still rising at the end' : 'no process lived long enough to be judged (see the rule in monitor.ts)',
    },
  };
}

/** The edges' log line of a login refused because its user had `max_sessions` sessions already (login.ts). */
const LIMIT_REFUSAL = 'login refused: too many sessions for this user';

/** Logins refused for the per-user session limit, by user, from the edges' log lines ('gone' refusals not counted). */
export function limitRefusals(logs: Record<string, unknown>[]): Record<string, number> {
  const by: Record<string, number> = {};
  for (const line of logs) {
    if (line.msg === LIMIT_REFUSAL && line.reason === 'max-per-user') by[String(line.user)] = (by[String(line.user)] ?? 0) + 1;
  }
  return by;
}

/**
 * The per-user session limit: the most live sessions any sample saw for each user (and when), next to its
 * max_sessions, and the logins the edges refused for it. Fails when any sample saw more than the limit, or when there
 * was no sample at all (nothing checked).
 */
export function sessionLimitLines(samples: SessionSample[], missed: number, limits: Record<string, number>, refused: Record<string, number>): { lines: string[]; check: Check } {
  const users = Object.keys(limits);
  const lines: string[] = [];
  const maxima: string[] = [];
  const over: string[] = [];
  for (const user of users) {
    const limit = limits[user];
    let max = 0;
    let maxAt = 0;
    for (const x of samples) if ((x.live[user] ?? 0) > max) [max, maxAt] = [x.live[user], x.t];
    const atLimit = samples.filter((x) => x.live[user] === limit).length;
    const above = samples.filter((x) => x.live[user] > limit);
    lines.push(
      `  ${user}: max ${max} live session(s) (limit ${limit})${max ? ` at +${sec(maxAt)}` : ''}; at the limit in ${atLimit} of ${samples.length} samples, above it in ${above.length}; ` +
        `${refused[user] ?? 0} login(s) refused for the limit`,
    );
    maxima.push(`${user} ${max} (limit ${limit})`);
    if (above.length) over.push(`${user} ${Math.max(...above.map((x) => x.live[user]))} > ${limit} in ${above.length} sample(s), first at +${sec(above[0].t)}`);
  }
  const refusedTotal = users.reduce((t, u) => t + (refused[u] ?? 0), 0);
  return {
    lines,
    check: {
      name: "no session exceeded its user's limits",
      ok: samples.length > 0 && over.length === 0,
      detail:
        `max live sessions per user ${maxima.join(', ')}; ${samples.length} samples${missed ? ` (${missed} missed)` : ''}; ${refusedTotal} login(s) refused for the user limit` +
        (over.length ? `; EXCEEDED: ${over.join('; ')}` : '') +
        (samples.length ? '' : '; no sample of the cluster state, nothing checked'),
    },
  };
}

export function resumeLines(results: ResumeResult[], candidates: number): { lines: string[]; check: Check } {
  const lines = results.map((r) => `  ${r.key}: partial ${r.partialBytes} of ${r.size} bytes → ${r.detail}`);
  const bad = results.filter((r) => !r.ok);
  return {
    lines,
    check: {
      name: 'a sample of failed uploads resumed byte-exact (curl -C -)',
      ok: bad.length === 0,
      detail: results.length ? `${results.length - bad.length} of ${results.length} (from ${candidates} resumable partials)` : `no resumable partial to try (${candidates})`,
    },
  };
}
