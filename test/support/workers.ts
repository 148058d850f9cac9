import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface WorkerProcess {
  pid: number;
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A real worker process (`services/worker/src/main.ts`) with `env` on top of this process's PATH and HOME. */
export function startWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'services/worker/src/main.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: Record<string, unknown>[] = [];
  let rest = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    const lines = (rest + text).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line) logs.push(line.startsWith('{') ? JSON.parse(line) : { raw: line });
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => logs.push({ stderr: text }));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    pid: child.pid!,
    logs,
    exited,
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface Delivery {
  id: string;
  status: number;
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  rawBody: string;
}

/**
 * A webhook receiver on 127.0.0.1 that records every delivery. `answer` decides each reply (status, or 'hold' to
 * keep the request open until the test releases it); the default is 200.
 */
export async function startWebhookReceiver(answer: (delivery: Omit<Delivery, 'status'>, attempt: number) => number | 'hold' = () => 200) {
  const deliveries: Delivery[] = [];
  const attempts = new Map<string, number>();
  const held: (() => void)[] = [];
  const server: Server = createServer((req, res) => {
    let rawBody = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (rawBody += chunk));
    req.on('end', () => {
      const id = String(req.headers['x-ftp-delivery'] ?? '');
      const attempt = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, attempt);
      const delivery = { id, headers: req.headers, rawBody, body: JSON.parse(rawBody) as Record<string, unknown> };
      const decision = answer(delivery, attempt);
      if (decision === 'hold') {
        deliveries.push({ ...delivery, status: 0 });
        held.push(() => res.destroy());
        return;
      }
      deliveries.push({ ...delivery, status: decision });
      res.writeHead(decision).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    deliveries,
    /** Ids that got a 2xx, with how many times each. */
    successes(): Map<string, number> {
      const counts = new Map<string, number>();
      for (const d of deliveries) if (d.status >= 200 && d.status < 300) counts.set(d.id, (counts.get(d.id) ?? 0) + 1);
      return counts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const release of held) release();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
