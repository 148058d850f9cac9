/** Comparison rows, the printed tables and the JSON file. */
import type { CpuSample } from './cpu';

export const TARGET = 0.8;

export interface Row {
  key: string;
  metric: string;
  unit: string;
  /** 'higher': throughput (ratio = ours / vsftpd); 'lower': latency (ratio = vsftpd / ours). Either way > 1 is better. */
  better: 'higher' | 'lower';
  ours?: number;
  vsftpd?: number;
  /** Rows that are context rather than the headline comparison (e.g. ours without fsync). */
  secondary?: boolean;
  note?: string;
  /** Every round's value (the figure is their median). */
  oursSamples?: number[];
  vsftpdSamples?: number[];
}

/** Median (mean of the middle two for an even count); undefined for no samples. */
export function median(values: number[] | undefined): number | undefined {
  if (!values || values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function ratioOf(row: Row): number | undefined {
  if (row.ours === undefined || row.vsftpd === undefined || !(row.ours > 0) || !(row.vsftpd > 0)) return undefined;
  return row.better === 'higher' ? row.ours / row.vsftpd : row.vsftpd / row.ours;
}

export interface CpuRow {
  phase: string;
  server: string;
  cpu: CpuSample;
}

/** A figure with about three significant digits ('n/a' for none). */
export const fmt = (n: number | undefined, digits = 1) => {
  if (n === undefined || Number.isNaN(n)) return 'n/a';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(digits);
  return n.toFixed(Math.max(digits, 2));
};

/** A plain-text table: a header, a rule, the rows; `rightAlign` per column. */
export function table(headers: string[], rows: string[][], rightAlign: boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const range = (samples: number[] | undefined) => {
  if (!samples || samples.length < 2) return '';
  return `${fmt(Math.min(...samples))}-${fmt(Math.max(...samples))}`;
};

export function renderResults(rows: Row[]): string {
  const body = rows.map((row) => {
    const ratio = ratioOf(row);
    return [
      `${row.metric} (${row.unit})${row.secondary ? ' *' : ''}`,
      fmt(row.ours),
      fmt(row.vsftpd),
      ratio === undefined ? 'n/a' : ratio.toFixed(2),
      ratio === undefined ? '' : ratio >= TARGET ? 'yes' : 'NO',
      range(row.oursSamples),
      range(row.vsftpdSamples),
    ];
  });
  const out = table(['metric', 'ours', 'vsftpd', 'ratio', `>=${TARGET}`, 'ours min-max', 'vsftpd min-max'], body, [false, true, true, true, false, true, true]);
  return rows.some((r) => r.secondary) ? `${out}\n* secondary row: context, not one of the headline figures` : out;
}

export function renderCpu(rows: CpuRow[]): string {
  const body = rows.map((r) => [
    r.phase,
    r.server,
    (r.cpu.wallMs / 1000).toFixed(2),
    `${r.cpu.clientPct.toFixed(0)}%`,
    r.cpu.serverPct === undefined ? '-' : `${r.cpu.serverPct.toFixed(0)}%`,
    `${r.cpu.machinePct.toFixed(0)}% of ${r.cpu.cores * 100}%`,
  ]);
  return table(['phase', 'server', 'wall s', 'client CPU', 'server proc CPU', 'machine CPU'], body, [false, false, true, true, true, true]);
}

export function verdict(rows: Row[]): string {
  const judged = rows.map((row) => ({ row, ratio: ratioOf(row) })).filter((r) => r.ratio !== undefined);
  const reach = judged.filter((r) => r.ratio! >= TARGET).map((r) => `${r.row.metric} ${r.ratio!.toFixed(2)}`);
  const miss = judged.filter((r) => r.ratio! < TARGET).map((r) => `${r.row.metric} ${r.ratio!.toFixed(2)}`);
  const missing = rows.filter((row) => ratioOf(row) === undefined).map((row) => row.metric);
  return (
    `Target ours >= ${TARGET} x vsftpd: reached by ${reach.length}/${judged.length}` +
    (reach.length ? ` [${reach.join('; ')}]` : '') +
    (miss.length ? `; MISSED by ${miss.length}: [${miss.join('; ')}]` : '; none missed') +
    (missing.length ? `; not measured: [${missing.join('; ')}]` : '')
  );
}

/** "median (min–max)" of a bench's rounds. */
export const spread = (values: number[], digits = 1) =>
  values.length === 0 ? 'n/a' : values.length === 1 ? fmt(values[0], digits) : `${fmt(median(values), digits)} (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})`;

/** A progress line with the time of day. */
export function log(message: string) {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** Seconds since a process.hrtime.bigint() reading. */
export const seconds = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e9;
