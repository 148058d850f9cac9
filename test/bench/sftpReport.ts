/** Rows, ratios and tables of `npm run bench:sftp` (ours vs OpenSSH's sshd, with an A/A control). */

export interface SftpRow {
  key: string;
  metric: string;
  unit: string;
  /** 'higher': ratio = ours / openssh; 'lower' (latency, CPU cost): ratio = openssh / ours. Either way > 1 is better for ours. */
  better: 'higher' | 'lower';
  /** Ratio to reach (undefined: context only). */
  target?: number;
  /** Server name whose samples are "ours" here (ours, or ours-fsync for the secondary rows). */
  oursFrom: string;
  secondary?: boolean;
  /** Samples per server name, one per round. */
  samples: Record<string, number[]>;
}

export function median(values: number[] | undefined): number | undefined {
  if (!values || values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function ratio(better: SftpRow['better'], ours: number | undefined, theirs: number | undefined): number | undefined {
  if (ours === undefined || theirs === undefined || !(ours > 0) || !(theirs > 0)) return undefined;
  return better === 'higher' ? ours / theirs : theirs / ours;
}

export function rowRatio(row: SftpRow): number | undefined {
  return ratio(row.better, median(row.samples[row.oursFrom]), median(row.samples.openssh));
}

/** The A/A control: the second sshd against the first, in the same direction as the row's ratio. */
export function rowControl(row: SftpRow): number | undefined {
  return ratio(row.better, median(row.samples['openssh-b']), median(row.samples.openssh));
}

export const fmt = (n: number | undefined, digits = 1) => {
  if (n === undefined || Number.isNaN(n)) return 'n/a';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(digits);
  return n.toFixed(Math.max(digits, 2));
};

export function table(headers: string[], rows: string[][], rightAlign: boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (rightAlign[i] ? (c ?? '').padStart(widths[i]) : (c ?? '').padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const rounds = (samples: number[] | undefined) => (samples && samples.length ? samples.map((v) => fmt(v)).join(' / ') : '');

export function renderRows(rows: SftpRow[]): string {
  const body = rows.map((row) => {
    const r = rowRatio(row);
    const aa = rowControl(row);
    return [
      `${row.metric} (${row.unit})${row.secondary ? ' *' : ''}`,
      fmt(median(row.samples[row.oursFrom])),
      fmt(median(row.samples.openssh)),
      r === undefined ? 'n/a' : r.toFixed(2),
      row.target === undefined ? '' : `>=${row.target}`,
      row.target === undefined || r === undefined ? '' : r >= row.target ? 'yes' : 'NO',
      aa === undefined ? '' : aa.toFixed(2),
      rounds(row.samples[row.oursFrom]),
      rounds(row.samples.openssh),
      rounds(row.samples['openssh-b']),
    ];
  });
  return table(
    ['metric', 'ours', 'openssh', 'ratio', 'target', 'met', 'A/A', 'ours rounds', 'openssh rounds', 'openssh-b rounds'],
    body,
    [false, true, true, true, false, false, true, true, true, true],
  );
}

export function verdict(rows: SftpRow[]): string {
  const judged = rows.filter((r) => r.target !== undefined && !r.secondary);
  const parts = judged.map((row) => {
    const r = rowRatio(row);
    const aa = rowControl(row);
    const state = r === undefined ? 'not measured' : r >= row.target! ? 'MET' : 'MISSED';
    return `${row.metric}: ${r === undefined ? 'n/a' : r.toFixed(2)} vs target ${row.target} -> ${state}${aa !== undefined ? ` (A/A ${aa.toFixed(2)})` : ''}`;
  });
  const met = judged.filter((row) => (rowRatio(row) ?? 0) >= row.target!).length;
  return [`Targets met: ${met}/${judged.length}`, ...parts.map((p) => `  - ${p}`)].join('\n');
}

export interface CpuLine {
  phase: string;
  server: string;
  /** Mean over rounds. */
  wallS: number;
  serverMs: number;
  clientMs: number;
  benchMs: number;
  machinePct: number;
  /** What one unit is (MB, file, session) and how many units were moved. */
  unit: string;
  units: number;
}

export function renderCpu(lines: CpuLine[], cores: number): string {
  const body = lines.map((l) => {
    const wall = l.wallS * 1000;
    return [
      l.phase,
      l.server,
      l.wallS.toFixed(2),
      `${((100 * l.serverMs) / wall).toFixed(0)}%`,
      `${((100 * l.clientMs) / wall).toFixed(0)}%`,
      `${((100 * l.benchMs) / wall).toFixed(0)}%`,
      `${l.machinePct.toFixed(0)}% of ${cores * 100}%`,
      `${Math.max(0, l.machinePct - (100 * (l.serverMs + l.clientMs)) / wall).toFixed(0)}%`,
      `${fmt(l.serverMs / l.units, 2)} ms/${l.unit}`,
      `${fmt(l.clientMs / l.units, 2)} ms/${l.unit}`,
    ];
  });
  return table(
    ['phase', 'server', 'wall s', 'server CPU', 'client CPU', '(bench)', 'machine', 'others', 'server CPU per unit', 'client CPU per unit'],
    body,
    [false, false, true, true, true, true, true, true, true, true],
  );
}
