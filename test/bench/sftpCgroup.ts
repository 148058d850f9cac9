/**
 * CPU of a whole process tree, measured the same way for every server and for the clients: each group runs in its
 * own cgroup, and its CPU is the cgroup's counter (user+sys, nanoseconds, every process that ever lived in it, forked
 * children included, exited or not). That is the only way to count sshd fairly: it forks (and re-executes) a process
 * per connection, and those exit before anyone could read their /proc entries.
 *
 * Hierarchies, first usable wins:
 *   v1 `cpuacct` (/sys/fs/cgroup/cpuacct, or cpu,cpuacct): cpuacct.usage, cpuacct.usage_user, cpuacct.usage_sys;
 *   v2 (/sys/fs/cgroup/unified in hybrid mode, or /sys/fs/cgroup): cpu.stat usage_usec, user_usec, system_usec;
 *   none: a /proc walk of the tree (utime+stime+cutime+cstime of every live member: children reaped inside the tree
 *   are in their parent's cutime), with a warning: orphans reparented to init are lost.
 *
 * Processes are put into a group when they start: the server is spawned through `sh -c 'echo $$ > cgroup.procs;
 * exec server'`, so every process it forks is born inside. The client group holds the bench process itself (see
 * joinSelf), so every `sftp` and `ssh` it spawns is counted there; the bench's own share is reported separately.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuReading {
  /** user+sys, milliseconds. */
  totalMs: number;
  userMs: number;
  sysMs: number;
}

type Kind = 'v1' | 'v2' | 'proc';

interface Hierarchy {
  kind: Kind;
  root: string;
}

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

let hierarchy: Hierarchy | undefined;
export function cgroupHierarchy(): Hierarchy {
  return (hierarchy ??= findHierarchy());
}

export function describeAccounting(): string {
  const h = cgroupHierarchy();
  if (h.kind === 'v1') return `cgroup v1 cpuacct (${h.root}, cpuacct.usage)`;
  if (h.kind === 'v2') return `cgroup v2 (${h.root}, cpu.stat usage_usec)`;
  return 'no writable cgroup: /proc walk of each process tree (exited orphans are not counted)';
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

export class CpuGroup {
  readonly dir: string | undefined;
  /** For the /proc fallback: the tree root. */
  private rootPid: number | undefined;

  constructor(readonly name: string) {
    const h = cgroupHierarchy();
    if (h.kind === 'proc') {
      this.dir = undefined;
      return;
    }
    this.dir = join(h.root, `sftp-bench-${process.pid}-${name}`);
    mkdirSync(this.dir, { recursive: true });
  }

  /**
   * argv that runs `command` inside this group: through sh, which moves itself in and then execs, so the PID of the
   * spawned child is the command's.
   */
  wrap(command: string, args: string[]): { command: string; args: string[] } {
    if (!this.dir) return { command, args };
    const procs = join(this.dir, 'cgroup.procs');
    return { command: '/bin/sh', args: ['-c', `echo $$ > '${procs}' && exec "$0" "$@"`, command, ...args] };
  }

  /** For the /proc fallback: the process whose tree this group is. */
  setRoot(pid: number) {
    this.rootPid = pid;
  }

  /** Moves this very process (all its threads) into the group: everything it spawns from now on is born inside. */
  joinSelf() {
    if (this.dir) writeFileSync(join(this.dir, 'cgroup.procs'), `${process.pid}\n`);
    else this.rootPid = process.pid;
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
      const fields = new Map(
        readFileSync(join(this.dir, 'cpu.stat'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(' ') as [string, string]),
      );
      const us = (k: string) => Number(fields.get(k) ?? 0) / 1000;
      return { totalMs: us('usage_usec'), userMs: us('user_usec'), sysMs: us('system_usec') };
    }
    if (this.rootPid === undefined) return { totalMs: 0, userMs: 0, sysMs: 0 };
    const t = treeTicks(this.rootPid);
    return { totalMs: t.ticks * TICK_MS, userMs: t.userTicks * TICK_MS, sysMs: (t.ticks - t.userTicks) * TICK_MS };
  }

  /** Removes the group; its processes (if any are left) go back to the hierarchy's root first. */
  remove() {
    if (!this.dir || !existsSync(this.dir)) return;
    const h = cgroupHierarchy();
    try {
      const pids = readFileSync(join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          writeFileSync(join(h.root, 'cgroup.procs'), `${pid}\n`);
        } catch {
          // exited meanwhile
        }
      }
      rmdirSync(this.dir);
    } catch {
      // a process still inside (being killed): left for the kernel; harmless and empty soon
    }
  }
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
