import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseLogLine, ROOT, startProcess, type ExitInfo } from './processes';

export interface WorkerProcess {
  pid: number;
  /** Parsed pino lines from stdout (a line that is not JSON is kept as `{ raw }`) and `{ stderr }` lines. */
  logs: Record<string, unknown>[];
  exited: Promise<ExitInfo>;
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
}

/** A real worker process (`services/worker/src/main.ts`) with `env` on top of this process's PATH and HOME. */
export function startWorkerProcess(env: Record<string, string>): WorkerProcess {
  const logs: Record<string, unknown>[] = [];
  const proc = startProcess('worker', process.execPath, ['--import', 'tsx', join(ROOT, 'services/worker/src/main.ts')], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', ...env },
    onStdout: (line) => {
      if (line) logs.push(parseLogLine(line));
    },
    onStderr: (line) => logs.push({ stderr: line }),
  });
  return {
    pid: proc.child.pid!,
    logs,
    exited: proc.exited,
    kill(signal = 'SIGTERM') {
      if (!proc.exit) proc.child.kill(signal);
      return proc.exited;
    },
  };
}

export interface Delivery {
  id: string;
  status: number;
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  rawBody: string;
  /**
   * A 2xx answer to an `x-ftp-delivery` this receiver had already applied (answered 2xx before): a correct receiver
   * (services/worker/README.md, "Webhook receivers") acknowledges it and does nothing; this one records it as such.
   */
  repeat?: boolean;
}

/**
 * A webhook receiver on 127.0.0.1 that records every delivery. `answer` decides each reply (status, or 'hold' to
 * keep the request open until the test releases it); the default is 200. It behaves as the worker's README asks of a
 * receiver: it applies a delivery once per `x-ftp-delivery` (the first it answers 2xx), and marks a later 2xx of the
 * same id as a `repeat` (acknowledged, dropped).
 */
export async function startWebhookReceiver(answer: (delivery: Omit<Delivery, 'status'>, attempt: number) => number | 'hold' = () => 200) {
  const deliveries: Delivery[] = [];
  const attempts = new Map<string, number>();
  const applied = new Map<string, Delivery>();
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
      const ok = decision >= 200 && decision < 300;
      const repeat = ok && applied.has(id);
      if (ok && !repeat) applied.set(id, { ...delivery, status: decision });
      deliveries.push({ ...delivery, status: decision, ...(ok ? { repeat } : {}) });
      res.writeHead(decision).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    deliveries,
    /** The delivery applied for each id: the first answered 2xx (the later ones are repeats, dropped). */
    applied: (): ReadonlyMap<string, Delivery> => applied,
    /** Ids that got a 2xx, with how many times each (repeats included). */
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
