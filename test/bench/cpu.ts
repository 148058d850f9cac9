/**
 * CPU accounting for one measurement, to show who was busy: the bench client (this process), the server process
 * (when it is one process: ours; vsftpd's per-session processes cannot be summed reliably), and the whole machine.
 * Percentages are of one core, so on 2 cores the machine can reach 200 %.
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';

export interface CpuSample {
  wallMs: number;
  /** This process (the load generator). */
  clientPct: number;
  /** The server's own process, when it is a single process (ours); undefined for vsftpd. */
  serverPct?: number;
  /** All cores, everything (user+system+irq+softirq+steal). */
  machinePct: number;
  cores: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
  const busy = user + nice + system + irq + softirq + (steal ?? 0);
  return { busy, total: busy + idle + iowait };
}

/** utime + stime of process `pid` (all its threads) in clock ticks (10 ms), from /proc/PID/stat; undefined once it is gone. */
export function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return undefined;
  }
}

export function startCpuMeter(server: { pid: number; name: string }) {
  const single = server.name !== 'vsftpd';
  const wall0 = process.hrtime.bigint();
  const client0 = process.cpuUsage();
  const machine0 = machineTicks();
  const server0 = single ? processTicks(server.pid) : undefined;
  return {
    stop(): CpuSample {
      const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
      const client = process.cpuUsage(client0);
      const machine1 = machineTicks();
      const server1 = single ? processTicks(server.pid) : undefined;
      const pct = (ms: number) => Math.round((1000 * ms) / wallMs) / 10;
      const ticksMs = (ticks: number) => (ticks * 1000) / TICKS_PER_SECOND;
      return {
        wallMs,
        clientPct: pct((client.user + client.system) / 1000),
        serverPct: server0 !== undefined && server1 !== undefined ? pct(ticksMs(server1 - server0)) : undefined,
        machinePct: pct(ticksMs(machine1.busy - machine0.busy)),
        cores: cpus().length,
      };
    },
  };
}

/** Machine CPU busy over `ms` while the bench itself is idle: load from outside the bench makes figures noisy. */
export async function backgroundLoad(ms = 2000): Promise<number> {
  const before = machineTicks();
  await new Promise((r) => setTimeout(r, ms));
  const after = machineTicks();
  return Math.round((1000 * ((after.busy - before.busy) * 1000)) / TICKS_PER_SECOND / ms) / 10;
}
