/** Directory listing lines: LIST (`ls -l` style), MLSD/MLST facts (RFC 3659) and MDTM timestamps. */

/** One directory entry; structurally the storage layer's FileStat. */
export interface ListEntry {
  name: string;
  type: 'file' | 'dir';
  size: number;
  mtime: Date;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  /** Stable object id for the MLSx `unique` fact. */
  unique: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY_MS = 24 * 60 * 60 * 1000;
/** Like `ls`: recent entries show the time, others the year. */
const RECENT_PAST_MS = 180 * DAY_MS;
const RECENT_FUTURE_MS = 60 * 60 * 1000;

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `-rw-r--r-- 1 ftp ftp        1234 Nov 25 14:03 name` in UTC. The vsftpd-like layout is the one
 * every client's Unix listing parser understands; owner and link count are not meaningful here.
 */
export function formatListLine(entry: ListEntry, now: Date): string {
  const t = entry.mtime;
  const age = now.getTime() - t.getTime();
  const recent = age <= RECENT_PAST_MS && age >= -RECENT_FUTURE_MS;
  const when = recent ? `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}` : ` ${t.getUTCFullYear()}`;
  const date = `${MONTHS[t.getUTCMonth()]} ${pad(t.getUTCDate())} ${when}`;
  const kind = entry.type === 'dir' ? 'd' : '-';
  return `${kind}${permissionString(entry.mode)} 1 ftp ftp ${String(entry.size).padStart(12)} ${date} ${entry.name}`;
}

function permissionString(mode: number): string {
  let s = '';
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (mode >> shift) & 7;
    s += (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 1 ? 'x' : '-');
  }
  return s;
}

export const MLST_FACTS = ['type', 'size', 'modify', 'perm', 'unique'] as const;
export type MlstFact = (typeof MLST_FACTS)[number];

/**
 * `type=file;size=123;modify=20241125140312;perm=rwadf;unique=801g1a; name`.
 * `opts.facts` (from OPTS MLST) limits the facts shown; they always appear in canonical order.
 */
export function formatMlsxLine(entry: ListEntry, perm: string, opts?: { facts?: readonly string[] }): string {
  const wanted = opts?.facts ? new Set(opts.facts.map((f) => f.toLowerCase())) : undefined;
  let facts = '';
  for (const fact of MLST_FACTS) {
    if (wanted && !wanted.has(fact)) continue;
    const value = factValue(fact, entry, perm);
    if (value !== undefined) facts += `${fact}=${value};`;
  }
  return `${facts} ${entry.name}`;
}

function factValue(fact: MlstFact, entry: ListEntry, perm: string): string | undefined {
  switch (fact) {
    case 'type':
      return entry.type;
    case 'size':
      // A directory's size means nothing to clients; RFC 3659 lets us leave it out.
      return entry.type === 'file' ? String(entry.size) : undefined;
    case 'modify':
      return formatMdtm(entry.mtime, true);
    case 'perm':
      return perm;
    case 'unique':
      return entry.unique;
  }
}

/** The MLST line of the FEAT reply: `type*;size*;modify*;perm*;unique*;`, `*` marking selected facts. */
export function formatFeatMlst(selected: readonly string[]): string {
  const on = new Set(selected.map((f) => f.toLowerCase()));
  return MLST_FACTS.map((f) => `${f}${on.has(f) ? '*' : ''};`).join('');
}

/**
 * Facts chosen by `OPTS MLST type;size;`: known facts only, canonical order, unknown ones ignored
 * (RFC 3659 §7.9). The session replies `200 MLST OPTS <facts joined by ;>;`.
 */
export function selectMlstFacts(arg: string): MlstFact[] {
  const asked = new Set(arg.split(';').map((f) => f.trim().toLowerCase()));
  return MLST_FACTS.filter((f) => asked.has(f));
}

/** `YYYYMMDDHHMMSS` in UTC; with `withMillis`, `.sss` is added when the milliseconds are not zero. */
export function formatMdtm(date: Date, withMillis = false): string {
  const s =
    pad(date.getUTCFullYear(), 4) +
    pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) +
    pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds());
  const ms = date.getUTCMilliseconds();
  return withMillis && ms !== 0 ? `${s}.${pad(ms, 3)}` : s;
}

const MDTM = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,3}))?$/;

/** Parses `YYYYMMDDHHMMSS[.sss]` (UTC, as in MFMT/MDTM); null for malformed text or impossible dates. */
export function parseMdtm(text: string): Date | null {
  const m = MDTM.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const ms = m[7] ? Number(m[7].padEnd(3, '0')) : 0;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, ms);
  // Day overflow (Feb 30 → Mar 2) shows up as a different month.
  return date.getUTCMonth() === month - 1 ? date : null;
}
