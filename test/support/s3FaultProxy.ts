import { randomBytes } from 'node:crypto';
import { Agent, createServer, request, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of a real S3 server (radosgw) that injects what the store itself cannot be made to do:
 * throttling (503 SlowDown with S3's XML error body; radosgw 16 has no rate limiter) and a store that does not answer
 * (every connection reset). Everything else is forwarded as it came: the client signs for the proxy's host, which the
 * store checks as sent, so signatures hold.
 */
export interface S3FaultProxy {
  /** `http://127.0.0.1:PORT`: give it to the client instead of the store's endpoint (path style). */
  endpoint: string;
  /** Answers the next `count` requests that `match` (default: every request) with 503 SlowDown; Infinity: all. */
  throttle(rule: { count: number; match?: (req: SeenRequest) => boolean }): void;
  /** `true`: every request's connection is reset (the store is away); `false`: forwarded again. */
  setDown(down: boolean): void;
  /** Drops the throttling rules and brings the store back. */
  clear(): void;
  /** Every request, in the order they came. */
  seen: SeenRequest[];
  close(): Promise<void>;
}

export interface SeenRequest {
  method: string;
  /** Path and query, e.g. `/bucket/key?partNumber=1&uploadId=…`. */
  url: string;
  /** The SDK's `amz-sdk-invocation-id`: the same for every attempt of one call. */
  invocation: string;
  /** The SDK's `amz-sdk-request: attempt=N`. */
  attempt: number;
  /** What the proxy did: 'slowdown', 'reset', or the store's status code once it answered. */
  outcome: 'slowdown' | 'reset' | number | 'pending';
}

interface Rule {
  left: number;
  match: (req: SeenRequest) => boolean;
}

const slowDownBody = () =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>${randomBytes(8).toString('hex')}</RequestId></Error>`;

export async function startS3FaultProxy(upstream: string): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  const agent = new Agent({ keepAlive: true });
  let rules: Rule[] = [];
  let down = false;
  const seen: SeenRequest[] = [];

  const server = createServer((req, res) => {
    const entry: SeenRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      invocation: String(req.headers['amz-sdk-invocation-id'] ?? ''),
      attempt: Number(/attempt=(\d+)/.exec(String(req.headers['amz-sdk-request'] ?? ''))?.[1] ?? 0),
      outcome: 'pending',
    };
    seen.push(entry);
    if (down) {
      entry.outcome = 'reset';
      req.socket.destroy();
      return;
    }
    const rule = rules.find((r) => r.left > 0 && r.match(entry));
    if (rule) {
      rule.left--;
      entry.outcome = 'slowdown';
      // Read what the client sends (a part's bytes), then answer as S3 does: no body to a HEAD.
      req.resume();
      req.on('end', () => {
        const body = entry.method === 'HEAD' ? '' : slowDownBody();
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body);
      });
      return;
    }
    const headers: OutgoingHttpHeaders = { ...req.headers };
    delete headers.expect; // this proxy already answered 100-continue
    const out = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (up: IncomingMessage) => {
      entry.outcome = up.statusCode ?? 0;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    throttle: ({ count, match = () => true }) => void rules.push({ left: count, match }),
    setDown: (value) => void (down = value),
    clear() {
      rules = [];
      down = false;
    },
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        agent.destroy();
      }),
  };
}
