/**
 * `npm run bench:tracing`: what tracing costs. Our edges run side by side as child processes, the same build and
 * settings: tracing off (the default: the no-op tracer), tracing on as deployed (the OpenTelemetry SDK started from
 * OTEL_* variables, 100 % sampling, the BatchSpanProcessor and the OTLP/HTTP protobuf exporter, sending to a local
 * receiver that reads every request, answers 200 and counts the spans to prove they were exported), sampled at
 * BENCH_SAMPLE_RATIO, and a second untraced edge whose difference from the first is the machine's noise floor. The
 * variants take turns within each round; figures are medians of BENCH_REPEAT rounds, plain and paired by round.
 * See test/bench/README.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { envInt, MiB } from './env';
import { backgroundLoad } from './cpu';
import { median } from './report';
import { checkRangeFree, freePort, killNow, parseRange, startOurs, stopServer, type RunningServer } from './servers';
import { bigFile, sessions, type Limits } from './workloads';


const settings = {
  mib: envInt('BENCH_MIB', 256),
  sessions: envInt('BENCH_SESSIONS', 1000),
  concurrency: envInt('BENCH_CONCURRENCY', 100),
  repeat: envInt('BENCH_REPEAT', 3),
  rampMs: envInt('BENCH_RAMP_MS', 1000, 0),
  offPasv: parseRange(process.env.BENCH_OFF_PASV || '31000-31199'),
  onPasv: parseRange(process.env.BENCH_ON_PASV || '29000-29199'),
  sampledPasv: parseRange(process.env.BENCH_SAMPLED_PASV || '29200-29399'),
  controlPasv: parseRange(process.env.BENCH_CONTROL_PASV || '31200-31399'),
  /** A second untraced edge, measured like the others: its cost against the first is this machine's noise floor. */
  control: process.env.BENCH_CONTROL !== '0',
  /** Ratio of the third edge's sampler (parentbased_traceidratio); 0 = no third edge. */
  sampleRatio: Number(process.env.BENCH_SAMPLE_RATIO ?? '0.1'),
  opTimeoutMs: envInt('BENCH_OP_TIMEOUT_S', 30) * 1000,
  phaseTimeoutMs: envInt('BENCH_PHASE_TIMEOUT_S', 240) * 1000,
  /** After each edge's phase: time for a traced edge's batch processor to send what is left before the next phase. */
  // At least the batch delay (OTEL_BSP_SCHEDULE_DELAY 1 s below) and then some, or a traced edge's last batch lands
  // in the next edge's phase (and an untraced one seems to export).
  settleMs: envInt('BENCH_SETTLE_MS', 2500, 1500),
  /** Pin the bench (client and receiver) to CPU 0 and the edges to CPU 1, so where the scheduler puts them does not vary. */
  pin: process.env.BENCH_PIN !== '0' && cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0,
};
const limits: Limits = { opTimeoutMs: settings.opTimeoutMs, phaseTimeoutMs: settings.phaseTimeoutMs };

// ------------------------------------------------------------------------------------------------------------------
// The OTLP receiver: accepts POST /v1/traces, counts the spans in the protobuf body, answers 200 with an empty
// ExportTraceServiceResponse (zero bytes in protobuf), discards the rest.

/** Reads a protobuf varint at `pos`; returns [value, next position]. */
function varint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = buf[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, pos];
    shift += 7;
  }
}

/** The length-delimited fields numbered `field` of a protobuf message. */
function* submessages(buf: Buffer, field: number): Generator<Buffer> {
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = varint(buf, pos);
    const wire = key & 7;
    pos = afterKey;
    if (wire === 0) [, pos] = varint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, start] = varint(buf, pos);
      if (key >>> 3 === field) yield buf.subarray(start, start + len);
      pos = start + len;
    } else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
}

const SESSION_SPAN = Buffer.from('ftp session');

/** ExportTraceServiceRequest.resource_spans(1) → ResourceSpans.scope_spans(2) → ScopeSpans.spans(2) → Span.name(5). */
function countSpans(body: Buffer): { spans: number; sessions: number } {
  let spans = 0;
  let sessions = 0;
  for (const resource of submessages(body, 1)) {
    for (const scope of submessages(resource, 2)) {
      for (const span of submessages(scope, 2)) {
        spans++;
        for (const name of submessages(span, 5)) if (name.equals(SESSION_SPAN)) sessions++;
      }
    }
  }
  return { spans, sessions };
}

async function startReceiver() {
  const totals = { requests: 0, bytes: 0, spans: 0, sessions: 0, unparsed: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      totals.requests++;
      totals.bytes += body.length;
      if (req.url === '/v1/traces' && req.headers['content-type'] === 'application/x-protobuf') {
        try {
          const counted = countSpans(body);
          totals.spans += counted.spans;
          totals.sessions += counted.sessions;
        } catch {
          totals.unparsed++;
        }
      } else {
        totals.unparsed++;
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, totals, close: () => new Promise((r) => server.close(r)) };
}

// ------------------------------------------------------------------------------------------------------------------

const servers: RunningServer[] = [];
let tmp: string | undefined;
process.on('exit', () => servers.forEach(killNow));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    servers.forEach(killNow);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });
}

interface Variant {
  name: string;
  pasv: { min: number; max: number };
  env: Record<string, string>;
}

interface Figures {
  uploadMiBs: number[];
  downloadMiBs: number[];
  sessionsPerSec: number[];
  p95Ms: number[];
  /** Server CPU seconds per GiB downloaded, and milliseconds per session: less sensitive to a busy machine than rates. */
  cpuSecPerGiB: number[];
  cpuMsPerSession: number[];
  sessionErrors: number;
}
const fresh = (): Figures => ({ uploadMiBs: [], downloadMiBs: [], sessionsPerSec: [], p95Ms: [], cpuSecPerGiB: [], cpuMsPerSession: [], sessionErrors: 0 });

async function main() {
  const idle = await backgroundLoad(2000);
  console.log(`tracing overhead bench: ${settings.mib} MiB transfers, ${settings.sessions} sessions x ${settings.concurrency} concurrent, ${settings.repeat} rounds`);
  console.log(`machine busy before the run (bench idle): ${idle} % of one core${idle > 10 ? '  <- noisy machine, figures will swing' : ''}`);
  console.log(settings.pin ? 'pinned: bench (client, receiver) on CPU 0, edges on CPU 1' : 'not pinned');
  await checkRangeFree(settings.offPasv, 'tracing off');
  await checkRangeFree(settings.onPasv, 'tracing on');
  if (settings.sampleRatio > 0) await checkRangeFree(settings.sampledPasv, 'tracing sampled');
  if (settings.control) await checkRangeFree(settings.controlPasv, 'control');
  const receiver = await startReceiver();
  tmp = mkdtempSync(join(tmpdir(), 'ftp-bench-tracing-'));
  const taken = new Set<number>();
  const traced = (sampler: Record<string, string>) => ({
    OTEL_SDK_DISABLED: 'false',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    // A queue that holds a burst of 100 concurrent sessions (12 spans each) without dropping: every span is exported.
    OTEL_BSP_MAX_QUEUE_SIZE: '65536',
    OTEL_BSP_SCHEDULE_DELAY: '1000',
    OTEL_SERVICE_NAME: 'ftp-edge-bench',
    ...sampler,
  });
  const specs: Variant[] = [
    { name: 'tracing off', pasv: settings.offPasv, env: {} },
    { name: 'tracing on', pasv: settings.onPasv, env: traced({ OTEL_TRACES_SAMPLER: 'parentbased_always_on' }) },
  ];
  if (settings.sampleRatio > 0) {
    specs.push({
      name: `sampled ${settings.sampleRatio * 100}%`,
      pasv: settings.sampledPasv,
      env: traced({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(settings.sampleRatio) }),
    });
  }
  if (settings.control) specs.push({ name: 'off, control', pasv: settings.controlPasv, env: {} });
  const [off, on] = specs;
  const untraced = new Set(specs.filter((spec) => Object.keys(spec.env).length === 0));
  const figures = new Map<Variant, Figures>(specs.map((spec) => [spec, fresh()]));
  const spansPerPhase: { phase: string; spans: number; sessions: number }[] = [];
  if (settings.pin) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });

  const measure = async (spec: Variant, server: RunningServer, phase: 'big' | 'sessions', round: number) => {
    const before = receiver.totals.spans;
    const sessionsBefore = receiver.totals.sessions;
    const f = figures.get(spec)!;
    if (phase === 'big') {
      const r = await bigFile(server, settings.mib * MiB, limits, { download: true, warmupBytes: 32 * MiB, round });
      f.uploadMiBs.push(r.upload!.mibPerSec);
      f.downloadMiBs.push(r.download!.mibPerSec);
      f.cpuSecPerGiB.push(((r.download!.cpu.serverPct ?? NaN) / 100) * r.download!.seconds / (settings.mib / 1024));
      console.log(`  ${spec.name.padEnd(12)} upload ${r.upload!.mibPerSec.toFixed(1)} MiB/s, download ${r.download!.mibPerSec.toFixed(1)} MiB/s (server CPU ${r.download!.cpu.serverPct} %)`);
    } else {
      const r = await sessions(server, settings.sessions, settings.concurrency, limits, { warmup: settings.concurrency, rampMs: settings.rampMs });
      f.sessionsPerSec.push(r.sessionsPerSec);
      f.p95Ms.push(r.latencyMs.p95);
      f.sessionErrors += r.errors;
      f.cpuMsPerSession.push(((r.cpu.serverPct ?? NaN) / 100) * 1000 / r.sessionsPerSec);
      console.log(
        `  ${spec.name.padEnd(12)} ${r.sessionsPerSec.toFixed(0)} sessions/s, p95 ${r.latencyMs.p95.toFixed(1)} ms, server CPU ${r.cpu.serverPct} %, errors ${r.errors}${r.firstErrors.length ? ` (${r.firstErrors[0]})` : ''}`,
      );
    }
    // Every edge gets the same pause after its phase: a traced one sends its last batch, and any edge finishes closing
    // its sessions, on the CPU the next edge is measured on.
    await new Promise((resolve) => setTimeout(resolve, settings.settleMs));
    if (spec === on) spansPerPhase.push({ phase, spans: receiver.totals.spans - before, sessions: receiver.totals.sessions - sessionsBefore });
    if (untraced.has(spec) && receiver.totals.spans !== before) throw new Error(`the ${spec.name} edge exported spans`);
  };

  try {
    for (let round = 0; round < settings.repeat; round++) {
      console.log(`round ${round + 1}/${settings.repeat}`);
      // Fresh processes every round, started and measured in a rotating order: two identical untraced edges on this
      // machine differed by up to 2.5x in single-stream MiB/s for a whole process lifetime, so a figure must not hang
      // on one process, nor on who started or ran first.
      const order = specs.map((_, i) => specs[(i + round) % specs.length]);
      const running = new Map<Variant, RunningServer>();
      for (const spec of order) {
        const server = await startOurs({
          name: spec.name,
          dir: join(tmp, `round-${round}`, spec.name.replace(/\W+/g, '-')),
          port: await freePort(22100, taken),
          pasvRange: spec.pasv,
          fsync: false,
          env: spec.env,
        });
        servers.push(server);
        running.set(spec, server);
        if (settings.pin) execFileSync('taskset', ['-a', '-p', '-c', '1', String(server.pid)], { stdio: 'ignore' });
      }
      // The traced edges' start-up checks (a login each) are still in their batch queues: let them out first.
      await new Promise((resolve) => setTimeout(resolve, settings.settleMs));
      for (const spec of order) await measure(spec, running.get(spec)!, 'big', round);
      for (const spec of order) await measure(spec, running.get(spec)!, 'sessions', round);
      await Promise.all([...running.values()].map((server) => stopServer(server)));
      for (const server of running.values()) {
        servers.splice(servers.indexOf(server), 1);
        taken.delete(server.port);
      }
      rmSync(join(tmp, `round-${round}`), { recursive: true, force: true });
    }
  } finally {
    await Promise.all(servers.map((s) => stopServer(s)));
    await receiver.close();
    rmSync(tmp, { recursive: true, force: true });
  }

  const row = (label: string, pick: (f: Figures) => number[], unit: string, higherIsBetter: boolean, variant: Variant) => {
    const a = median(pick(figures.get(off)!))!;
    const b = median(pick(figures.get(variant)!))!;
    const ratio = b / a;
    const cost = higherIsBetter ? 1 - ratio : ratio - 1;
    const best = (values: number[]) => (higherIsBetter ? Math.max(...values) : Math.min(...values));
    const bestRatio = best(pick(figures.get(variant)!)) / best(pick(figures.get(off)!));
    // Paired: each round's variant against that round's untraced edge, then the median of those ratios.
    const pairedRatio = median(pick(figures.get(variant)!).map((v, i) => v / pick(figures.get(off)!)[i]))!;
    const costOf = (r: number) => (higherIsBetter ? 1 - r : r - 1) * 100;
    return { label, variant: variant.name, off: a, on: b, unit, ratio, costPct: cost * 100, pairedCostPct: costOf(pairedRatio), bestCostPct: costOf(bestRatio) };
  };
  const rows = specs.slice(1).flatMap((variant) => [
    row(`download ${settings.mib} MiB, 1 stream`, (f) => f.downloadMiBs, 'MiB/s', true, variant),
    row(`upload ${settings.mib} MiB, 1 stream`, (f) => f.uploadMiBs, 'MiB/s', true, variant),
    row(`sessions/s (${settings.sessions} x ${settings.concurrency} concurrent)`, (f) => f.sessionsPerSec, 'sessions/s', true, variant),
    row('session latency p95', (f) => f.p95Ms, 'ms', false, variant),
    row('server CPU per GiB downloaded', (f) => f.cpuSecPerGiB, 's', false, variant),
    row('server CPU per session', (f) => f.cpuMsPerSession, 'ms', false, variant),
  ]);
  const pct = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(1)} %`;
  console.log(`\n${'median of rounds'.padEnd(36)} ${'variant'.padEnd(14)} ${'off'.padStart(9)} ${'variant'.padStart(9)} ${'unit'.padEnd(10)} ratio  cost     paired   (best of rounds)`);
  for (const r of rows) {
    console.log(
      `${r.label.padEnd(36).slice(0, 36)} ${r.variant.padEnd(14)} ${r.off.toFixed(r.unit === 'ms' || r.unit === 's' ? 2 : 1).padStart(9)} ${r.on.toFixed(r.unit === 'ms' || r.unit === 's' ? 2 : 1).padStart(9)} ${r.unit.padEnd(10)} ${r.ratio.toFixed(3)}  ${pct(r.costPct).padEnd(8)} ${pct(r.pairedCostPct).padEnd(8)} (${pct(r.bestCostPct)})`,
    );
  }
  const perRound = (pick: (f: Figures) => number[], variant: Variant) =>
    pick(figures.get(variant)!).map((v, i) => (v / pick(figures.get(off)!)[i]).toFixed(2)).join(' ');
  for (const variant of specs.slice(1)) {
    console.log(`${variant.name}/off per round: download ${perRound((f) => f.downloadMiBs, variant)}; sessions/s ${perRound((f) => f.sessionsPerSec, variant)}`);
  }
  const phases = spansPerPhase.filter((p) => p.phase === 'sessions');
  console.log(
    `\nexported by the traced edge: ${receiver.totals.spans} spans in ${receiver.totals.requests} OTLP requests (${(receiver.totals.bytes / MiB).toFixed(1)} MiB); ` +
      `sessions phases: ${phases.map((p) => `${p.spans} spans of ${p.sessions} sessions`).join(', ')} ` +
      `(${(phases.reduce((a, p) => a + p.spans, 0) / Math.max(1, phases.reduce((a, p) => a + p.sessions, 0))).toFixed(1)} spans per session, warm-up included); unparsed requests ${receiver.totals.unparsed}`,
  );
  // The target, judged on the paired costs; the control edge's own "cost" shows how much of a figure is noise.
  const targetRows = (variant: Variant) => rows.filter((r) => r.variant === variant.name && (r.label.startsWith('download') || r.label.startsWith('sessions/s')));
  for (const variant of specs.slice(1)) {
    const shown = targetRows(variant).map((r) => `${r.label.split(' ')[0]} ${pct(r.pairedCostPct)}`).join(', ');
    if (untraced.has(variant)) console.log(`noise floor (${variant.name} against tracing off, same build and settings): ${shown}`);
    else console.log(`target for ${variant.name} (download MiB/s and sessions/s within 5 %, paired): ${shown}: ${targetRows(variant).every((r) => r.pairedCostPct <= 5) ? 'met' : 'NOT met'}`);
  }
  const errors = specs.reduce((n, v) => n + figures.get(v)!.sessionErrors, 0);
  if (errors > 0 || receiver.totals.spans === 0) {
    console.error(errors > 0 ? `FAILED: ${errors} measured sessions failed` : 'FAILED: the traced edge exported nothing');
    process.exitCode = 1;
  }
}

await main();
