import { request as httpRequest } from 'node:http';

/** One answer of the admin API: status, parsed JSON body (or the raw text), headers. */
export interface ApiAnswer<T = any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * A client of the admin REST API over real HTTP (node:http, so that a test can choose its source address: bans and
 * rate limits are per address). `base` is http://host:port; paths are below /api/v1.
 */
export function adminApi(base: string, token?: string, options: { from?: string } = {}) {
  const root = new URL(base);
  const call = <T = any>(method: string, path: string, body?: unknown, extra: { token?: string | null; from?: string; headers?: Record<string, string> } = {}) => // eslint-disable-line @typescript-eslint/no-explicit-any
    new Promise<ApiAnswer<T>>((resolve, reject) => {
      const bearer = extra.token === undefined ? token : extra.token;
      const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const req = httpRequest(
        {
          host: root.hostname,
          port: Number(root.port),
          method,
          path: `/api/v1${path}`,
          localAddress: extra.from ?? options.from,
          headers: {
            ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
            ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
            ...extra.headers,
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON: kept as text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T, headers: res.headers });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  return {
    call,
    get: <T = any>(path: string) => call<T>('GET', path), // eslint-disable-line @typescript-eslint/no-explicit-any
    post: <T = any>(path: string, body?: unknown) => call<T>('POST', path, body), // eslint-disable-line @typescript-eslint/no-explicit-any
    patch: <T = any>(path: string, body?: unknown) => call<T>('PATCH', path, body), // eslint-disable-line @typescript-eslint/no-explicit-any
    put: <T = any>(path: string, body?: unknown) => call<T>('PUT', path, body), // eslint-disable-line @typescript-eslint/no-explicit-any
    delete: <T = any>(path: string) => call<T>('DELETE', path), // eslint-disable-line @typescript-eslint/no-explicit-any
  };
}

export type AdminApi = ReturnType<typeof adminApi>;

/** Polls `check` every `everyMs` until it returns a value other than undefined/false; rejects after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 5000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
