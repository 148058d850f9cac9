import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { signedHeaders } from '@ftp/signing';
import { formatAuthorizedKey } from './publicKeys';
import { parseUserDocument, type UserRecord } from './records';
import { readOnlyWrites, UserStoreError, type UserStore, type UserStoreHealth } from './store';
import type { AuthMethod, AuthResult, EffectiveLimits, LoginProtocol } from './types';
import { admitUser } from './verify';

export interface HookStoreOptions {
  /** FTP_AUTH_HOOK_URL: https, or http to a loopback address (a sidecar). */
  url: string;
  /** FTP_AUTH_HOOK_SECRET: HMAC key of the request signature (x-ftp-signature, as the worker's webhooks). */
  secret: string;
  /** Folder that holds every user's home; the hook's `home` is relative to it. */
  dataRoot: string;
  /** FTP_AUTH_HOOK_TIMEOUT_MS: the whole call, connect to last byte (default 5000). */
  timeoutMs?: number;
  /** FTP_AUTH_HOOK_CACHE_SECONDS × 1000: how long a yes is reused for the same credential (default 60 000; 0 = never). */
  cacheTtlMs?: number;
  maxCacheEntries?: number;
  /** FTP_AUTH_HOOK_CA: extra CA certificates (PEM) to trust, e.g. for a hook with a private CA. */
  ca?: string | Buffer;
  log?: { warn(fields: object, message: string): void; error(fields: object, message: string): void };
  now?: () => number;
  /** The server's limits (FTP_DEFAULT_*) for those the hook's answer leaves out; default none. */
  defaultLimits?: EffectiveLimits;
}

/** The request body. Exactly one of password and public_key. */
export interface HookRequest {
  user: string;
  protocol: LoginProtocol;
  /** The client's address (after PROXY protocol). */
  client: string;
  method: AuthMethod;
  password?: string;
  /** The offered key as an authorized_keys line without comment ("ssh-ed25519 AAAA…"); its signature is already checked. */
  public_key?: string;
}

const MAX_ANSWER_BYTES = 64 * 1024;
const LOOPBACK = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);

type Answer = { kind: 'allow'; record: UserRecord } | { kind: 'refuse'; why: string } | { kind: 'unavailable'; why: string };

function parseHookUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`identity hook: "${raw}" is not a URL`);
  }
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname))) return url;
  throw new Error(`identity hook: ${url.protocol}//${url.host} must be https (plain http only to a loopback address)`);
}

/**
 * The `hook` UserStore: a custom identity provider, as AWS Transfer Family calls it. Every login POSTs
 * `{user, protocol, client, method, password | public_key}` (JSON, signed with HMAC-SHA256 like the worker's
 * webhooks) and the hook answers 200 `{"user": {home, permissions, groups, allow_from, protocols, limits, …}}` (the
 * users file's fields, without password and keys) to let the user in, or 200 `{"user": null}` / 401 / 403 / 404 to
 * refuse. A timeout, a network error, a 5xx or an answer that is not one of those refuses the login too, with an error
 * log line; it never lets anyone in. The answer then goes through the same admission as every store (disabled,
 * expires_at, allow_from, protocols, auth_methods).
 *
 * A yes is reused for cacheTtlMs for the same (user, protocol, client address, credential): the cache key is an HMAC
 * under a per-process random key, so neither the password nor a plain hash of it is kept. Concurrent logins with the
 * same credential share one call. Refusals are not cached (a fixed password works at the next attempt; the ban
 * limits guessing). The store has no list of users and takes no writes.
 */
export function createHookStore(options: HookStoreOptions): UserStore {
  const url = parseHookUrl(options.url);
  if (typeof options.secret !== 'string' || options.secret.length < 16) throw new Error('identity hook: the signing secret must have at least 16 characters');
  const timeoutMs = options.timeoutMs ?? 5000;
  const ttlMs = options.cacheTtlMs ?? 60_000;
  const maxEntries = options.maxCacheEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const dataRoot = path.resolve(options.dataRoot);
  const shown = `${url.origin}${url.pathname}`;
  // `ca` alone would replace Node's trusted roots: the extra certificates are added to them.
  const ca = options.ca ? [...rootCertificates, options.ca.toString()] : undefined;
  const agent = url.protocol === 'https:' ? new https.Agent({ keepAlive: true, ca }) : new http.Agent({ keepAlive: true });
  const cacheKeySecret = randomBytes(32);
  const cache = new Map<string, { record: UserRecord; expires: number }>();
  const inFlight = new Map<string, Promise<Answer>>();
  const state = { up: true, since: Date.now(), problem: '' };

  const setUp = (up: boolean, problem = '') => {
    if (up !== state.up) Object.assign(state, { up, since: Date.now() });
    state.problem = problem;
  };

  const post = (body: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const send = url.protocol === 'https:' ? https.request : http.request;
      const request = send(
        url,
        {
          method: 'POST',
          agent,
          signal: AbortSignal.timeout(timeoutMs),
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'user-agent': 'ftp-edge-identity-hook',
            'x-ftp-request': randomUUID(),
            ...signedHeaders(options.secret, body),
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) request.destroy(new Error(`answer longer than ${MAX_ANSWER_BYTES} bytes`));
            else chunks.push(chunk);
          });
          response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          response.on('error', reject);
        },
      );
      request.on('error', (err: Error) => reject(err.name === 'AbortError' ? new Error(`no answer within ${timeoutMs} ms`) : err));
      request.end(body);
    });

  const ask = async (request: HookRequest): Promise<Answer> => {
    let answer: { status: number; text: string };
    try {
      answer = await post(JSON.stringify(request));
    } catch (err) {
      return { kind: 'unavailable', why: (err as Error).message };
    }
    if ([401, 403, 404].includes(answer.status)) return { kind: 'refuse', why: `HTTP ${answer.status}` };
    if (answer.status !== 200) return { kind: 'unavailable', why: `HTTP ${answer.status}` };
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.text);
    } catch {
      return { kind: 'unavailable', why: 'the answer is not JSON' };
    }
    const user = (parsed as { user?: unknown } | null)?.user;
    if (user === null || user === undefined) return { kind: 'refuse', why: 'answered without a user' };
    const errors: string[] = [];
    const record = parseUserDocument(request.user, user, { at: 'user', errors }, { credentials: false });
    if (!record || errors.length > 0) return { kind: 'unavailable', why: `invalid user in the answer: ${errors.join('; ')}` };
    return { kind: 'allow', record };
  };

  const cacheKey = (request: HookRequest) =>
    createHmac('sha256', cacheKeySecret)
      .update(JSON.stringify([request.user, request.protocol, request.client, request.method, request.password ?? request.public_key]))
      .digest('base64');

  const login = async (request: HookRequest): Promise<AuthResult> => {
    const key = cacheKey(request);
    const cached = cache.get(key);
    let record: UserRecord;
    if (cached && cached.expires > now()) record = cached.record;
    else {
      if (cached) cache.delete(key);
      let pending = inFlight.get(key);
      if (!pending) {
        pending = ask(request).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      const started = now();
      const answer = await pending;
      if (answer.kind === 'unavailable') {
        setUp(false, answer.why);
        options.log?.error(
          { user: request.user, protocol: request.protocol, hook: shown, reason: answer.why, ms: now() - started },
          'identity hook failed: login refused',
        );
        return { ok: false, reason: 'unavailable' };
      }
      setUp(true);
      if (answer.kind === 'refuse') return { ok: false, reason: request.method === 'password' ? 'bad-password' : 'bad-key' };
      record = answer.record;
      if (ttlMs > 0) {
        while (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
        cache.set(key, { record, expires: now() + ttlMs });
      }
    }
    return admitUser({
      name: request.user,
      record,
      groupOf: () => undefined, // the hook answers with the user's settings merged already; groups are labels
      dataRoot,
      clientAddress: request.client,
      protocol: request.protocol,
      method: request.method,
      now: now(),
      defaultLimits: options.defaultLimits,
    });
  };

  const unsupported = (): never => {
    throw new UserStoreError('unsupported', `the identity hook ${shown} (FTP_USER_STORE=hook) answers logins only: it has no list of users or groups`);
  };

  return {
    backend: 'hook',
    authenticate: (user, password, client, protocol) => login({ user, protocol, client, method: 'password', password }),
    authenticateKey: (user, key, client, protocol) =>
      login({ user, protocol, client, method: 'publickey', public_key: formatAuthorizedKey({ type: key.type, data: key.data }) }),
    isAnonymous: () => false,
    // Unknown before the hook answers; FTP checks the answer's require_tls at PASS (and `protocols: [ftps]` says it too).
    requiresTls: () => false,
    listUsers: async () => unsupported(),
    getUser: async () => unsupported(),
    listGroups: async () => unsupported(),
    getGroup: async () => unsupported(),
    exportAll: async () => unsupported(),
    ...readOnlyWrites(`users come from the identity hook ${shown} (FTP_USER_STORE=hook): change them in the identity provider`),
    health(): UserStoreHealth {
      const detail = state.up
        ? `identity hook ${shown}: answering (${cache.size} cached answers)`
        : `identity hook ${shown} failing since ${new Date(state.since).toISOString()} (${state.problem}): logins not in the cache are refused`;
      return { backend: 'hook', up: state.up, detail, users: cache.size, since: state.since };
    },
    async close() {
      agent.destroy();
      cache.clear();
    },
  };
}
