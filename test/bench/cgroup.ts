/**
 * CPU groups for the benchmarks (bench:sftp, bench:scale): the CPU of a whole process tree, and optionally a CPU quota
 * on it.
 *
 * Accounting: each group runs in its own cgroup, and its CPU is the cgroup's counter (user+sys, nanoseconds, every
 * process that ever lived in it, forked children included, exited or not). That is the only way to count sshd fairly:
 * it forks (and re-executes) a process per connection, and those exit before anyone could read their /proc entries.
 *
 * Accounting hierarchies, first usable wins:
 *   v1 `cpuacct` (/sys/fs/cgroup/cpuacct, or cpu,cpuacct): cpuacct.usage, cpuacct.usage_user, cpuacct.usage_sys;
 *   v2 (/sys/fs/cgroup/unified in hybrid mode, or /sys/fs/cgroup): cpu.stat usage_usec, user_usec, system_usec;
 *   none: a /proc walk of the tree (utime+stime+cutime+cstime of every live member: children reaped inside the tree
 *   are in their parent's cutime), with a warning: orphans reparented to init are lost.
 *
 * Quota (`new CpuGroup(name, { quota })`): the CFS bandwidth controller, which may live in another hierarchy than the
 * accounting (on a v1 machine `cpu` and `cpuacct` are often mounted apart; the group then has a folder in each):
 *   v1 `cpu` (/sys/fs/cgroup/cpu, or cpu,cpuacct): cpu.cfs_period_us, cpu.cfs_quota_us; cpu.stat nr_periods,
 *   nr_throttled, throttled_time (ns);
 *   v2 with the `cpu` controller (enabled for children through the root's cgroup.subtree_control): cpu.max
 *   "QUOTA PERIOD"; cpu.stat nr_periods, nr_throttled, throttled_usec.
 *   A quota that no hierarchy can enforce is an error, never silently ignored.
 *
 * Processes are put into a group when they start: the server is spawned through `sh -c 'echo $$ > cgroup.procs;
 * exec server'` (wrap), so every process it forks is born inside; or moved in by PID right after spawn (join), which
 * moves all its threads, and every thread or child it makes later is born inside. The sftp bench's client group holds
 * the bench process itself (see joinSelf), so every `sftp` and `ssh` it spawns is counted there.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuReading {
  /** user+sys, milliseconds. */
  totalMs: number;
  userMs: number;
  sysMs: number;
}

/** A CFS bandwidth limit: `cpus` cores' worth of time in every period. */
export interface CpuQuota {
  /** 0.25 = a quarter of one core. */
  cpus: number;
  /** Default 100 ms (the kernel's default period). */
  periodUs?: number;
}

/** The quota controller's counters (cumulative since the group was made). */
export interface Throttling {
  /** Periods in which the group ran at all. */
  periods: number;
  /** Periods in which it used up its quota and had to wait for the next one. */
  throttled: number;
  /** Total time its threads waited for quota, milliseconds. */
  throttledMs: number;
}

type Kind = 'v1' | 'v2' | 'proc';

interface Hierarchy {
  kind: Kind;
  root: string;
}

/** Group folders are named `bench-<pid of the bench>-<name>`, so stale ones of a killed run are recognisable. */
const GROUP_PREFIX = 'bench-';

function writable(dir: string): boolean {
  const probe = join(dir, `bench-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

function findHierarchy(): Hierarchy {
  if (process.env.BENCH_CGROUP === 'proc') return { kind: 'proc', root: '' };
  for (const dir of ['/sys/fs/cgroup/cpuacct', '/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/cpuacct,cpu']) {
    if (existsSync(join(dir, 'cpuacct.usage')) && writable(dir)) return { kind: 'v1', root: dir };
  }
  for (const dir of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (existsSync(join(dir, 'cgroup.controllers')) && existsSync(join(dir, 'cgroup.procs')) && writable(dir)) {
      return { kind: 'v2', root: dir };
    }
  }
  return { kind: 'proc', root: '' };
}

const words = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split(/\s+/) : []);

/** The hierarchy that can enforce a CPU quota, or why none can. */
function findQuotaHierarchy(): Hierarchy | string {
  for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/cpuacct,cpu']) {
    if (existsSync(join(dir, 'cpu.cfs_quota_us')) && writable(dir)) return { kind: 'v1', root: dir };
  }
  for (const dir of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (!existsSync(join(dir, 'cgroup.controllers')) || !words(join(dir, 'cgroup.controllers')).includes('cpu') || !writable(dir)) continue;
    try {
      // Children of the root get cpu.max only once the root hands the controller down.
      if (!words(join(dir, 'cgroup.subtree_control')).includes('cpu')) writeFileSync(join(dir, 'cgroup.subtree_control'), '+cpu');
      return { kind: 'v2', root: dir };
    } catch (err) {
      return `cgroup v2 at ${dir} has the cpu controller, but it cannot be enabled for child groups: ${(err as Error).message}`;
    }
  }
  return 'no writable cgroup hierarchy with a CPU quota (v1 /sys/fs/cgroup/cpu with cpu.cfs_quota_us, or v2 with the cpu controller): run as root on Linux';
}

let hierarchy: Hierarchy | undefined;
export function cgroupHierarchy(): Hierarchy {
  return (hierarchy ??= findHierarchy());
}

let quotaHierarchy: Hierarchy | string | undefined;
/** Where quotas go; throws with the reason when nothing here can enforce one. */
export function cgroupQuotaHierarchy(): Hierarchy {
  quotaHierarchy ??= findQuotaHierarchy();
  if (typeof quotaHierarchy === 'string') throw new Error(quotaHierarchy);
  return quotaHierarchy;
}

export function describeAccounting(): string {
  const h = cgroupHierarchy();
  if (h.kind === 'v1') return `cgroup v1 cpuacct (${h.root}, cpuacct.usage)`;
  if (h.kind === 'v2') return `cgroup v2 (${h.root}, cpu.stat usage_usec)`;
  return 'no writable cgroup: /proc walk of each process tree (exited orphans are not counted)';
}

export function describeQuota(): string {
  const h = cgroupQuotaHierarchy();
  return h.kind === 'v1' ? `cgroup v1 cpu (${h.root}, cpu.cfs_period_us / cpu.cfs_quota_us, cpu.stat)` : `cgroup v2 (${h.root}, cpu.max, cpu.stat)`;
}

const TICK_MS = 10; // USER_HZ = 100

interface ProcStat {
  ppid: number;
  ticks: number;
  userTicks: number;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
    return { ppid: Number(f[1]), ticks: utime + stime + cutime + cstime, userTicks: utime + cutime };
  } catch {
    return undefined;
  }
}

/** Sum over the live tree under `pid` (itself included). */
function treeTicks(pid: number): { ticks: number; userTicks: number } {
  const children = new Map<number, number[]>();
  const stats = new Map<number, ProcStat>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = procStat(Number(entry));
    if (!s) continue;
    stats.set(Number(entry), s);
    const list = children.get(s.ppid) ?? [];
    list.push(Number(entry));
    children.set(s.ppid, list);
  }
  let ticks = 0;
  let userTicks = 0;
  const walk = (p: number, depth: number) => {
    const s = stats.get(p);
    if (!s || depth > 64) return;
    ticks += s.ticks;
    userTicks += s.userTicks;
    for (const c of children.get(p) ?? []) walk(c, depth + 1);
  };
  walk(pid, 0);
  return { ticks, userTicks };
}

/** Blocks for `ms` (process 'exit' handlers cannot wait asynchronously). */
function sleepSync(ms: number) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Moves every process of group folder `dir` back to `root`, then removes the folder; retries while the kernel still counts an exiting task. */
function removeGroupDir(dir: string, root: string) {
  for (let attempt = 0; attempt < 10 && existsSync(dir); attempt++) {
    try {
      for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(join(root, 'cgroup.procs'), `${pid}\n`);
        } catch {
          // exited meanwhile
        }
      }
      rmdirSync(dir);
      return;
    } catch {
      sleepSync(20); // EBUSY: a process killed a moment ago is still leaving
    }
  }
  // Still busy after ~200 ms: left for the kernel (an empty group costs nothing); removeStaleGroups() takes it later.
}

/**
 * Removes empty groups that earlier runs left behind (their bench was SIGKILLed before it could clean up): folders
 * named bench-<pid>-… whose pid no longer runs.
 */
export function removeStaleGroups() {
  const roots = [cgroupHierarchy()];
  try {
    roots.push(cgroupQuotaHierarchy());
  } catch {
    // no quota hierarchy: nothing of ours there either
  }
  for (const h of roots) {
    if (h.kind === 'proc' || !existsSync(h.root)) continue;
    for (const entry of readdirSync(h.root)) {
      const m = new RegExp(`^${GROUP_PREFIX}(\\d+)-`).exec(entry);
      if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
      removeGroupDir(join(h.root, entry), h.root);
    }
  }
}

export class CpuGroup {
  /** The accounting folder (undefined with the /proc fallback). */
  readonly dir: string | undefined;
  /** The quota folder: the same as `dir` when one hierarchy does both; undefined without a quota. */
  readonly quotaDir: string | undefined;
  /** The quota in force (undefined: none, or lifted with setQuota(undefined)). */
  quota: Required<CpuQuota> | undefined;
  /** For the /proc fallback: the tree root. */
  private rootPid: number | undefined;

  constructor(
    readonly name: string,
    options: { quota?: CpuQuota } = {},
  ) {
    const h = cgroupHierarchy();
    const folder = `${GROUP_PREFIX}${process.pid}-${name}`;
    this.dir = h.kind === 'proc' ? undefined : join(h.root, folder);
    if (this.dir) mkdirSync(this.dir, { recursive: true });
    if (!options.quota) return;
    this.quotaDir = join(cgroupQuotaHierarchy().root, folder);
    mkdirSync(this.quotaDir, { recursive: true });
    this.setQuota(options.quota);
  }

  /** Sets the quota of a group made with one (its members keep running); undefined lifts it (no limit). */
  setQuota(quota: CpuQuota | undefined) {
    if (!this.quotaDir) throw new Error(`group ${this.name} was made without a quota`);
    const v1 = cgroupQuotaHierarchy().kind === 'v1';
    if (!quota) {
      writeFileSync(join(this.quotaDir, v1 ? 'cpu.cfs_quota_us' : 'cpu.max'), v1 ? '-1' : 'max');
      this.quota = undefined;
      return;
    }
    const { cpus, periodUs = 100_000 } = quota;
    if (!(cpus > 0) || !Number.isInteger(periodUs) || periodUs < 1000 || periodUs > 1_000_000) throw new Error(`bad CPU quota: ${cpus} CPUs per ${periodUs} µs`);
    const quotaUs = Math.max(1000, Math.round(cpus * periodUs));
    if (v1) {
      // Lifted first, then the period, then the quota: the kernel checks a quota against the period in force.
      writeFileSync(join(this.quotaDir, 'cpu.cfs_quota_us'), '-1');
      writeFileSync(join(this.quotaDir, 'cpu.cfs_period_us'), String(periodUs));
      writeFileSync(join(this.quotaDir, 'cpu.cfs_quota_us'), String(quotaUs));
    } else {
      writeFileSync(join(this.quotaDir, 'cpu.max'), `${quotaUs} ${periodUs}`);
    }
    this.quota = { cpus, periodUs };
  }

  /** The distinct cgroup.procs files a member must be in (accounting and quota). */
  private procsFiles(): string[] {
    return [...new Set([this.dir, this.quotaDir].filter((d): d is string => Boolean(d)))].map((d) => join(d, 'cgroup.procs'));
  }

  /**
   * argv that runs `command` inside this group: through sh, which moves itself in and then execs, so the PID of the
   * spawned child is the command's.
   */
  wrap(command: string, args: string[]): { command: string; args: string[] } {
    const files = this.procsFiles();
    if (files.length === 0) return { command, args };
    const moves = files.map((f) => `echo $$ > '${f}'`).join(' && ');
    return { command: '/bin/sh', args: ['-c', `${moves} && exec "$0" "$@"`, command, ...args] };
  }

  /** Moves process `pid` (all its threads) into the group; what it starts from now on is born inside. */
  join(pid: number) {
    for (const file of this.procsFiles()) writeFileSync(file, `${pid}\n`);
    if (!this.dir) this.rootPid = pid;
  }

  /** For the /proc fallback: the process whose tree this group is. */
  setRoot(pid: number) {
    this.rootPid = pid;
  }

  /** Moves this very process (all its threads) into the group: everything it spawns from now on is born inside. */
  joinSelf() {
    this.join(process.pid);
  }

  /** PIDs inside the group right now (the accounting folder; empty with the /proc fallback). */
  pids(): number[] {
    if (!this.dir) return [];
    try {
      return readFileSync(join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  read(): CpuReading {
    const h = cgroupHierarchy();
    if (h.kind === 'v1' && this.dir) {
      const ns = (file: string) => Number(readFileSync(join(this.dir!, file), 'utf8').trim());
      const total = ns('cpuacct.usage') / 1e6;
      let user = ns('cpuacct.usage_user') / 1e6;
      let sys = ns('cpuacct.usage_sys') / 1e6;
      if (!Number.isFinite(user) || !Number.isFinite(sys)) [user, sys] = [total, 0];
      return { totalMs: total, userMs: user, sysMs: sys };
    }
    if (h.kind === 'v2' && this.dir) {
      const fields = statFields(join(this.dir, 'cpu.stat'));
      const us = (k: string) => (fields.get(k) ?? 0) / 1000;
      return { totalMs: us('usage_usec'), userMs: us('user_usec'), sysMs: us('system_usec') };
    }
    if (this.rootPid === undefined) return { totalMs: 0, userMs: 0, sysMs: 0 };
    const t = treeTicks(this.rootPid);
    return { totalMs: t.ticks * TICK_MS, userMs: t.userTicks * TICK_MS, sysMs: (t.ticks - t.userTicks) * TICK_MS };
  }

  /** The quota's counters; zeros for a group without a quota. */
  throttling(): Throttling {
    if (!this.quotaDir) return { periods: 0, throttled: 0, throttledMs: 0 };
    const fields = statFields(join(this.quotaDir, 'cpu.stat'));
    const throttledMs = fields.has('throttled_usec') ? fields.get('throttled_usec')! / 1000 : (fields.get('throttled_time') ?? 0) / 1e6;
    return { periods: fields.get('nr_periods') ?? 0, throttled: fields.get('nr_throttled') ?? 0, throttledMs };
  }

  /** Removes the group; its processes (if any are left) go back to the hierarchy's root first. Synchronous, never throws. */
  remove() {
    if (this.dir) removeGroupDir(this.dir, cgroupHierarchy().root);
    if (this.quotaDir && this.quotaDir !== this.dir) removeGroupDir(this.quotaDir, cgroupQuotaHierarchy().root);
  }
}

function statFields(file: string): Map<string, number> {
  return new Map(
    readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([k, v]) => [k, Number(v)] as const),
  );
}

/** Machine-wide busy/total ticks from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
  const busy = user + nice + system + irq + softirq + (steal ?? 0);
  return { busy, total: busy + idle + iowait };
}

export interface Window {
  wallMs: number;
  /** CLOCK_MONOTONIC in microseconds at the start and the end: the clock of V8's .cpuprofile timestamps. */
  startUs: number;
  endUs: number;
  /** CPU ms of each group over the window. */
  groups: Record<string, number>;
  /** This process alone (the bench driver; it is also inside the client group). */
  benchMs: number;
  machineMs: number;
}

/** Starts a measurement window over some groups. */
export function startWindow(groups: CpuGroup[]) {
  const wall0 = process.hrtime.bigint();
  const g0 = groups.map((g) => g.read().totalMs);
  const self0 = process.cpuUsage();
  const m0 = machineTicks();
  return {
    stop(): Window {
      const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
      const self = process.cpuUsage(self0);
      const m1 = machineTicks();
      const out: Record<string, number> = {};
      groups.forEach((g, i) => (out[g.name] = g.read().totalMs - g0[i]));
      return { wallMs, startUs: Number(wall0 / 1000n), endUs: Number(process.hrtime.bigint() / 1000n), groups: out, benchMs: (self.user + self.system) / 1000, machineMs: (m1.busy - m0.busy) * TICK_MS };
    },
  };
}
