import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** The admin HTTP listener of every process (edge and worker): /healthz (the process answers), /readyz (it accepts sessions), /metrics (Prometheus). */
export async function startAdminServer(options: {
  host: string;
  port: number;
  registry: Registry;
  ready: () => boolean;
  /** Lines added to the /readyz answer (e.g. the user store's health), ready or not. */
  details?: () => string[];
}): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = options.ready();
      const details = options.details?.() ?? [];
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${ready ? 'ready' : 'not ready'}\n${details.map((d) => `${d}\n`).join('')}`);
    } else if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return server;
}
