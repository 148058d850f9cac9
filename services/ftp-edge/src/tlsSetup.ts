import { constants as cryptoConstants, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, createServer, type SecureContext } from 'node:tls';
import { createRedisConnection } from '@ftp/cluster-state';
import type { FtpConfig } from '@ftp/config';
import type { TlsProvider } from '@ftp/session';
import type { Logger } from '@ftp/telemetry';
import { generate } from 'selfsigned';

const RELOAD_CHECK_MS = 5000;
const SESSION_CACHE_MAX = 10_000;
const SESSION_TIMEOUT_S = 300;

/** Where the certificate comes from: configured files, or the embedded default's self-signed pair. */
async function certificateFiles(config: FtpConfig, log: Logger): Promise<{ cert: string; key: string }> {
  if (config.tlsCert || config.tlsKey) {
    if (!config.tlsCert || !config.tlsKey) throw new Error('FTP_TLS_CERT and FTP_TLS_KEY must be set together');
    return { cert: config.tlsCert, key: config.tlsKey };
  }
  const cert = join(config.tlsDir, 'self-signed.crt');
  const key = join(config.tlsDir, 'self-signed.key');
  if (!existsSync(cert) || !existsSync(key)) {
    const pems = await generate([{ name: 'commonName', value: hostname() }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 365 * 24 * 3600 * 1000),
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
    });
    await mkdir(config.tlsDir, { recursive: true, mode: 0o700 });
    await writeFile(key, pems.private, { mode: 0o600 });
    await writeFile(cert, pems.cert);
    log.warn({ cert }, 'generated a self-signed TLS certificate; set FTP_TLS_CERT and FTP_TLS_KEY for production');
  }
  return { cert, key };
}

function versionOf(files: { cert: string; key: string }): string {
  const c = statSync(files.cert);
  const k = statSync(files.key);
  return `${c.mtimeMs}:${c.size}:${k.mtimeMs}:${k.size}`;
}

/**
 * TLS for the edge: certificate (reloaded when its files change, as a rotated Kubernetes Secret does), ticket keys
 * (shared through configuration so replicas resume each other's sessions) and a bounded session-ID cache for TLS 1.2
 * clients without tickets. TLS 1.2 offers only FTP_TLS_CIPHERS (AEAD with forward secrecy by default) and refuses
 * client-initiated renegotiation (`startTls` also closes a connection that tries it, and logs it).
 */
export async function createTlsProvider(config: FtpConfig, log: Logger): Promise<TlsProvider & { close(): void }> {
  const files = await certificateFiles(config, log);
  const ticketKeys = config.tlsTicketKeys ? Buffer.from(config.tlsTicketKeys, 'base64') : randomBytes(48);
  const build = async (): Promise<SecureContext> =>
    createSecureContext({
      cert: await readFile(files.cert),
      key: await readFile(files.key),
      minVersion: 'TLSv1.2',
      ciphers: config.tlsCiphers,
      honorCipherOrder: true,
      // A no_renegotiation alert instead of a new handshake: renegotiation costs the server a key exchange per request.
      secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
      ticketKeys,
      sessionIdContext: 'ftp-cluster',
      sessionTimeout: SESSION_TIMEOUT_S,
    });
  let context = await build();
  let version = versionOf(files);
  logCertificate(files.cert, log);

  const reload = setInterval(() => {
    let current: string;
    try {
      current = versionOf(files);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'TLS certificate files unreadable: keeping the loaded certificate');
      return;
    }
    if (current === version) return;
    build().then(
      (fresh) => {
        context = fresh;
        version = current;
        log.info({ cert: files.cert }, 'TLS certificate reloaded');
        logCertificate(files.cert, log);
      },
      (err: Error) => log.error({ err: err.message }, 'TLS certificate not reloaded: keeping the previous one'),
    );
  }, RELOAD_CHECK_MS);
  reload.unref();

  // Never listens: it only carries session-cache events for the TLSSockets the edge creates.
  const server = createServer({ minVersion: 'TLSv1.2', ticketKeys });
  const cache = config.redisUrl ? await redisSessionCache(config, log) : memorySessionCache();
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    // OpenSSL reports every TLS 1.3 ticket here (one more per resumed data connection, now that resumption renews the
    // ticket), but TLS 1.3 resumes from the ticket alone and never looks the cache up: storing them would only cost a
    // Redis write per handshake and push TLS 1.2 sessions out of the memory cache.
    if (isTls13Session(data)) return done();
    cache.set(id.toString('hex'), data).finally(done);
  });
  server.on('resumeSession', (id: Buffer, done: (err: Error | null, data?: Buffer | null) => void) => {
    cache.get(id.toString('hex')).then((data) => done(null, data), () => done(null, null));
  });

  return {
    context: () => context,
    server,
    requireReuse: config.tlsRequireReuse,
    renewTickets: config.tlsRenewTickets,
    handshakeTimeoutMs: config.dataConnectTimeout * 1000,
    log,
    close: () => {
      clearInterval(reload);
      cache.close();
    },
  };
}

/** The certificate's SHA-256 fingerprint, as browsers, lftp and FileZilla show it, so a first user can check it. */
function logCertificate(file: string, log: Logger) {
  try {
    const cert = new X509Certificate(readFileSync(file));
    log.info({ cert: file, subject: cert.subject, notAfter: cert.validTo, sha256: cert.fingerprint256 }, 'TLS certificate fingerprint');
  } catch (err) {
    log.warn({ cert: file, err: (err as Error).message }, 'TLS certificate fingerprint not available');
  }
}

/** The DER that starts every OpenSSL session of TLS 1.3: SEQUENCE { version 1, ssl_version 0x0304, … }, after the SEQUENCE header. */
const TLS13_SESSION = Buffer.from([0x02, 0x01, 0x01, 0x02, 0x02, 0x03, 0x04]);

/** Whether `der` (a session as the `newSession` event gives it) is a TLS 1.3 one; anything unexpected counts as not. */
function isTls13Session(der: Buffer): boolean {
  if (der.length < 2 || der[0] !== 0x30) return false;
  const header = der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f);
  return der.subarray(header, header + TLS13_SESSION.length).equals(TLS13_SESSION);
}

/** TLS session-ID cache for clients without tickets: what one replica stores, every replica can resume. */
interface SessionCache {
  get(id: string): Promise<Buffer | null>;
  set(id: string, data: Buffer): Promise<void>;
  close(): void;
}

function memorySessionCache(): SessionCache {
  const sessions = new Map<string, Buffer>();
  return {
    get: async (id) => sessions.get(id) ?? null,
    set: async (id, data) => {
      if (sessions.size >= SESSION_CACHE_MAX) sessions.delete(sessions.keys().next().value!);
      sessions.set(id, data);
    },
    close: () => {},
  };
}

/** As ProFTPD's `TLSSessionCache redis:`. A Redis that is away costs a full handshake, never a failed one. */
async function redisSessionCache(config: FtpConfig, log: Logger): Promise<SessionCache> {
  const redis = createRedisConnection(config.redisUrl, 1000);
  redis.on('error', (err: Error) => log.debug({ err: err.message }, 'TLS session cache: Redis error'));
  // Start-up waits briefly for the first connection; a Redis that is away only costs full handshakes until it is back.
  const ready = await Promise.race([
    once(redis, 'ready').then(
      () => true,
      () => false, // once() rejects on the first 'error': not reachable now
    ),
    delay(2000).then(() => false),
  ]);
  if (!ready) log.warn({ url: redactUrl(config.redisUrl) }, 'TLS session cache: Redis not reachable yet, retrying in the background');
  const key = (id: string) => `${config.redisPrefix}tls:session:${id}`;
  return {
    get: (id) => redis.getBuffer(key(id)),
    set: async (id, data) => {
      await redis.set(key(id), data, 'PX', SESSION_TIMEOUT_S * 1000).catch((err: Error) =>
        log.warn({ err: err.message }, 'TLS session not cached in Redis: clients without tickets will do a full handshake'),
      );
    },
    close: () => redis.disconnect(),
  };
}

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
