import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { parse as parseYaml } from 'yaml';

/** The whole server configuration. Every key can be set in the YAML file (lower-case name without `FTP_`) or from the environment. */
export interface FtpConfig {
  /** FTP_HOST: address the control listener binds to. */
  host: string;
  /** FTP_PORT: control port. */
  port: number;
  /** FTP_PASV_RANGE: passive data ports, `min-max`. Every port is listened on at start-up. */
  pasvRange: { min: number; max: number };
  /** FTP_PASV_ADDRESS: IPv4 address advertised in PASV replies; empty = the control connection's local address. */
  pasvAddress: string;
  /** FTP_DATA_DIR: root of all user folders. */
  dataDir: string;
  /** FTP_USERS_FILE: YAML users file (created with a random-password `demo` user if absent). */
  usersFile: string;
  /**
   * FTP_USER_STORE: where users come from: `file` (FTP_USERS_FILE), `postgres` (FTP_USERS_DATABASE_URL) or `hook`
   * (FTP_AUTH_HOOK_URL). Unset: `postgres` when FTP_USERS_DATABASE_URL is set, `hook` when FTP_AUTH_HOOK_URL is,
   * else `file`.
   */
  userStore: 'file' | 'postgres' | 'hook';
  /** FTP_USERS_DATABASE_URL: PostgreSQL of the user store, `postgres://user[:password]@host:5432/db`. */
  usersDatabaseUrl: string;
  /** FTP_USERS_DATABASE_MIGRATE: apply the user store's schema migrations at start-up (else `ftpctl db migrate`). */
  usersDatabaseMigrate: boolean;
  /** FTP_AUTH_HOOK_URL: the identity hook every login is POSTed to; https (http only to a loopback address). */
  authHookUrl: string;
  /** FTP_AUTH_HOOK_SECRET: HMAC key that signs every hook request (x-ftp-signature), at least 16 characters. */
  authHookSecret: string;
  /** FTP_AUTH_HOOK_TIMEOUT_MS: longest wait for the hook's answer; then the login is refused. */
  authHookTimeoutMs: number;
  /** FTP_AUTH_HOOK_CACHE_SECONDS: how long a yes of the hook is reused for the same credential (0 = ask every time). */
  authHookCacheSeconds: number;
  /** FTP_AUTH_HOOK_CA: PEM file of extra CA certificates to trust for the hook (a private CA); empty = the system's. */
  authHookCa: string;
  /** FTP_ADMIN_HOST / FTP_ADMIN_PORT: HTTP listener for /healthz, /readyz, /metrics; port 0 = off. */
  adminHost: string;
  adminPort: number;
  /**
   * FTP_AGENT_PORT: HAProxy agent-check listener on FTP_ADMIN_HOST; port 0 = off (the default). It answers `ready`, or
   * `drain` while the replica is not ready (draining, no Redis, storage refusing): HAProxy then sends it no new
   * connections but leaves the established ones alone, while its health check (/healthz) takes out a replica that
   * does not answer at all, ending its sessions at once (deploy/haproxy/haproxy.cfg).
   */
  agentPort: number;
  /**
   * FTP_API_HOST / FTP_API_PORT: the admin REST API (`/api/v1`: users, groups, sessions, bans; bearer tokens with
   * scopes); port 0 = off (the default). Keep it off the public network: a cluster-internal address only.
   */
  apiHost: string;
  apiPort: number;
  /**
   * FTP_API_TOKENS_FILE: where the admin API's tokens are kept (only their SHA-256) when users do not come from
   * PostgreSQL (which keeps them in its own table); `ftpctl token create` writes it. Empty: `api-tokens.yaml` beside
   * FTP_USERS_FILE.
   */
  apiTokensFile: string;
  /**
   * FTP_TRANSFER_PROGRESS_SECONDS: how often a session with a running transfer reports its bytes to the cluster-wide
   * session record, for the admin API's live view (one registry update per running transfer per period); 0 = only
   * with the 15 s heartbeat.
   */
  transferProgressSeconds: number;
  /**
   * FTP_MAX_SESSIONS: sessions overall; FTP_MAX_SESSIONS_PER_USER; FTP_MAX_SESSIONS_PER_IP (by default a tenth of the
   * overall default, so one address can never take every slot). 0 = unlimited.
   */
  maxSessions: number;
  maxSessionsPerUser: number;
  maxSessionsPerIp: number;
  /** FTP_MAX_UNAUTHENTICATED_PER_IP: sessions of one address that have not logged in yet (sshd's MaxStartups). 0 = unlimited. */
  maxUnauthenticatedPerIp: number;
  /** FTP_LOGIN_GRACE_TIME: seconds from connect to a successful login; traffic does not extend it (sshd's LoginGraceTime). */
  loginGraceTime: number;
  /** FTP_BAN_AFTER_FAILURES failed logins from one address ban it for FTP_BAN_SECONDS (0 = never ban). */
  banAfterFailures: number;
  banSeconds: number;
  /** FTP_IDLE_TIMEOUT: seconds a control connection may stay silent outside a transfer. */
  idleTimeout: number;
  /** FTP_DATA_CONNECT_TIMEOUT: seconds to wait for a data connection to be established. */
  dataConnectTimeout: number;
  /** FTP_STALL_TIMEOUT: seconds a transfer may go without moving a byte. */
  stallTimeout: number;
  /** FTP_DRAIN_SECONDS: on SIGTERM, how long running transfers may continue before they are cut. */
  drainSeconds: number;
  /** FTP_ALLOW_FOREIGN_ACTIVE: allow PORT/EPRT to an address other than the client's (FXP; opens bounce attacks). */
  allowForeignActive: boolean;
  /** FTP_ALLOW_FOREIGN_DATA: accept passive data connections from an address other than the control peer's. */
  allowForeignData: boolean;
  /** FTP_FSYNC_UPLOADS: flush uploads to disk, their data and their new name (the directory), before replying 226. */
  fsyncUploads: boolean;
  /**
   * FTP_STORAGE_METADATA_IO: `sync` runs file-system metadata calls (open, stat, rename) on the event loop, which is
   * several times faster on a local disk (the default); `async` keeps them on the thread pool, which a network file
   * system (NFS, EFS, CephFS) needs, or one slow call stalls every session of the process.
   */
  storageMetadataIo: 'sync' | 'async';
  /**
   * FTP_STORAGE: where users' files live. `local`: folders under FTP_DATA_DIR (a volume every replica mounts). `s3`:
   * objects in an S3-compatible bucket (FTP_S3_BUCKET), each user's home a key prefix under FTP_S3_PREFIX; credentials
   * come from the AWS SDK's standard chain (environment, web identity / IRSA), never from this file.
   */
  storage: 'local' | 's3';
  /** FTP_S3_ENDPOINT: the store's URL (radosgw, MinIO); empty = AWS S3 of FTP_S3_REGION. */
  s3Endpoint: string;
  /** FTP_S3_REGION. */
  s3Region: string;
  /** FTP_S3_BUCKET: must exist; the edge does not start without it. */
  s3Bucket: string;
  /** FTP_S3_PREFIX: key prefix of every home (e.g. `homes/`); empty = the bucket's root. */
  s3Prefix: string;
  /** FTP_S3_FORCE_PATH_STYLE: `endpoint/bucket/key` URLs instead of `bucket.endpoint/key` (most self-hosted stores). */
  s3ForcePathStyle: boolean;
  /** FTP_S3_PART_SIZE: bytes per multipart part (5 MiB to 5 GiB); an upload holds at most two in memory. */
  s3PartSize: number;
  /** FTP_S3_ABANDONED_UPLOAD_HOURS: unfinished uploads older than this are aborted (their parts freed); 0 = never. */
  s3AbandonedUploadHours: number;
  /**
   * FTP_MAX_LIST_ENTRIES: a directory with more entries is not listed (LIST, NLST, MLSD, STAT: 550 naming the limit),
   * so one user's huge folder cannot hold a replica's CPU and memory. FTP_MAX_PATH_LENGTH (bytes) and
   * FTP_MAX_PATH_DEPTH (levels) bound every path a client names, in every protocol (553 in FTP).
   */
  maxListEntries: number;
  maxPathLength: number;
  maxPathDepth: number;
  /** FTP_TLS_ENABLED: offer explicit FTPS (AUTH TLS) and, with FTP_IMPLICIT_TLS_PORT, implicit FTPS. */
  tlsEnabled: boolean;
  /** FTP_TLS_CERT / FTP_TLS_KEY: PEM files, reloaded when they change. Empty: a self-signed pair in FTP_TLS_DIR. */
  tlsCert: string;
  tlsKey: string;
  /** FTP_TLS_DIR: where the self-signed certificate of the embedded default is kept. */
  tlsDir: string;
  /** FTP_IMPLICIT_TLS_PORT: implicit FTPS listener (conventionally 990); 0 = off. */
  implicitTlsPort: number;
  /** FTP_SFTP_PORT: SFTP (SSH) listener; 0 = off. FTP_SFTP_HOST: its address (empty: FTP_HOST). */
  sftpPort: number;
  sftpHost: string;
  /**
   * FTP_SFTP_HOST_KEYS: private host key files (PEM or OpenSSH), comma-separated; every replica must present the same.
   * Empty: ed25519 and RSA-3072 keys generated once in FTP_TLS_DIR and reused.
   */
  sftpHostKeys: string[];
  /** FTP_SFTP_MAX_AUTH_TRIES: authentication attempts per SSH connection (sshd's MaxAuthTries). */
  sftpMaxAuthTries: number;
  /** FTP_TLS_REQUIRE_CONTROL: USER on a clear control connection gets 530. */
  tlsRequireControl: boolean;
  /** FTP_TLS_REQUIRE_DATA: transfers need PROT P (521 otherwise, 534 for PROT C). */
  tlsRequireData: boolean;
  /** FTP_TLS_REQUIRE_REUSE: a protected data connection must resume a TLS session (proves it is the same client). */
  tlsRequireReuse: boolean;
  /**
   * FTP_TLS_RENEW_TICKETS: a data connection that resumes a TLS 1.3 session gets a fresh ticket, as OpenSSL and vsftpd
   * do. Cuts ~40 ms off every small upload of a client with Nagle's algorithm on (Python's ftplib); but a client that
   * closes a data connection with that ticket unread resets it and may lose its last bytes (off by default: see
   * libs/ftp-session/README.md).
   */
  tlsRenewTickets: boolean;
  /** FTP_TLS_TICKET_KEYS: 48 bytes, base64, shared by all replicas so any can resume another's session; empty = random. */
  tlsTicketKeys: string;
  /**
   * FTP_TLS_CIPHERS: the TLS 1.2 cipher suites, an OpenSSL cipher list. Default: AEAD with forward secrecy only
   * (ECDHE with AES-GCM or ChaCha20-Poly1305). TLS 1.3 suites stay OpenSSL's unless `TLS_…` names are listed too.
   */
  tlsCiphers: string;
  /**
   * FTP_DEFAULT_*: the limits of a user for which neither the user nor any of its groups sets one (issue 16: they hold
   * across every replica and protocol). Bytes, bytes/s or counts; 0 = no limit (the default of each). A user's or a
   * group's own value, 0 included, wins over these.
   * - FTP_DEFAULT_QUOTA_BYTES / FTP_DEFAULT_QUOTA_FILES: what a user's home may hold (published files).
   * - FTP_DEFAULT_DAILY_UPLOAD_BYTES / FTP_DEFAULT_DAILY_DOWNLOAD_BYTES: volume per UTC day.
   * - FTP_DEFAULT_BANDWIDTH_UP / FTP_DEFAULT_BANDWIDTH_DOWN: bytes/s shared by all of a user's transfers, cluster-wide.
   * - FTP_DEFAULT_SESSION_BANDWIDTH_UP / FTP_DEFAULT_SESSION_BANDWIDTH_DOWN: bytes/s of each one session.
   * - FTP_DEFAULT_SESSIONS_PER_MINUTE: new sessions (logins) of one user per minute, cluster-wide.
   */
  defaultLimits: {
    quotaBytes: number;
    quotaFiles: number;
    dailyUploadBytes: number;
    dailyDownloadBytes: number;
    bandwidthUp: number;
    bandwidthDown: number;
    sessionBandwidthUp: number;
    sessionBandwidthDown: number;
    sessionsPerMinute: number;
  };
  /** FTP_SESSIONS_PER_MINUTE_PER_IP: new connections from one client address per minute, cluster-wide; 0 = unlimited. */
  sessionsPerMinutePerIp: number;
  /**
   * REDIS_URL: shared state for a cluster (sessions, passive-port leases, bans, TLS session cache); empty = this
   * process alone, with in-memory state.
   */
  redisUrl: string;
  /** FTP_REDIS_PREFIX: prefix of every key this service writes, so several deployments can share one Redis. */
  redisPrefix: string;
  /**
   * FTP_UPLOAD_EVENTS: which uploads become BullMQ jobs for the post-upload workers: `completed` (the default), `all`
   * (aborted ones too) or `off`. Only with REDIS_URL: without Redis there is no queue.
   */
  uploadEvents: 'off' | 'completed' | 'all';
  /**
   * FTP_OUTBOX_DIR: a directory where upload events that wait for Redis are also written, so that an edge that dies or
   * restarts during an outage does not lose them (the next start delivers them); empty = memory only.
   */
  outboxDir: string;
  /** FTP_UPLOAD_SHA256: hash uploads while receiving them and put the sha256 on the event (uploads from offset 0 only). */
  uploadSha256: boolean;
  /**
   * FTP_PROXY_PROTOCOL_FROM: load balancers (addresses or CIDRs, comma-separated) whose connections start with a
   * PROXY protocol v1/v2 header; the client address it carries then drives limits, bans, logs and data checks.
   */
  proxyProtocolFrom: string[];
  /** FTP_RELAY_PORT: where peers hand over data connections that reached them for a lease of this replica; 0 = off. */
  relayPort: number;
  /** FTP_ADVERTISE_HOST: the address peers reach this replica's relay port at; empty = FTP_HOST (or the first non-loopback address when FTP_HOST is a wildcard). */
  advertiseHost: string;
  /**
   * FTP_XFERLOG_FILE: also append one line per finished upload or download (completed or not) to this file in the
   * wu-ftpd/vsftpd xferlog format, for the log analysers that read it; empty = off. Written asynchronously; SIGHUP
   * reopens it (log rotation). Each replica needs a file of its own.
   */
  xferlogFile: string;
  /**
   * FTP_METRICS_USER_LABELS: also export transfers and bytes per user (`ftp_user_*` metrics). Off by default: one
   * series per user and direction. Only authenticated users get a series, so the label set is the users file.
   */
  metricsUserLabels: boolean;
  /**
   * FTP_ZERO_COPY: `auto` moves the bytes of clear-text binary FTP transfers with sendfile/splice off the event loop
   * where the native addon (@ftp/zero-copy) was built and the storage is local; `off` always uses Node streams. TLS
   * data connections, ASCII mode and hashed uploads use streams either way.
   */
  zeroCopy: 'auto' | 'off';
  /** FTP_BANNER: text of the 220 greeting. */
  banner: string;
  /** FTP_REPLICA_ID: this process's name in cluster state and logs. */
  replicaId: string;
  /** FTP_LOG_LEVEL: pino level. */
  logLevel: string;
  /**
   * The post-upload worker's own settings (services/worker); it reads every other one (REDIS_URL, FTP_REDIS_PREFIX,
   * FTP_DATA_DIR, FTP_STORAGE and FTP_S3_*) from this same model, so an edge and its workers given one file or one
   * environment cannot disagree on where files and jobs are.
   * - WORKER_CONCURRENCY: jobs at once per process.
   * - WORKER_LOCK_MS: a job whose worker stopped renewing its lock this long is taken over by another (crash); a worker
   *   that loses a lock stops that job. Keep it well above the Redis failover time (3× the longest outage; default 30 s).
   * - WORKER_ADMIN_HOST / WORKER_ADMIN_PORT: /healthz, /readyz, /metrics; port 0 = off.
   * - WORKER_LOG_LEVEL: pino level.
   * - WORKER_PIPELINES: the pipelines file; absent (the default path not there): every upload gets a sha256 sidecar.
   */
  worker: {
    concurrency: number;
    lockMs: number;
    adminHost: string;
    adminPort: number;
    logLevel: string;
    pipelines: string;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Parser<T> = (raw: string) => T;

/** A setting: `key` of FtpConfig, or `key.field` of one of its groups (defaultLimits.quotaBytes, worker.concurrency). */
type Group = 'defaultLimits' | 'worker';
type SpecKey = keyof FtpConfig | { [G in Group]: `${G}.${keyof FtpConfig[G] & string}` }[Group];
type SpecValue<K extends SpecKey> = K extends keyof FtpConfig
  ? FtpConfig[K]
  : K extends `${infer G extends Group}.${infer F}`
    ? F extends keyof FtpConfig[G]
      ? FtpConfig[G][F]
      : never
    : never;

interface KeySpec<K extends SpecKey> {
  key: K;
  env: string;
  parse: Parser<SpecValue<K>>;
  fallback: () => SpecValue<K>;
}

const fail = (message: string): never => {
  throw new Error(message);
};

const text: Parser<string> = (raw) => raw;

const integer =
  (min: number, max: number): Parser<number> =>
  (raw) => {
    const value = Number(raw.trim());
    if (!/^\d+$/.test(raw.trim()) || value < min || value > max) {
      fail(`expected a whole number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };

const port = integer(1, 65535);

const bool: Parser<boolean> = (raw) => {
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  return fail(`expected true or false, got "${raw}"`);
};

const portRange: Parser<{ min: number; max: number }> = (raw) => {
  const match = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(raw);
  if (!match) return fail(`expected a port range like 30000-30099, got "${raw}"`);
  const min = port(match[1]);
  const max = port(match[2]);
  if (min > max) fail(`range start ${min} is above its end ${max}`);
  if (max - min + 1 > 10000) fail(`at most 10000 ports, got ${max - min + 1}`);
  return { min, max };
};

const ipv4OrEmpty: Parser<string> = (raw) => {
  const value = raw.trim();
  if (value === '') return value;
  const parts = value.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    fail(`expected an IPv4 address (PASV can only carry IPv4), got "${raw}"`);
  }
  return value;
};

const fileList: Parser<string[]> = (raw) => raw.split(',').map((entry) => entry.trim()).filter(Boolean);

const addressList: Parser<string[]> = (raw) => {
  const entries = raw.split(',').map((entry) => entry.trim()).filter(Boolean);
  for (const entry of entries) {
    const [address, prefix, extra] = entry.split('/');
    const family = isIP(address);
    const maxPrefix = family === 6 ? 128 : 32;
    if (!family || extra !== undefined || (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) <= maxPrefix))) {
      fail(`expected addresses or CIDRs separated by commas, got "${entry}"`);
    }
  }
  return entries;
};

const ticketKeys: Parser<string> = (raw) => {
  const value = raw.trim();
  if (value !== '' && Buffer.from(value, 'base64').length !== 48) fail('expected 48 bytes in base64 (openssl rand -base64 48)');
  return value;
};

/** AEAD suites with forward secrecy (Mozilla's "intermediate" list without DHE): no CBC, CCM, ARIA or static RSA. */
const DEFAULT_TLS_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

const cipherList: Parser<string> = (raw) => {
  const value = raw.trim();
  if (value === '') return DEFAULT_TLS_CIPHERS; // not Node's default list, which has CBC suites
  try {
    createSecureContext({ ciphers: value });
  } catch (err) {
    fail(`expected an OpenSSL cipher list (openssl ciphers -v '…'), got "${raw}": ${(err as Error).message}`);
  }
  return value;
};

const oneOf =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (raw) =>
    values.includes(raw as T) ? (raw as T) : fail(`expected one of ${values.join(', ')}, got "${raw}"`);

const USER_STORES = ['file', 'postgres', 'hook'] as const;

/** A URL setting that may be empty (off); `ok` judges the parsed URL, `expected` says what was wanted. */
const optionalUrl =
  (ok: (url: URL) => boolean, expected: string): Parser<string> =>
  (raw) => {
    const value = raw.trim();
    if (value === '') return value;
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (!url || !ok(url)) fail(expected);
    return value;
  };

const databaseUrl = optionalUrl(
  (url) => (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && Boolean(url.hostname),
  'expected a PostgreSQL URL like postgres://ftp@db:5432/ftp',
);

const LOOPBACK_HOSTS = ['127.0.0.1', '[::1]', 'localhost'];

const hookUrl = optionalUrl(
  (url) => url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.includes(url.hostname)),
  'expected an https:// URL (plain http only to a loopback address)',
);

/** A key prefix: relative, '/'-separated, no empty, '.' or '..' segment; a trailing '/' is added. */
const s3Prefix: Parser<string> = (raw) => {
  const value = raw.trim().replace(/\/+$/, '');
  if (value === '') return '';
  if (value.startsWith('/') || value.split('/').some((s) => s === '' || s === '.' || s === '..')) fail('expected a key prefix like homes or tenants/acme');
  return `${value}/`;
};

const logLevel = oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const spec = <K extends SpecKey>(key: K, env: string, parse: Parser<SpecValue<K>>, fallback: () => SpecValue<K>) =>
  ({ key, env, parse, fallback }) as KeySpec<K>;

/** A byte count, rate or count of a limit: 0 (none) up to 2^53 - 1. */
const limit = integer(0, Number.MAX_SAFE_INTEGER);

const SPECS = [
  spec('host', 'FTP_HOST', text, () => '127.0.0.1'),
  spec('port', 'FTP_PORT', port, () => 2121),
  spec('pasvRange', 'FTP_PASV_RANGE', portRange, () => ({ min: 30000, max: 30099 })),
  spec('pasvAddress', 'FTP_PASV_ADDRESS', ipv4OrEmpty, () => ''),
  spec('dataDir', 'FTP_DATA_DIR', text, () => './data'),
  spec('usersFile', 'FTP_USERS_FILE', text, () => './users.yaml'),
  spec('userStore', 'FTP_USER_STORE', oneOf(USER_STORES), () => 'file'), // unset: chosen in resolveUserStore
  spec('usersDatabaseUrl', 'FTP_USERS_DATABASE_URL', databaseUrl, () => ''),
  spec('usersDatabaseMigrate', 'FTP_USERS_DATABASE_MIGRATE', bool, () => true),
  spec('authHookUrl', 'FTP_AUTH_HOOK_URL', hookUrl, () => ''),
  spec('authHookSecret', 'FTP_AUTH_HOOK_SECRET', text, () => ''),
  spec('authHookTimeoutMs', 'FTP_AUTH_HOOK_TIMEOUT_MS', integer(100, 60_000), () => 5000),
  spec('authHookCacheSeconds', 'FTP_AUTH_HOOK_CACHE_SECONDS', integer(0, 86_400), () => 60),
  spec('authHookCa', 'FTP_AUTH_HOOK_CA', (raw) => raw.trim(), () => ''),
  spec('adminHost', 'FTP_ADMIN_HOST', text, () => '127.0.0.1'),
  spec('adminPort', 'FTP_ADMIN_PORT', integer(0, 65535), () => 9090),
  spec('agentPort', 'FTP_AGENT_PORT', integer(0, 65535), () => 0),
  spec('apiHost', 'FTP_API_HOST', text, () => '127.0.0.1'),
  spec('apiPort', 'FTP_API_PORT', integer(0, 65535), () => 0),
  spec('apiTokensFile', 'FTP_API_TOKENS_FILE', (raw) => raw.trim(), () => ''),
  spec('transferProgressSeconds', 'FTP_TRANSFER_PROGRESS_SECONDS', integer(0, 3600), () => 1),
  spec('maxSessions', 'FTP_MAX_SESSIONS', integer(0, 1_000_000), () => 2000),
  spec('maxSessionsPerUser', 'FTP_MAX_SESSIONS_PER_USER', integer(0, 1_000_000), () => 0),
  spec('maxSessionsPerIp', 'FTP_MAX_SESSIONS_PER_IP', integer(0, 1_000_000), () => 200),
  spec('maxUnauthenticatedPerIp', 'FTP_MAX_UNAUTHENTICATED_PER_IP', integer(0, 1_000_000), () => 32),
  spec('loginGraceTime', 'FTP_LOGIN_GRACE_TIME', integer(1, 3600), () => 30),
  spec('banAfterFailures', 'FTP_BAN_AFTER_FAILURES', integer(0, 1_000_000), () => 10),
  spec('banSeconds', 'FTP_BAN_SECONDS', integer(1, 31_536_000), () => 900),
  spec('idleTimeout', 'FTP_IDLE_TIMEOUT', integer(1, 86_400), () => 300),
  spec('dataConnectTimeout', 'FTP_DATA_CONNECT_TIMEOUT', integer(1, 3600), () => 30),
  spec('stallTimeout', 'FTP_STALL_TIMEOUT', integer(1, 86_400), () => 120),
  spec('drainSeconds', 'FTP_DRAIN_SECONDS', integer(0, 86_400), () => 30),
  spec('allowForeignActive', 'FTP_ALLOW_FOREIGN_ACTIVE', bool, () => false),
  spec('allowForeignData', 'FTP_ALLOW_FOREIGN_DATA', bool, () => false),
  spec('fsyncUploads', 'FTP_FSYNC_UPLOADS', bool, () => true),
  spec('storageMetadataIo', 'FTP_STORAGE_METADATA_IO', oneOf(['sync', 'async'] as const), () => 'sync'),
  spec('storage', 'FTP_STORAGE', oneOf(['local', 's3'] as const), () => 'local'),
  spec('s3Endpoint', 'FTP_S3_ENDPOINT', optionalUrl((url) => ['http:', 'https:'].includes(url.protocol) && Boolean(url.hostname), 'expected an http(s):// URL'), () => ''),
  spec('s3Region', 'FTP_S3_REGION', text, () => 'us-east-1'),
  spec('s3Bucket', 'FTP_S3_BUCKET', (raw) => raw.trim(), () => ''),
  spec('s3Prefix', 'FTP_S3_PREFIX', s3Prefix, () => ''),
  spec('s3ForcePathStyle', 'FTP_S3_FORCE_PATH_STYLE', bool, () => false),
  spec('s3PartSize', 'FTP_S3_PART_SIZE', integer(5 * 1024 * 1024, 5 * 1024 * 1024 * 1024), () => 16 * 1024 * 1024),
  spec('s3AbandonedUploadHours', 'FTP_S3_ABANDONED_UPLOAD_HOURS', integer(0, 100_000), () => 168),
  spec('maxListEntries', 'FTP_MAX_LIST_ENTRIES', integer(1, 100_000_000), () => 100_000),
  spec('maxPathLength', 'FTP_MAX_PATH_LENGTH', integer(16, 65_536), () => 4096),
  spec('maxPathDepth', 'FTP_MAX_PATH_DEPTH', integer(1, 4096), () => 256),
  spec('tlsEnabled', 'FTP_TLS_ENABLED', bool, () => true),
  spec('tlsCert', 'FTP_TLS_CERT', text, () => ''),
  spec('tlsKey', 'FTP_TLS_KEY', text, () => ''),
  spec('tlsDir', 'FTP_TLS_DIR', text, () => './tls'),
  spec('implicitTlsPort', 'FTP_IMPLICIT_TLS_PORT', integer(0, 65535), () => 0),
  spec('sftpPort', 'FTP_SFTP_PORT', integer(0, 65535), () => 2222),
  spec('sftpHost', 'FTP_SFTP_HOST', text, () => ''),
  spec('sftpHostKeys', 'FTP_SFTP_HOST_KEYS', fileList, () => []),
  spec('sftpMaxAuthTries', 'FTP_SFTP_MAX_AUTH_TRIES', integer(1, 100), () => 6),
  spec('tlsRequireControl', 'FTP_TLS_REQUIRE_CONTROL', bool, () => false),
  spec('tlsRequireData', 'FTP_TLS_REQUIRE_DATA', bool, () => false),
  spec('tlsRequireReuse', 'FTP_TLS_REQUIRE_REUSE', bool, () => true),
  spec('tlsRenewTickets', 'FTP_TLS_RENEW_TICKETS', bool, () => false),
  spec('tlsTicketKeys', 'FTP_TLS_TICKET_KEYS', ticketKeys, () => ''),
  spec('tlsCiphers', 'FTP_TLS_CIPHERS', cipherList, () => DEFAULT_TLS_CIPHERS),
  spec('defaultLimits.quotaBytes', 'FTP_DEFAULT_QUOTA_BYTES', limit, () => 0),
  spec('defaultLimits.quotaFiles', 'FTP_DEFAULT_QUOTA_FILES', limit, () => 0),
  spec('defaultLimits.dailyUploadBytes', 'FTP_DEFAULT_DAILY_UPLOAD_BYTES', limit, () => 0),
  spec('defaultLimits.dailyDownloadBytes', 'FTP_DEFAULT_DAILY_DOWNLOAD_BYTES', limit, () => 0),
  spec('defaultLimits.bandwidthUp', 'FTP_DEFAULT_BANDWIDTH_UP', limit, () => 0),
  spec('defaultLimits.bandwidthDown', 'FTP_DEFAULT_BANDWIDTH_DOWN', limit, () => 0),
  spec('defaultLimits.sessionBandwidthUp', 'FTP_DEFAULT_SESSION_BANDWIDTH_UP', limit, () => 0),
  spec('defaultLimits.sessionBandwidthDown', 'FTP_DEFAULT_SESSION_BANDWIDTH_DOWN', limit, () => 0),
  spec('defaultLimits.sessionsPerMinute', 'FTP_DEFAULT_SESSIONS_PER_MINUTE', integer(0, 1_000_000), () => 0),
  spec('sessionsPerMinutePerIp', 'FTP_SESSIONS_PER_MINUTE_PER_IP', integer(0, 1_000_000), () => 0),
  spec('redisUrl', 'REDIS_URL', text, () => ''),
  spec('redisPrefix', 'FTP_REDIS_PREFIX', text, () => 'ftp:'),
  spec('uploadEvents', 'FTP_UPLOAD_EVENTS', oneOf(['off', 'completed', 'all'] as const), () => 'completed'),
  spec('uploadSha256', 'FTP_UPLOAD_SHA256', bool, () => false),
  spec('outboxDir', 'FTP_OUTBOX_DIR', (raw) => raw.trim(), () => ''),
  spec('proxyProtocolFrom', 'FTP_PROXY_PROTOCOL_FROM', addressList, () => []),
  spec('relayPort', 'FTP_RELAY_PORT', integer(0, 65535), () => 2122),
  spec('advertiseHost', 'FTP_ADVERTISE_HOST', text, () => ''),
  spec('xferlogFile', 'FTP_XFERLOG_FILE', (raw) => raw.trim(), () => ''),
  spec('zeroCopy', 'FTP_ZERO_COPY', oneOf(['auto', 'off'] as const), () => 'auto'),
  spec('metricsUserLabels', 'FTP_METRICS_USER_LABELS', bool, () => false),
  spec('banner', 'FTP_BANNER', text, () => 'FTP service ready'),
  spec('replicaId', 'FTP_REPLICA_ID', text, () => `${hostname()}-${process.pid}`),
  spec('logLevel', 'FTP_LOG_LEVEL', logLevel, () => 'info'),
  spec('worker.concurrency', 'WORKER_CONCURRENCY', integer(1, 1000), () => 16),
  spec('worker.lockMs', 'WORKER_LOCK_MS', integer(1000, 3_600_000), () => 30_000),
  spec('worker.adminHost', 'WORKER_ADMIN_HOST', text, () => '127.0.0.1'),
  spec('worker.adminPort', 'WORKER_ADMIN_PORT', integer(0, 65535), () => 9091),
  spec('worker.logLevel', 'WORKER_LOG_LEVEL', logLevel, () => 'info'),
  spec('worker.pipelines', 'WORKER_PIPELINES', text, () => './pipelines.yaml'),
] as const;

/** The YAML key of a setting: its environment name without `FTP_`, lower case (FTP_PASV_RANGE → pasv_range, REDIS_URL → redis_url). */
const yamlKey = (env: string) => (env.startsWith('FTP_') ? env.slice('FTP_'.length) : env).toLowerCase();

/** YAML scalars become strings so that file and environment values go through the same parser. */
function yamlValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  // A list (proxy_protocol_from) reads like its comma-separated environment form.
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(',');
  throw new Error(`expected a plain value, got ${JSON.stringify(value)}`);
}

function readYaml(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  if (parsed == null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path}: expected a mapping of keys`);
  const known = new Set(SPECS.map((s) => yamlKey(s.env)));
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) throw new ConfigError(`config file ${path}: unknown key "${key}"`);
  }
  return parsed as Record<string, unknown>;
}

/** `--config PATH` or `--config=PATH` from argv, if given. */
export function configPathFromArgv(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') return argv[i + 1] ?? fail('--config needs a path');
    if (argv[i].startsWith('--config=')) return argv[i].slice('--config='.length);
  }
  return undefined;
}

/** Loads and validates the configuration: defaults < YAML file < environment. Throws ConfigError naming the bad key. */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): FtpConfig {
  const env = options.env ?? process.env;
  const file = options.file ? readYaml(options.file) : {};
  const config: Record<string, unknown> = {};
  const given = new Set<string>();
  for (const s of SPECS) {
    const fromEnv = env[s.env];
    const fromFile = file[yamlKey(s.env)];
    const source = fromEnv !== undefined ? s.env : `${yamlKey(s.env)} (in ${options.file})`;
    if (fromEnv !== undefined || fromFile !== undefined) given.add(s.key);
    let value: unknown;
    try {
      if (fromEnv !== undefined) value = s.parse(fromEnv);
      else if (fromFile !== undefined) value = s.parse(yamlValue(fromFile));
      else value = s.fallback();
    } catch (err) {
      throw new ConfigError(`${source}: ${(err as Error).message}`);
    }
    // `group.field` keys fill a group of settings (defaultLimits).
    const [key, field] = s.key.split('.');
    if (field === undefined) config[key] = value;
    else config[key] = { ...(config[key] as object | undefined), [field]: value };
  }
  const resolved = resolveUserStore(config as unknown as FtpConfig, given.has('userStore'));
  if (resolved.apiTokensFile === '') resolved.apiTokensFile = join(dirname(resolved.usersFile), 'api-tokens.yaml');
  if (resolved.apiPort !== 0 && resolved.apiPort === resolved.adminPort) throw new ConfigError(`FTP_API_PORT: ${resolved.apiPort} is FTP_ADMIN_PORT too: give the API a port of its own`);
  if (resolved.agentPort !== 0 && (resolved.agentPort === resolved.adminPort || resolved.agentPort === resolved.apiPort))
    throw new ConfigError(`FTP_AGENT_PORT: ${resolved.agentPort} is taken by FTP_ADMIN_PORT or FTP_API_PORT: give the agent a port of its own`);
  if (resolved.storage === 's3' && !resolved.s3Bucket) throw new ConfigError('FTP_STORAGE=s3 needs FTP_S3_BUCKET (and FTP_S3_ENDPOINT for a store other than AWS S3)');
  return resolved;
}

/** FTP_USER_STORE, chosen from the URLs when unset, and what the chosen store needs. */
function resolveUserStore(config: FtpConfig, explicit: boolean): FtpConfig {
  if (!explicit) {
    if (config.usersDatabaseUrl && config.authHookUrl)
      throw new ConfigError('FTP_USERS_DATABASE_URL and FTP_AUTH_HOOK_URL are both set: choose one with FTP_USER_STORE (postgres or hook)');
    config.userStore = config.usersDatabaseUrl ? 'postgres' : config.authHookUrl ? 'hook' : 'file';
  }
  if (config.userStore === 'postgres' && !config.usersDatabaseUrl)
    throw new ConfigError('FTP_USER_STORE=postgres needs FTP_USERS_DATABASE_URL (postgres://user@host:5432/db)');
  if (config.userStore === 'hook') {
    if (!config.authHookUrl) throw new ConfigError('FTP_USER_STORE=hook needs FTP_AUTH_HOOK_URL (https://…)');
    if (config.authHookSecret.length < 16)
      throw new ConfigError('FTP_AUTH_HOOK_SECRET: the identity hook needs a signing secret of at least 16 characters (openssl rand -hex 32)');
  }
  return config;
}
