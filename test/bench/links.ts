/**
 * `npm run bench:links`: partners on real links (issue 18). Our edge next to vsftpd (FTP, FTPS) and OpenSSH's sshd with
 * internal-sftp (SFTP) behind the same emulated links, driven by the same clients (curl, OpenSSH sftp) from a client
 * network namespace (test/support/netns.ts).
 *
 *   npm run bench:links                                            # 3 rounds, all links, ~25-40 minutes
 *   BENCH_REPEAT=1 BENCH_LINKS=0,80/0.1 BENCH_LINKS_PROTOCOLS=sftp npm run bench:links   # quick look
 *
 * Per round, for each link (RTT ms / loss % [@ Mbit/s]), each protocol and each server (our edge, a second edge as
 * the A/A control, the reference), in an order of servers that rotates per round: session set-up (connect + login, the
 * median of BENCH_LINKS_SESSIONS sessions), one BENCH_LINKS_MB MiB download and upload (MiB/s, first byte to last,
 * each cut at BENCH_LINKS_BOUND_S seconds), BENCH_LINKS_SMALL_FILES uploads of 4 KiB in one session (files/s, cut at
 * BENCH_LINKS_SMALL_BOUND_S). Each link also gets a plain TCP stream (node to node) as its ceiling. The table gives
 * the median (min–max) of the rounds, then ours / reference and A/A ratios of the medians, the machine's CPU while
 * each link was measured (and the delay emulator's share), and its load before and after.
 *
 * Settings (environment): BENCH_REPEAT (3); BENCH_LINKS (`0,20/0,80/0.1,200/1,40/0@50`: RTT ms[/loss %][@Mbit/s]);
 * BENCH_LINKS_PROTOCOLS (`ftp,ftps,sftp`); BENCH_LINKS_ONLY (`setup,down,up,small`); BENCH_LINKS_MB (32);
 * BENCH_LINKS_BOUND_S (15, per big transfer); BENCH_LINKS_SMALL_FILES (100); BENCH_LINKS_SMALL_BOUND_S (20);
 * BENCH_LINKS_SESSIONS (3 set-up sessions per cell and round); BENCH_LINKS_KEX (`curve25519-sha256`, every SFTP
 * session; empty: the client's default); BENCH_LINKS_AA=0 drops the A/A edge; BENCH_LINKS_OURS_ENV="FTP_X=… …"
 * (settings of both our edges); BENCH_EDGE_ENTRY=path/to/main.js measures another bundle (e.g. servers.ts's
 * baselineBundle) as ours. Needs root, iproute2, ethtool, vsftpd, OpenSSH's sshd, curl, lftp, sftp; on a kernel
 * without netem also iptables and python3 (test/support/netns.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLink, linkUnavailable, type Link, type LinkProfile } from '../support/netns';
import { machineTicks } from './cgroup';
import { finishRun, runBench, writeRandomFile } from './clusterBench';
import { backgroundLoad, processTicks } from './cpu';
import { envInt, envList, MiB } from './env';
import { download, negotiated, setupMs, smallUploads, tcpCeiling, upload, type ClientSettings, type Protocol, type Target, type Transfer } from './linkClients';
import { sshKeys, startOursOnLink, startSshdOnLink, startVsftpdOnLink, type LinkServer } from './linkServers';
import { fmt, log, median, spread, table } from './report';
import { codeVersion, edgeEntry, killedAtExit, stopServer } from './servers';

const PROTOCOLS = ['ftp', 'ftps', 'sftp'] as const;
const MEASURES = ['setup', 'down', 'up', 'small'] as const;
type Measure = (typeof MEASURES)[number];

/** `RTT[/LOSS][@MBIT]`: "80/0.1" is 80 ms and 0.1 % loss, "40/0@50" adds a 50 Mbit/s cap, "0" no emulation. */
function parseLink(spec: string): LinkProfile & { label: string } {
  const m = /^(\d+(?:\.\d+)?)(?:\/(\d+(?:\.\d+)?))?(?:@(\d+(?:\.\d+)?))?$/.exec(spec.trim());
  if (!m) throw new Error(`BENCH_LINKS: bad link "${spec}" (RTT_MS[/LOSS_PCT][@MBIT], e.g. 80/0.1 or 40/0@50)`);
  const profile = { rttMs: Number(m[1]), lossPct: m[2] ? Number(m[2]) : 0, rateMbit: m[3] ? Number(m[3]) : undefined };
  const label = profile.rttMs === 0 && !profile.lossPct && !profile.rateMbit ? '0 ms (none)' : `${profile.rttMs} ms/${profile.lossPct} %${profile.rateMbit ? `/${profile.rateMbit} Mbit` : ''}`;
  return { ...profile, label };
}

const settings = {
  repeat: envInt('BENCH_REPEAT', 3),
  links: (process.env.BENCH_LINKS || '0,20/0,80/0.1,200/1,40/0@50').split(',').map(parseLink),
  protocols: envList('BENCH_LINKS_PROTOCOLS', PROTOCOLS.join(','), [...PROTOCOLS]) as Protocol[],
  measures: new Set(envList('BENCH_LINKS_ONLY', MEASURES.join(','), [...MEASURES]) as Measure[]),
  bigMiB: envInt('BENCH_LINKS_MB', 32),
  boundMs: envInt('BENCH_LINKS_BOUND_S', 15) * 1000,
  smallFiles: envInt('BENCH_LINKS_SMALL_FILES', 100, 2),
  smallBoundMs: envInt('BENCH_LINKS_SMALL_BOUND_S', 20) * 1000,
  sessions: envInt('BENCH_LINKS_SESSIONS', 3),
  kex: process.env.BENCH_LINKS_KEX ?? 'curve25519-sha256',
  aa: process.env.BENCH_LINKS_AA !== '0',
  /** "FTP_X=1 FTP_Y=2": settings for both of our edges (to compare one). */
  oursEnv: Object.fromEntries((process.env.BENCH_LINKS_OURS_ENV ?? '').split(/\s+/).filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2))) as Record<string, string>,
  setupTimeoutMs: 30_000,
};

const started = Date.now();
const failures: string[] = [];
const { servers: cleanup } = killedAtExit();

interface Cell {
  setup: number[];
  down: number[];
  up: number[];
  small: number[];
  /** Transfers or batches cut by their bound. */
  cut: number;
}

const cells = new Map<string, Cell>();
const cellOf = (key: string) => {
  let cell = cells.get(key);
  if (!cell) cells.set(key, (cell = { setup: [], down: [], up: [], small: [], cut: 0 }));
  return cell;
};
const ceilings = new Map<string, number[]>();
const linkCpu = new Map<string, { machine: number[]; emulator: number[] }>();

const mibps = (t: Transfer) => (t.seconds > 0 ? t.bytes / MiB / t.seconds : 0);

/** One server × protocol on the current link: every measure once. */
async function measure(link: Link, label: string, t: Target, client: ClientSettings, files: { big: string; smallDir: string }, tag: string) {
  const key = `${label}|${t.protocol}|${t.server.name}`;
  const cell = cellOf(key);
  const bigBytes = settings.bigMiB * MiB;
  const step = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      failures.push(`${key} ${what} (${tag}): ${(err as Error).message}`);
    }
  };
  const notes: string[] = [];
  if (settings.measures.has('setup')) {
    await step('set-up', async () => {
      const times: number[] = [];
      for (let i = 0; i < settings.sessions; i++) times.push(await setupMs(link, t, client, settings.setupTimeoutMs));
      cell.setup.push(median(times)!);
      notes.push(`setup ${fmt(median(times))} ms`);
    });
  }
  if (settings.measures.has('down')) {
    await step('download', async () => {
      const local = join(client.workDir, `down-${tag}.bin`);
      const r = await download(link, t, client, 'big.bin', local, bigBytes, settings.boundMs);
      rmSync(local, { force: true });
      if (!r.complete) cell.cut++;
      cell.down.push(mibps(r));
      notes.push(`down ${fmt(mibps(r))} MiB/s${r.complete ? '' : ` (cut: ${fmt(r.bytes / MiB)} MiB)`}`);
    });
  }
  if (settings.measures.has('up')) {
    await step('upload', async () => {
      const remote = `up-${tag}.bin`;
      const root = t.protocol === 'sftp' ? t.server.sftpRoot! : t.server.root;
      try {
        const r = await upload(link, t, client, files.big, remote, bigBytes, settings.boundMs);
        if (!r.complete) cell.cut++;
        cell.up.push(mibps(r));
        notes.push(`up ${fmt(mibps(r))} MiB/s${r.complete ? '' : ` (cut: ${fmt(r.bytes / MiB)} MiB)`}`);
      } finally {
        await removeUploads(root, remote);
      }
    });
  }
  if (settings.measures.has('small')) {
    await step('small files', async () => {
      const remoteDir = `small-${tag}`;
      const root = t.protocol === 'sftp' ? t.server.sftpRoot! : t.server.root;
      mkdirSync(join(root, remoteDir));
      if (t.server.owner) chownSync(join(root, remoteDir), t.server.owner.uid, t.server.owner.gid);
      try {
        const r = await smallUploads(link, t, client, files.smallDir, settings.smallFiles, remoteDir, settings.smallBoundMs);
        if (!r.complete) cell.cut++;
        cell.small.push(r.filesPerSec);
        notes.push(`${fmt(r.filesPerSec)} files/s${r.complete ? '' : ` (cut after ${r.marks})`}`);
      } finally {
        // A batch cut at its bound may leave the server finishing (or dropping) its last upload in there.
        rmSync(join(root, remoteDir), { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
      }
    });
  }
  log(`  ${t.protocol.padEnd(4)} ${t.server.name.padEnd(11)} ${notes.join(', ')}`);
}

/** The upload and its partial (a cut upload may leave either), after the server let go of it. */
async function removeUploads(root: string, name: string) {
  await new Promise((r) => setTimeout(r, 200));
  for (const n of [name, `.${name}.ftp-partial`]) rmSync(join(root, n), { force: true });
}

function placeBigFile(source: string, server: LinkServer) {
  for (const root of new Set([server.root, server.sftpRoot].filter((r): r is string => !!r))) {
    const target = join(root, 'big.bin');
    rmSync(target, { force: true });
    linkSync(source, target);
  }
}

function renderTable(protocols: Protocol[], names: (p: Protocol) => string[]): string {
  const rows: string[][] = [];
  for (const l of settings.links) {
    const ceiling = ceilings.get(l.label) ?? [];
    rows.push([l.label, 'tcp', 'node → node (ceiling)', spread(ceiling), '', '', '', '']);
    for (const p of protocols) {
      for (const name of names(p)) {
        const c = cells.get(`${l.label}|${p}|${name}`);
        if (!c) continue;
        rows.push([l.label, p, name, spread(c.down), spread(c.up), spread(c.small), spread(c.setup, 0), c.cut ? String(c.cut) : '']);
      }
    }
  }
  return table(['link (RTT/loss/rate)', 'proto', 'server', 'down MiB/s', 'up MiB/s', '4 KiB up files/s', 'setup ms', 'cut'], rows, [false, false, false, true, true, true, true, true]);
}

/** ours / reference (and A/A / ours) of the medians; set-up as reference / ours, so above 1 is ours better everywhere. */
function renderRatios(protocols: Protocol[], reference: (p: Protocol) => string): string {
  const rows: string[][] = [];
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && a > 0 && b > 0 ? (a / b).toFixed(2) : 'n/a');
  for (const l of settings.links) {
    for (const p of protocols) {
      const ours = cells.get(`${l.label}|${p}|ours`);
      const aa = cells.get(`${l.label}|${p}|ours (A/A)`);
      const ref = cells.get(`${l.label}|${p}|${reference(p)}`);
      if (!ours || !ref) continue;
      const m = (c: Cell | undefined, k: Measure) => median(c?.[k]);
      const cols = (a: Cell | undefined, b: Cell | undefined) => [ratio(m(a, 'down'), m(b, 'down')), ratio(m(a, 'up'), m(b, 'up')), ratio(m(a, 'small'), m(b, 'small')), ratio(m(b, 'setup'), m(a, 'setup'))];
      rows.push([l.label, p, `ours / ${reference(p)}`, ...cols(ours, ref)]);
      if (aa) rows.push([l.label, p, 'A/A (ours B / ours)', ...cols(aa, ours)]);
    }
  }
  return table(['link', 'proto', 'ratio of medians', 'down', 'up', 'files/s', 'setup'], rows, [false, false, false, true, true, true, true]);
}

async function main(): Promise<number> {
  const unavailable = linkUnavailable();
  if (unavailable) {
    console.log(`bench:links needs test links: ${unavailable}`);
    return 1;
  }
  const version = codeVersion();
  console.log(`bench:links — ${cpus().length} cores, kernel ${release()}, node ${process.version}; code ${version.commit}`);
  if (version.dirty.length) console.log(`  + ${version.dirty.length} uncommitted files outside test/: ${version.dirty.join(', ')}`);
  console.log(`machine busy before the run (bench idle, 2 s): ${await backgroundLoad()} % of one core`);

  const tmp = mkdtempSync(join(tmpdir(), 'bench-links-'));
  chmodSync(tmp, 0o755); // vsftpd's sessions run as its unprivileged user and must reach their root below it
  let link: Link | undefined;
  const running: LinkServer[] = [];
  try {
    link = await createLink({ rttMs: 0 });
    console.log(`link: ${link.clientNs} (${link.clientAddress}) → ${link.routerNs} → root namespace ${link.serverAddress}; emulator ${link.emulator}` +
      (link.emulator === 'nfqueue' ? ' (no netem in this kernel: tbf rate, iptables statistic loss, NFQUEUE + linkDelay.py delay, in the router)' : ' (netem in the router, both directions)'));
    const keys = sshKeys(mkdirP(join(tmp, 'keys')));
    const start = async (s: Promise<LinkServer>) => {
      const server = await s;
      running.push(server);
      cleanup.add(server);
      return server;
    };
    const ours = await start(startOursOnLink({ name: 'ours', dir: mkdirP(join(tmp, 'ours')), address: link.serverAddress, keys, env: settings.oursEnv }));
    const oursB = settings.aa ? await start(startOursOnLink({ name: 'ours (A/A)', dir: mkdirP(join(tmp, 'ours-b')), address: link.serverAddress, keys, env: settings.oursEnv })) : undefined;
    const wantsFtp = settings.protocols.some((p) => p !== 'sftp');
    const vsftpd = wantsFtp
      ? await start(startVsftpdOnLink({ dir: join(tmp, 'vsftpd'), address: link.serverAddress, cert: join(tmp, 'ours', 'tls', 'self-signed.crt'), key: join(tmp, 'ours', 'tls', 'self-signed.key') }))
      : undefined;
    const sshd = settings.protocols.includes('sftp') ? await start(startSshdOnLink({ dir: join(tmp, 'openssh'), address: link.serverAddress, keys })) : undefined;

    // The files: one random big file (hard links in every root), small files at the client.
    const clientDir = mkdirP(join(tmp, 'client'));
    const big = join(clientDir, 'big.bin');
    writeRandomFile(big, settings.bigMiB * MiB);
    chmodSync(big, 0o644);
    for (const s of running) placeBigFile(big, s);
    const smallDir = mkdirP(join(clientDir, 'small'));
    for (let i = 1; i <= settings.smallFiles; i++) writeFileSync(join(smallDir, `f${i}.bin`), randomBytes(4096));
    const client: ClientSettings = { sshKey: keys.clientKey, kex: settings.kex, workDir: clientDir };

    const byProtocol = (p: Protocol): LinkServer[] => [ours, ...(oursB ? [oursB] : []), ...(p === 'sftp' ? (sshd ? [sshd] : []) : vsftpd ? [vsftpd] : [])];
    const reference = (p: Protocol) => (p === 'sftp' ? 'openssh' : 'vsftpd');

    for (const s of running) console.log(`  ${s.name}: ${s.describe}`);
    if (settings.protocols.includes('sftp')) for (const s of running.filter((x) => x.protocols.has('sftp'))) console.log(`  sftp negotiates with ${s.name}: ${await negotiated(link, { server: s, protocol: 'sftp' }, client)}`);
    console.log(`clients: curl (FTP, FTPS: set-up, big files), lftp (FTP, FTPS: small files), OpenSSH sftp -b (ed25519 key, -o KexAlgorithms=${settings.kex || '(default)'})`);
    console.log(`${settings.repeat} round(s); big file ${settings.bigMiB} MiB cut at ${settings.boundMs / 1000} s; ${settings.smallFiles} × 4 KiB uploads cut at ${settings.smallBoundMs / 1000} s; ${settings.sessions} set-up sessions per cell`);

    for (let round = 0; round < settings.repeat; round++) {
      for (const l of settings.links) {
        await link.setProfile(l);
        log(`round ${round + 1}, link ${l.label}`);
        const machine0 = machineTicks().busy;
        const emulatorPid = link.emulatorPid();
        const emulator0 = emulatorPid ? processTicks(emulatorPid) : undefined;
        const wall0 = performance.now();
        try {
          const c = await tcpCeiling(link, settings.bigMiB * 4 * MiB, settings.boundMs);
          ceilings.set(l.label, [...(ceilings.get(l.label) ?? []), mibps(c)]);
          log(`  tcp  ceiling     ${fmt(mibps(c))} MiB/s${c.complete ? '' : ` (cut: ${fmt(c.bytes / MiB)} MiB)`}`);
        } catch (err) {
          failures.push(`${l.label} tcp ceiling: ${(err as Error).message}`);
        }
        for (const protocol of settings.protocols) {
          const list = byProtocol(protocol);
          for (let k = 0; k < list.length; k++) {
            const server = list[(k + round) % list.length];
            await measure(link, l.label, { server, protocol }, client, { big, smallDir }, `r${round + 1}-${protocol}-${running.indexOf(server)}`);
          }
        }
        const seconds = (performance.now() - wall0) / 1000;
        const cpu = linkCpu.get(l.label) ?? { machine: [], emulator: [] };
        // Clock ticks are 10 ms: ticks per second is percent of one core.
        cpu.machine.push((machineTicks().busy - machine0) / seconds);
        const emulator1 = emulatorPid ? processTicks(emulatorPid) : undefined;
        if (emulator0 !== undefined && emulator1 !== undefined) cpu.emulator.push((emulator1 - emulator0) / seconds);
        linkCpu.set(l.label, cpu);
      }
    }

    console.log('');
    console.log(`Median (min–max) of ${settings.repeat} round(s). MiB/s: first byte to last of one ${settings.bigMiB} MiB file; files/s: ${settings.smallFiles} × 4 KiB uploads in one session; setup: connect + login + end, client process included.`);
    console.log(`"cut": transfers or batches stopped at their bound (their figure is what they moved in the time they had).`);
    console.log(renderTable(settings.protocols, (p) => byProtocol(p).map((s) => s.name)));
    console.log('');
    console.log(renderRatios(settings.protocols, reference));
    console.log('');
    console.log(
      `machine CPU while each link was measured (% of one core, ${cpus().length * 100} % = all): ` +
        settings.links.map((l) => `${l.label}: ${spread(linkCpu.get(l.label)?.machine ?? [], 0)}${linkCpu.get(l.label)?.emulator.length ? ` (delay emulator ${spread(linkCpu.get(l.label)!.emulator, 0)})` : ''}`).join('; '),
    );
  } finally {
    for (const s of running) {
      const text = s.output().trim();
      if (text && s.name !== 'openssh') console.log(`output of ${s.name} (last lines):\n${text.split('\n').slice(-8).map((x) => `  ${x}`).join('\n')}`);
    }
    await Promise.all(running.map(async (s) => (await stopServer(s), cleanup.delete(s))));
    await link?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`machine busy after the run (bench idle, 2 s): ${await backgroundLoad()} % of one core`);
  console.log(`edge: ${edgeEntry().join(' ')}`);
  return finishRun(failures, started);
}

function mkdirP(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

runBench('links', main);
