import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { hashPassword } from '@ftp/identity';
import { generate } from 'selfsigned';
import ssh2 from 'ssh2';
import {
  findBinary,
  freeBlock,
  makeTempDir,
  parseLogLine,
  removeTempDir,
  ROOT,
  startProcess,
  STOP_GRACE_MS,
  stopProcess,
  waitFor,
  type ExitInfo,
  type Proc,
} from './processes';
import { TEST_PASSWORD } from './server';

export type { ExitInfo } from './processes';

/**
 * A real cluster as plain processes, for end-to-end tests and the cluster benchmarks: its own redis-server, N edge
 * replicas (`node --import tsx services/ftp-edge/src/main.ts`, or `edgeArgs`) on 127.0.0.11, .12, … and HAProxy with
 * deploy/haproxy/haproxy.cfg on 127.0.0.1 in front of them. Clients connect to `host:port` (FTP) and `host:sftpPort`
 * (SFTP) only. Every replica serves SFTP with the same host keys, generated once per cluster.
 */

export interface ClusterOptions {
  /**
   * Edge replicas, 1 to 4. Default 3. HAProxy has three servers (absent replicas are simply down), and a fourth,
   * edge-4 (FTP_EDGE_4), only in a cluster of four.
   */
  replicas?: number;
  /** HAProxy balance algorithm. Default roundrobin. */
  balance?: 'roundrobin' | 'source';
  /** Size of the passive range. Default 20. */
  pasvPorts?: number;
  /** Extra FTP_* settings for every replica, as strings, exactly as the environment would give them. */
  env?: Record<string, string>;
  /** Extra settings for one replica (index from 1), applied after `env`. */
  replicaEnv?: (index: number) => Record<string, string>;
  /** Extra YAML for the users file (appended under `users:`), e.g. a read-only user. */
  extraUsers?: string;
  anonymous?: boolean;
  /**
   * REDIS_URL of a Redis the test runs itself (e.g. a Sentinel group's `redis+sentinel://` URL) instead of the
   * cluster's own redis-server; `cluster.redis` then cannot stop or start it.
   */
  redisUrl?: string;
  /** Bound on every start-up wait (Redis, each replica, HAProxy). Default 30 s. */
  startTimeoutMs?: number;
  /**
   * Node's arguments that start an edge (its entry point and any flags before it), e.g. a bundle's path. Default
   * `--import tsx services/ftp-edge/src/main.ts`.
   */
  edgeArgs?: string[];
  /**
   * Called right after each replica process is spawned (at start and at every restart), before it is waited for, with
   * its new pid; e.g. to move it into a cgroup before any load. A throw fails the start (and stops that replica).
   */
  onReplicaSpawn?: (replica: ClusterReplica) => void;
}

export interface ClusterReplica {
  /** FTP_REPLICA_ID and the HAProxy server name: edge-1, edge-2, … */
  id: string;
  /** Loopback address the replica binds everything to (127.0.0.11 for edge-1). */
  address: string;
  adminPort: number;
  /** Pid of the current process (changes on restart). */
  pid: number;
  running: boolean;
  /** The environment the replica runs with; change it before restart() to restart with other settings. */
  env: Record<string, string>;
  /** Parsed pino lines from stdout, across restarts; a line that is not JSON is kept as `{ raw }`. */
  logs: Record<string, unknown>[];
  /** stderr lines, across restarts. */
  stderr: string[];
  /** Sends `signal` (default SIGTERM) and resolves when the process has exited; at once if it already had. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Starts the process again with the same environment; resolves when /readyz answers 200 and HAProxy has it UP. */
  restart(): Promise<void>;
  /** GET /metrics as text. */
  metrics(): Promise<string>;
}

export interface HaproxyServerState {
  backend: string;
  server: string;
  /** UP, DOWN, MAINT, "UP 1/2" (going down), … */
  status: string;
  /** Last check result (L7OK, L7STS, L4CON, …); empty in ftp_passive and sftp, whose servers track ftp_control. */
  checkStatus: string;
  sessions: number;
}

export interface ClusterRedis {
  url: string;
  port: number;
  /** Pid of the current redis-server (0 when stopped). */
  readonly pid: number;
  /** Stops redis-server (SIGTERM, then SIGKILL); nothing is saved. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty; resolves when it answers PING. */
  start(): Promise<void>;
}

export interface Cluster {
  /** Where clients connect: HAProxy. */
  host: string;
  port: number;
  pasvRange: { min: number; max: number };
  /** Shared data root; user `alice` lives in `<dataDir>/alice`. */
  dataDir: string;
  user: string;
  password: string;
  /** FTP_REDIS_PREFIX of this run. */
  redisPrefix: string;
  replicas: ClusterReplica[];
  redis: ClusterRedis;
  /** HAProxy's SFTP frontend (the replicas listen on the same port number, each on its own address). */
  sftpPort: number;
  /** The SSH host keys every replica presents (FTP_SFTP_HOST_KEYS), with their `ssh-keygen -lf` fingerprints. */
  sftpHostKeys: SshHostKeyFile[];
  haproxy: {
    pid: number;
    /** Server rows of `show stat` (every backend: ftp_control, ftp_passive, sftp). */
    servers(): Promise<HaproxyServerState[]>;
    /** Resolves when `server` (edge-1 …) of ftp_control has `status` (exact, e.g. UP or DOWN); rejects after timeoutMs. */
    waitServer(server: string, status: string, timeoutMs?: number): Promise<void>;
  };
  /** Stops everything this cluster started and removes its files. Never throws. */
  close(): Promise<void>;
}

export interface SshHostKeyFile {
  /** ssh-ed25519, ssh-rsa */
  type: string;
  file: string;
  /** `SHA256:` and the unpadded base64 of the public key blob's SHA-256, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

const HAPROXY_CFG = join(ROOT, 'deploy', 'haproxy', 'haproxy.cfg');
const MAX_REPLICAS = 4;
/** Server lines HAProxy always has (deploy/haproxy/haproxy.cfg); edge-4 is there only when FTP_EDGE_4 is set. */
const BASE_SERVERS = 3;
const DEFAULT_EDGE_ARGS = ['--import', 'tsx', 'services/ftp-edge/src/main.ts'];

// ---------------------------------------------------------------------------------------------------------------
// Probes.

/** Opens a TCP connection, sends `send` (if any), resolves with what arrived once `done` accepts it or the peer closes. */
function exchange(options: { host?: string; port?: number; path?: string; send?: string; timeoutMs?: number; done?: (text: string) => boolean }) {
  return new Promise<string>((resolve, reject) => {
    const socket = options.path ? connect(options.path) : connect({ host: options.host, port: options.port! });
    let text = '';
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(text);
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${options.timeoutMs ?? 2000} ms: ${JSON.stringify(text)}`)), options.timeoutMs ?? 2000);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      if (options.send) socket.write(options.send);
    });
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (options.done?.(text)) finish();
    });
    socket.on('end', () => finish());
    socket.on('error', (err) => finish(err));
  });
}

async function httpStatus(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await res.arrayBuffer();
  return res.status;
}

/** Environment of a child: this process's, without any FTP_* or REDIS_URL that would leak into it, plus `extra`. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('FTP_') && key !== 'REDIS_URL') env[key] = value;
  }
  return { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', ...env, ...extra };
}

const isAddressInUse = (err: unknown) => /EADDRINUSE|Address already in use|address already in use/.test(String((err as Error)?.message ?? err));

// ---------------------------------------------------------------------------------------------------------------
// The parts.

/** A Redis the test runs itself: nothing to start or stop here. */
function externalRedis(url: string): ClusterRedis & { proc(): Proc | undefined } {
  const refuse = async () => {
    throw new Error('this cluster uses a Redis it did not start');
  };
  return { url, port: 0, pid: 0, proc: () => undefined, stop: refuse, start: async () => {} };
}

function startRedis(port: number, dir: string, timeoutMs: number): ClusterRedis & { proc(): Proc | undefined } {
  const binary = findBinary('redis-server');
  let proc: Proc | undefined;
  const redis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return proc && !proc.exit ? (proc.child.pid ?? 0) : 0;
    },
    proc: () => proc,
    async start() {
      if (proc && !proc.exit) return;
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir];
      proc = startProcess(`redis-server :${port}`, binary, args, { env: childEnv({}) });
      await waitFor(
        `redis-server on 127.0.0.1:${port}`,
        proc,
        async () => (await exchange({ host: '127.0.0.1', port, send: 'PING\r\n', timeoutMs: 500, done: (t) => t.includes('\r\n') })).startsWith('+PONG'),
        { timeoutMs },
      );
    },
    async stop() {
      if (proc) await stopProcess(proc);
    },
  };
  return redis;
}

interface ReplicaInternal extends ClusterReplica {
  proc(): Proc | undefined;
  start(): Promise<void>;
}

interface ReplicaLaunch {
  edgeArgs: string[];
  onSpawn?: (replica: ClusterReplica) => void;
}

function createReplica(
  index: number,
  env: Record<string, string>,
  adminPort: number,
  timeoutMs: number,
  launch: ReplicaLaunch,
  haproxyUp: (id: string) => Promise<void>,
): ReplicaInternal {
  const id = `edge-${index}`;
  const address = `127.0.0.${10 + index}`;
  let proc: Proc | undefined;
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  const readyz = `http://${address}:${adminPort}/readyz`;
  let lastReadyz = 'no answer';

  const replica: ReplicaInternal = {
    id,
    address,
    adminPort,
    env,
    logs,
    stderr,
    get pid() {
      return proc?.child.pid ?? 0;
    },
    get running() {
      return Boolean(proc && !proc.exit);
    },
    proc: () => proc,
    async start() {
      if (proc && !proc.exit) return;
      proc = startProcess(id, process.execPath, launch.edgeArgs, {
        env: childEnv(env),
        onStdout: (line) => logs.push(parseLogLine(line)),
        onStderr: (line) => stderr.push(line),
      });
      if (launch.onSpawn && proc.child.pid) {
        try {
          launch.onSpawn(replica);
        } catch (err) {
          await stopProcess(proc);
          throw new Error(`replica ${id}: onReplicaSpawn failed: ${(err as Error).message}`);
        }
      }
      const ready = async () => {
        const status = await httpStatus(readyz).catch((err: Error) => {
          lastReadyz = (err.cause as Error)?.message ?? err.message;
          return 0;
        });
        if (status) lastReadyz = `HTTP ${status}`;
        return status === 200;
      };
      await waitFor(`replica ${id} (${readyz})`, proc, ready, { timeoutMs, detail: () => `last /readyz: ${lastReadyz}` });
    },
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (!proc) return Promise.resolve({ code: null, signal: null });
      if (proc.exit) return Promise.resolve(proc.exit);
      proc.child.kill(signal);
      return proc.exited;
    },
    async restart() {
      if (proc && !proc.exit) await stopProcess(proc);
      await replica.start();
      await haproxyUp(id);
    },
    async metrics() {
      const res = await fetch(`http://${address}:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (res.status !== 200) throw new Error(`${id} /metrics: HTTP ${res.status}`);
      return res.text();
    },
  };
  return replica;
}

/** `show stat` over the stats socket, as server rows. */
async function haproxyServers(socket: string): Promise<HaproxyServerState[]> {
  const csv = await exchange({ path: socket, send: 'show stat\n', timeoutMs: 2000 });
  const lines = csv.split('\n').filter(Boolean);
  const header = lines[0]?.replace(/^# /, '').split(',') ?? [];
  const col = (name: string) => header.indexOf(name);
  const rows: HaproxyServerState[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    if (f[col('svname')] === 'FRONTEND' || f[col('svname')] === 'BACKEND') continue;
    rows.push({
      backend: f[col('pxname')],
      server: f[col('svname')],
      status: f[col('status')],
      checkStatus: f[col('check_status')],
      sessions: Number(f[col('scur')]),
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------

let passwordHash: Promise<string> | undefined;

/** `SHA256:…` of an SSH public key blob, as `ssh-keygen -lf` prints it. */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * ed25519 and RSA-3072 host keys in `dir`, made here once for the whole cluster: replicas generating their own would
 * each present different keys, and clients that round-robin would see "host key changed".
 */
async function generateHostKeys(dir: string): Promise<SshHostKeyFile[]> {
  mkdirSync(dir, { mode: 0o700 });
  const specs = [
    { name: 'ssh_host_ed25519_key', make: () => generateKeyPair('ed25519') },
    { name: 'ssh_host_rsa_key', make: () => generateKeyPair('rsa', 3072) },
  ];
  return Promise.all(
    specs.map(async ({ name, make }) => {
      // ssh2 (1.17) now and then makes an ed25519 key it cannot parse back (a public key starting with a zero byte
      // loses that byte): such a key would stop every replica, so it is made again.
      for (let attempt = 1; ; attempt++) {
        const pair = await make();
        const parsed = ssh2.utils.parseKey(pair.private);
        if (parsed instanceof Error) {
          if (attempt < 20) continue;
          throw new Error(`could not generate a usable ${name}: ${parsed.message}`);
        }
        const key = Array.isArray(parsed) ? parsed[0] : parsed;
        const file = join(dir, name);
        writeFileSync(file, pair.private, { mode: 0o600 });
        writeFileSync(`${file}.pub`, `${pair.public}\n`);
        // The fingerprint of what the edges will present: the public half of the parsed private key.
        return { type: key.type, file, fingerprint: sshFingerprint(key.getPublicSSH()) };
      }
    }),
  );
}

function generateKeyPair(type: 'ed25519' | 'rsa', bits?: number) {
  return new Promise<{ private: string; public: string }>((resolve, reject) => {
    const done = (err: Error | null, pair: { private: string; public: string }) => (err ? reject(err) : resolve(pair));
    if (type === 'rsa') ssh2.utils.generateKeyPair('rsa', { bits: bits! }, done);
    else ssh2.utils.generateKeyPair('ed25519', done);
  });
}

/** Starts Redis, the replicas and HAProxy; retries on a fresh port block when a port was taken meanwhile. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.replicas ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > MAX_REPLICAS) throw new Error(`replicas: 1 to ${MAX_REPLICAS}, got ${count}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, count);
    } catch (err) {
      if (!isAddressInUse(err) || attempt >= 5) throw err;
    }
  }
}

async function startOnce(options: ClusterOptions, count: number): Promise<Cluster> {
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const pasvPorts = options.pasvPorts ?? 20;
  const balance = options.balance ?? 'roundrobin';
  const dir = makeTempDir('ftp-cluster-');
  const dataDir = join(dir, 'data');
  const tlsDir = join(dir, 'tls');
  const usersFile = join(dir, 'users.yaml');
  const statsSocket = join(dir, 'haproxy.sock');
  const redisPrefix = `ftp-test-${randomUUID().slice(0, 8)}:`;

  // What has been spawned so far, so a failure half-way stops exactly that (replicas still starting included).
  let redis: ReturnType<typeof startRedis> | undefined;
  let replicas: ReplicaInternal[] = [];
  const haproxyState = { proc: undefined as Proc | undefined };
  const closeStarted = async () => {
    const procs = [haproxyState.proc, ...replicas.map((r) => r.proc()), redis?.proc()];
    await Promise.all(procs.map((p) => (p ? stopProcess(p).catch(() => undefined) : undefined)));
  };

  try {
    mkdirSync(dataDir);
    passwordHash ??= hashPassword(TEST_PASSWORD);
    writeFileSync(
      usersFile,
      `users:\n  alice:\n    password: "${await passwordHash}"\n    home: alice\n${options.extraUsers ?? ''}` +
        (options.anonymous ? 'anonymous:\n  enabled: true\n  home: pub\n' : ''),
    );
    // One certificate for all replicas, made here: replicas generating it at once in a shared folder would race.
    const pems = await generate([{ name: 'commonName', value: 'ftp-cluster-test' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 7 * 24 * 3600 * 1000),
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
    });
    mkdirSync(tlsDir, { mode: 0o700 });
    writeFileSync(join(tlsDir, 'self-signed.key'), pems.private, { mode: 0o600 });
    writeFileSync(join(tlsDir, 'self-signed.crt'), pems.cert);
    const hostKeys = await generateHostKeys(join(dir, 'ssh'));

    // Block layout: passive range, then control, admin, relay, Redis, SFTP and HAProxy agent ports. HAProxy listens on 127.0.0.1, each
    // replica on its own address, all on the same port numbers.
    const addresses = Array.from({ length: MAX_REPLICAS }, (_, i) => `127.0.0.${11 + i}`);
    const first = await freeBlock(pasvPorts + 6, ['127.0.0.1', ...addresses]);
    const pasvRange = { min: first, max: first + pasvPorts - 1 };
    const controlPort = first + pasvPorts;
    const adminPort = controlPort + 1;
    const relayPort = controlPort + 2;
    const redisPort = controlPort + 3;
    const sftpPort = controlPort + 4;
    const agentPort = controlPort + 5;

    const redisServer = options.redisUrl ? externalRedis(options.redisUrl) : startRedis(redisPort, dir, timeoutMs);
    redis = redisServer;
    await redisServer.start();

    const waitServer = async (server: string, status: string, waitMs = timeoutMs) => {
      const hp = haproxyState.proc;
      if (!hp) throw new Error('HAProxy is not running');
      let seen = 'no answer';
      const reached = async () => {
        const row = (await haproxyServers(statsSocket)).find((r) => r.backend === 'ftp_control' && r.server === server);
        seen = row ? `${row.status} ${row.checkStatus}` : 'no such server';
        return row?.status === status;
      };
      await waitFor(`HAProxy server ftp_control/${server} ${status}`, hp, reached, { timeoutMs: waitMs, detail: () => `last seen: ${seen}` });
    };

    // Shared, so any replica resumes a TLS session another one made (a data connection may land elsewhere).
    const ticketKeys = randomBytes(48).toString('base64');
    replicas = Array.from({ length: count }, (_, i) => {
      const index = i + 1;
      const address = addresses[i];
      const env: Record<string, string> = {
        FTP_HOST: address,
        FTP_PORT: String(controlPort),
        FTP_PASV_RANGE: `${pasvRange.min}-${pasvRange.max}`,
        FTP_PASV_ADDRESS: '127.0.0.1',
        FTP_ADMIN_HOST: address,
        FTP_ADMIN_PORT: String(adminPort),
        FTP_AGENT_PORT: String(agentPort),
        FTP_RELAY_PORT: String(relayPort),
        FTP_ADVERTISE_HOST: address,
        FTP_REPLICA_ID: `edge-${index}`,
        FTP_DATA_DIR: dataDir,
        FTP_USERS_FILE: usersFile,
        FTP_TLS_DIR: tlsDir,
        FTP_TLS_TICKET_KEYS: ticketKeys,
        REDIS_URL: redisServer.url,
        FTP_REDIS_PREFIX: redisPrefix,
        FTP_PROXY_PROTOCOL_FROM: '127.0.0.1',
        FTP_LOG_LEVEL: 'info',
        FTP_FSYNC_UPLOADS: 'false',
        FTP_DRAIN_SECONDS: '2',
        FTP_SFTP_PORT: String(sftpPort),
        FTP_SFTP_HOST_KEYS: hostKeys.map((k) => k.file).join(','),
        ...options.env,
        ...options.replicaEnv?.(index),
      };
      const launch = { edgeArgs: options.edgeArgs ?? DEFAULT_EDGE_ARGS, onSpawn: options.onReplicaSpawn };
      return createReplica(index, env, adminPort, timeoutMs, launch, (id) => waitServer(id, 'UP'));
    });

    await Promise.all(replicas.map((r) => r.start()));

    const haproxyEnv = {
      FTP_LB_BIND: '127.0.0.1',
      FTP_LB_CONTROL_PORT: String(controlPort),
      FTP_PASV_MIN: String(pasvRange.min),
      FTP_PASV_MAX: String(pasvRange.max),
      FTP_EDGE_1: addresses[0],
      FTP_EDGE_2: addresses[1],
      FTP_EDGE_3: addresses[2],
      ...(count > BASE_SERVERS ? { FTP_EDGE_4: addresses[3] } : {}),
      FTP_EDGE_CONTROL_PORT: String(controlPort),
      FTP_EDGE_ADMIN_PORT: String(adminPort),
      FTP_EDGE_AGENT_PORT: String(agentPort),
      FTP_LB_SFTP_PORT: String(sftpPort),
      FTP_EDGE_SFTP_PORT: String(sftpPort),
      FTP_LB_BALANCE: balance,
      FTP_LB_STATS_SOCKET: statsSocket,
      // Server state changes only; "info" would log every connection.
      FTP_LB_LOG_LEVEL: 'notice',
    };
    const haproxy = startProcess('haproxy', findBinary('haproxy'), ['-f', HAPROXY_CFG, '-db'], { env: childEnv(haproxyEnv) });
    haproxyState.proc = haproxy;
    await waitFor('HAProxy stats socket', haproxy, async () => (await haproxyServers(statsSocket)).length > 0, { timeoutMs });
    // Servers of absent replicas must have been checked DOWN, or HAProxy would still send them connections.
    for (let i = 0; i < Math.max(BASE_SERVERS, count); i++) await waitServer(`edge-${i + 1}`, i < count ? 'UP' : 'DOWN');
    let greeting = '';
    const greeted = async () => {
      greeting = await exchange({ host: '127.0.0.1', port: controlPort, timeoutMs: 2000, done: (t) => t.includes('\r\n') }).catch((err: Error) => err.message);
      return greeting.startsWith('220');
    };
    await waitFor(`FTP greeting through HAProxy on 127.0.0.1:${controlPort}`, haproxy, greeted, {
      timeoutMs,
      detail: () => `last answer: ${JSON.stringify(greeting)}`,
    });

    let closed: Promise<void> | undefined;
    return {
      host: '127.0.0.1',
      port: controlPort,
      pasvRange,
      sftpPort,
      sftpHostKeys: hostKeys,
      dataDir,
      user: 'alice',
      password: TEST_PASSWORD,
      redisPrefix,
      replicas,
      redis: {
        url: redisServer.url,
        port: redisServer.port,
        get pid() {
          return redisServer.pid;
        },
        stop: () => redisServer.stop(),
        start: () => redisServer.start(),
      },
      haproxy: {
        pid: haproxy.child.pid ?? 0,
        servers: () => haproxyServers(statsSocket),
        waitServer: (server, status, waitMs) => waitServer(server, status, waitMs),
      },
      close() {
        closed ??= (async () => {
          // Front to back: no new connections, then the replicas drain, then their shared state goes.
          await stopProcess(haproxy).catch(() => undefined);
          await Promise.all(
            replicas.map((r) => {
              const p = r.proc();
              return p ? stopProcess(p, 'SIGTERM', Number(r.env.FTP_DRAIN_SECONDS ?? 2) * 1000 + STOP_GRACE_MS).catch(() => undefined) : undefined;
            }),
          );
          const rp = redisServer.proc();
          if (rp) await stopProcess(rp).catch(() => undefined);
          removeTempDir(dir);
        })();
        return closed;
      },
    };
  } catch (err) {
    await closeStarted();
    removeTempDir(dir);
    throw err;
  }
}
