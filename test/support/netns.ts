/**
 * Real links for tests and benches: a client in a network namespace of its own, reaching servers in the root namespace
 * through a router namespace that delays, drops and rate-limits packets. Nothing leaves the machine.
 *
 *   root namespace (servers)                 ftpt-<pid>-<n>-router                     ftpt-<pid>-<n>-client
 *   ftpt<X>s 10.200.X.130/25 ──veth── rs 10.200.X.129/25 · rc 10.200.X.1/25 ──veth── link0 10.200.X.2/25
 *
 * Servers run where tests already start them (the root namespace, even in the test's own process) and bind only to
 * `link.serverAddress`, the root end of this run's veth pair; clients run in the client namespace (`link.runClient`).
 * X is claimed atomically: the root end's name `ftpt<X>s` can exist once, so parallel runs get distinct subnets.
 *
 * The profile applies in the router, to both directions alike: half the RTT each way, the loss on each direction
 * independently, the rate as each direction's bottleneck. With `tc netem` in the kernel, one netem qdisc on each of
 * the router's two egress devices does all three. Kernels built without netem (this project's CI VM) get the same
 * link from parts they have: `tbf` for the rate (router egress), an iptables `statistic` rule for the loss and an
 * NFQUEUE whose packets test/support/linkDelay.py releases after the delay (router FORWARD chain; order: loss, delay,
 * rate). Shaping in the router, not on the endpoints' own devices, keeps TCP small queues at the sender from
 * mistaking the held packets for its own backlog. Segmentation offloads are off on every device of the link, so a
 * packet is at most one 1500-byte frame, as on a real path, and loss hits single segments.
 *
 * Teardown deletes both namespaces (which removes the veth pairs, routes and rules with them) and stops the delay
 * process; it runs on close(), and on exit or SIGINT/SIGTERM/SIGHUP for links still open. Namespaces left by a run that
 * was killed outright (`ftpt-<pid>-…` of a dead pid) are deleted by the next run.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LinkProfile {
  /** Round-trip time the link adds, in ms: half on each direction. */
  rttMs: number;
  /** Packets lost, in percent, on each direction independently. */
  lossPct?: number;
  /** Bottleneck rate of each direction, Mbit/s; unset: no cap. */
  rateMbit?: number;
}

export interface ClientRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The timeout killed it. */
  timedOut: boolean;
  ms: number;
  stdout: string;
  stderr: string;
}

export interface ClientRunOptions {
  timeoutMs: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Every stdout line as it comes (progress of a client that prints per file). */
  onStdout?: (line: string) => void;
  /** Every stderr line as it comes. */
  onStderr?: (line: string) => void;
  /** Standard input; default none (/dev/null). */
  input?: string;
}

export interface Link {
  /** Where servers bind: the root namespace's end of the link. */
  readonly serverAddress: string;
  /** The client's address, as servers see it. */
  readonly clientAddress: string;
  readonly clientNs: string;
  readonly routerNs: string;
  /** How the profile is applied: the kernel's netem, or tbf + iptables + linkDelay.py. */
  readonly emulator: 'netem' | 'nfqueue';
  readonly profile: LinkProfile;
  /** Applies another profile to the same link (open connections keep going through it). */
  setProfile(profile: LinkProfile): Promise<void>;
  /** argv that runs `command` in the client namespace. */
  clientArgv(command: string, args: string[]): string[];
  /** Runs a command in the client namespace to its end, bounded: on timeout its whole process group gets SIGKILL. */
  runClient(command: string, args: string[], options: ClientRunOptions): Promise<ClientRun>;
  /** `ss -tin` in the client namespace (cwnd, rtt, buffers of its TCP connections), bounded. */
  clientTcpInfo(): Promise<string>;
  /** PID of the delay process (nfqueue emulator with a delay), to account its CPU. */
  emulatorPid(): number | undefined;
  close(): Promise<void>;
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DELAY_SCRIPT = join(ROOT, 'test', 'support', 'linkDelay.py');
const COMMAND_TIMEOUT_MS = 10_000;
const DELAY_READY_MS = 10_000;
/** Packets a netem qdisc holds (its default, 1000, is 12 ms of a 1 Gbit/s link). */
const NETEM_LIMIT = 100_000;

function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) if (dir && existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

/**
 * Why links cannot be made here (a reason for `skip`), or undefined when they can. Needs root, iproute2 (`ip netns`,
 * `tc`) and ethtool; on a kernel without netem also iptables and python3 (found when the first link is made).
 */
export function linkUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the test as root; CI does)';
  for (const program of ['ip', 'tc', 'ethtool']) {
    if (!findProgram(program)) return `${program} is not installed (apt-get install ${program === 'ethtool' ? 'ethtool' : 'iproute2'})`;
  }
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS });
  } catch (err) {
    return `ip netns does not work here: ${(err as Error).message}`;
  }
  return undefined;
}

/** This machine cannot make the link (a program or kernel feature is missing): a reason to skip, not a failure. */
export class LinkUnavailableError extends Error {
  override name = 'LinkUnavailableError';
}

/** Runs one command, bounded; rejects with its stderr. */
function run(command: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

const inNs = (ns: string, command: string, args: string[]) => run('ip', ['netns', 'exec', ns, command, ...args]);

// ---------------------------------------------------------------------------------------------------------------
// Teardown registry: every link still open is torn down when the process ends.

interface Teardown {
  namespaces: string[];
  delay?: ChildProcess;
}

const open = new Set<Teardown>();
let hooksInstalled = false;

function tearDownNow(t: Teardown) {
  if (t.delay && t.delay.exitCode === null && t.delay.signalCode === null) t.delay.kill('SIGKILL');
  for (const ns of t.namespaces) {
    try {
      execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS });
    } catch {
      // already gone
    }
  }
  open.delete(t);
}

function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const t of [...open]) tearDownNow(t);
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const t of [...open]) tearDownNow(t);
      process.kill(process.pid, signal);
    });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes the namespaces of earlier runs whose process is gone (killed before its exit hook could run). */
async function removeStale() {
  const names = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
  for (const name of names) {
    const m = /^ftpt-(\d+)-\d+-(client|router)$/.exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) await run('ip', ['netns', 'delete', name]).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The link

let linkCount = 0;

/** Claims a free 10.200.X.0/24 by creating the root end `ftpt<X>s` of the server-side veth pair (names are unique). */
async function claimSubnet(routerNs: string): Promise<number> {
  const first = 1 + (process.pid % 250);
  let lastError = '';
  for (let i = 0; i < 250; i++) {
    const x = 1 + ((first + i) % 250);
    try {
      await run('ip', ['link', 'add', `ftpt${x}s`, 'type', 'veth', 'peer', 'name', 'rs', 'netns', routerNs]);
      return x;
    } catch (err) {
      lastError = (err as Error).message;
      if (!/exists/i.test(lastError)) throw err;
    }
  }
  throw new Error(`no free 10.200.X.0/24 for a test link: ${lastError}`);
}

async function offloadsOff(ns: string | undefined, device: string) {
  const args = ['-K', device, 'tso', 'off', 'gso', 'off', 'gro', 'off'];
  await (ns ? inNs(ns, 'ethtool', args) : run('ethtool', args));
}

/** Can this kernel run netem? Tried on the router's device, then removed. */
async function hasNetem(routerNs: string): Promise<boolean> {
  try {
    await run('tc', ['-n', routerNs, 'qdisc', 'add', 'dev', 'rs', 'root', 'netem', 'delay', '1ms']);
    await run('tc', ['-n', routerNs, 'qdisc', 'del', 'dev', 'rs', 'root']);
    return true;
  } catch (err) {
    if (/unknown|not supported|No such file/i.test((err as Error).message)) return false;
    throw err;
  }
}

/** Starts linkDelay.py in the router: queue 0 (client → server) and 1 (server → client), `oneWayMs` each. */
function startDelay(routerNs: string, oneWayMs: number): Promise<ChildProcess> {
  const python = findProgram('python3');
  if (!python) throw new LinkUnavailableError('this kernel has no netem, and the fallback needs python3');
  const child = spawn('ip', ['netns', 'exec', routerNs, python, DELAY_SCRIPT, `0:${oneWayMs}`, `1:${oneWayMs}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`linkDelay.py not ready within ${DELAY_READY_MS} ms: ${output}`));
    }, DELAY_READY_MS);
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`linkDelay.py exited (${code ?? signal}): ${output.trim()}`));
    });
  });
}

async function stopDelay(child: ChildProcess | undefined) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

const plain = (p: LinkProfile) => p.rttMs === 0 && !p.lossPct && !p.rateMbit;

/** tbf's bytes: a 100 ms queue at the rate (at least 64 KiB), burst 10 frames. */
const tbfArgs = (rateMbit: number) => ['rate', `${rateMbit}mbit`, 'burst', '15000', 'limit', String(Math.max(65536, Math.round((rateMbit * 1e6) / 8 / 10)))];

export async function createLink(profile: LinkProfile): Promise<Link> {
  const reason = linkUnavailable();
  if (reason) throw new LinkUnavailableError(reason);
  installHooks();
  await removeStale();
  const n = linkCount++;
  const clientNs = `ftpt-${process.pid}-${n}-client`;
  const routerNs = `ftpt-${process.pid}-${n}-router`;
  const teardown: Teardown = { namespaces: [] };
  open.add(teardown);
  try {
    for (const ns of [routerNs, clientNs]) {
      await run('ip', ['netns', 'add', ns]);
      teardown.namespaces.push(ns);
    }
    const x = await claimSubnet(routerNs);
    const net = `10.200.${x}`;
    const rootDev = `ftpt${x}s`;
    await run('ip', ['-n', routerNs, 'link', 'add', 'rc', 'type', 'veth', 'peer', 'name', 'link0', 'netns', clientNs]);
    const steps: string[][] = [
      ['addr', 'add', `${net}.130/25`, 'dev', rootDev],
      ['link', 'set', rootDev, 'up'],
      ['-n', routerNs, 'addr', 'add', `${net}.129/25`, 'dev', 'rs'],
      ['-n', routerNs, 'addr', 'add', `${net}.1/25`, 'dev', 'rc'],
      ['-n', routerNs, 'link', 'set', 'rs', 'up'],
      ['-n', routerNs, 'link', 'set', 'rc', 'up'],
      ['-n', routerNs, 'link', 'set', 'lo', 'up'],
      ['-n', clientNs, 'addr', 'add', `${net}.2/25`, 'dev', 'link0'],
      ['-n', clientNs, 'link', 'set', 'link0', 'up'],
      ['-n', clientNs, 'link', 'set', 'lo', 'up'],
      ['-n', clientNs, 'route', 'add', 'default', 'via', `${net}.1`],
      ['route', 'add', `${net}.0/25`, 'via', `${net}.129`, 'dev', rootDev],
    ];
    for (const step of steps) await run('ip', step);
    await inNs(routerNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await offloadsOff(undefined, rootDev);
    await offloadsOff(routerNs, 'rs');
    await offloadsOff(routerNs, 'rc');
    await offloadsOff(clientNs, 'link0');
    const emulator = (await hasNetem(routerNs)) ? 'netem' : 'nfqueue';
    if (emulator === 'nfqueue' && !findProgram('iptables')) throw new LinkUnavailableError('this kernel has no netem, and the fallback needs iptables (apt-get install iptables)');

    let current: LinkProfile = { rttMs: 0 };
    const clear = async () => {
      await stopDelay(teardown.delay);
      teardown.delay = undefined;
      for (const dev of ['rs', 'rc']) await run('tc', ['-n', routerNs, 'qdisc', 'del', 'dev', dev, 'root']).catch(() => undefined);
      if (emulator === 'nfqueue') await inNs(routerNs, 'iptables', ['-w', '-F', 'FORWARD']);
    };
    const apply = async (p: LinkProfile) => {
      if (!(p.rttMs >= 0) || (p.lossPct ?? 0) < 0 || (p.lossPct ?? 0) >= 100 || (p.rateMbit !== undefined && !(p.rateMbit > 0))) {
        throw new Error(`bad link profile ${JSON.stringify(p)}`);
      }
      await clear();
      current = { ...p };
      if (plain(p)) return;
      const oneWayMs = p.rttMs / 2;
      if (emulator === 'netem') {
        const args = ['limit', String(NETEM_LIMIT), 'delay', `${oneWayMs}ms`];
        if (p.lossPct) args.push('loss', `${p.lossPct}%`);
        if (p.rateMbit) args.push('rate', `${p.rateMbit}mbit`);
        for (const dev of ['rs', 'rc']) await run('tc', ['-n', routerNs, 'qdisc', 'add', 'dev', dev, 'root', 'netem', ...args]);
        return;
      }
      if (p.rateMbit) for (const dev of ['rs', 'rc']) await run('tc', ['-n', routerNs, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', ...tbfArgs(p.rateMbit)]);
      if (oneWayMs > 0) teardown.delay = await startDelay(routerNs, oneWayMs);
      for (const [input, queue] of [['rc', '0'], ['rs', '1']]) {
        if (p.lossPct) {
          const probability = (p.lossPct / 100).toFixed(6);
          await inNs(routerNs, 'iptables', ['-w', '-A', 'FORWARD', '-i', input, '-m', 'statistic', '--mode', 'random', '--probability', probability, '-j', 'DROP']);
        }
        if (oneWayMs > 0) await inNs(routerNs, 'iptables', ['-w', '-A', 'FORWARD', '-i', input, '-j', 'NFQUEUE', '--queue-num', queue]);
      }
    };
    await apply(profile);

    const clientArgv = (command: string, args: string[]) => ['ip', 'netns', 'exec', clientNs, command, ...args];
    const link: Link = {
      serverAddress: `${net}.130`,
      clientAddress: `${net}.2`,
      clientNs,
      routerNs,
      emulator,
      get profile() {
        return { ...current };
      },
      setProfile: apply,
      clientArgv,
      runClient: (command, args, options) => runBounded(clientArgv(command, args), options),
      clientTcpInfo: () => inNs(clientNs, 'ss', ['-tin']),
      emulatorPid: () => teardown.delay?.pid,
      async close() {
        await stopDelay(teardown.delay);
        for (const ns of [clientNs, routerNs]) await run('ip', ['netns', 'delete', ns]).catch(() => undefined);
        open.delete(teardown);
      },
    };
    return link;
  } catch (err) {
    tearDownNow(teardown);
    throw err;
  }
}

/** A link for the length of `fn`, torn down after it whatever happens. */
export async function withLink<T>(profile: LinkProfile, fn: (link: Link) => Promise<T>): Promise<T> {
  const link = await createLink(profile);
  try {
    return await fn(link);
  } finally {
    await link.close();
  }
}

/** Spawns argv in a process group of its own, collects its output (64 KiB each), SIGKILLs the group at the timeout. */
export function runBounded(argv: string[], options: ClientRunOptions): Promise<ClientRun> {
  const start = process.hrtime.bigint();
  const child = spawn(argv[0], argv.slice(1), {
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true,
    cwd: options.cwd,
    env: options.env ?? process.env,
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  let stdout = '';
  let stderr = '';
  const lines = (each: ((line: string) => void) | undefined) => {
    let partial = '';
    return {
      push(text: string) {
        if (!each) return;
        const parts = (partial + text).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) each(line);
      },
      flush() {
        if (each && partial) each(partial);
      },
    };
  };
  const outLines = lines(options.onStdout);
  const errLines = lines(options.onStderr);
  child.stdout!.on('data', (d: Buffer) => {
    const text = d.toString();
    if (stdout.length < 65536) stdout += text;
    outLines.push(text);
  });
  child.stderr!.on('data', (d: Buffer) => {
    const text = d.toString();
    if (stderr.length < 65536) stderr += text;
    errLines.push(text);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, options.timeoutMs);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      outLines.flush();
      errLines.flush();
      resolve({ code, signal, timedOut, ms: Number(process.hrtime.bigint() - start) / 1e6, stdout, stderr });
    });
  });
}
