import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { hashPassword } from '@ftp/identity';
import { startCluster, type Cluster } from '../support/cluster';
import { startSentinelGroup, type SentinelGroup } from '../support/sentinel';
import { TEST_PASSWORD } from '../support/server';
import { startWebhookReceiver, startWorkerProcess, type WorkerProcess } from '../support/workers';
import { queuePrefix } from '@ftp/upload-events';
import { openDataDisk, type DataDisk } from './dataDisk';
import * as scenario from './scenario';
import { ARCHIVE, INBOX, SESSION_MARGIN, USERS, sessionLimits } from './users';

/** Each partner user's max_sessions (users.ts): its VUs in scenario.ts plus a small margin. */
const sessionLimit = sessionLimits(scenario.options.scenarios, scenario);

/**
 * Everything the chaos run starts, on loopback: a Sentinel group (primary, replica, three sentinels), three edges on
 * it behind HAProxy with upload events on, two workers with a pipeline (checksum, a move for the inbox, a webhook to a
 * local receiver), the data folder on a tmpfs of its own. The control plane is the users file (no PostgreSQL here).
 */

export type Receiver = Awaited<ReturnType<typeof startWebhookReceiver>>;

export interface WorkerSlot {
  /** worker-1, worker-2: the slot keeps its name when its process is replaced. */
  name: string;
  proc: WorkerProcess;
  /** Processes this slot has had. */
  generation: number;
}

export interface ChaosEnv {
  disk: DataDisk;
  group: SentinelGroup;
  cluster: Cluster;
  receiver: Receiver;
  workers: WorkerSlot[];
  /** Starts a new process in the slot (the old one must be gone). */
  replaceWorker(slot: WorkerSlot): void;
  /** Every worker process the run had, replaced ones too (their logs are evidence). */
  allWorkers: { name: string; proc: WorkerProcess }[];
  /** A client of the current primary (through the sentinels), for looking at the job queue. */
  redis: Redis;
  /** BullMQ prefix of the upload queue: keys are `<queuePrefix>:uploads:…`. */
  queuePrefix: string;
  password: string;
  /** Each partner user's max_sessions in the users file. */
  sessionLimits: Record<string, number>;
  close(): Promise<void>;
}

export interface EnvOptions {
  workers: number;
  /** Size of the data tmpfs. */
  diskBytes: number;
  log: (line: string) => void;
}

const PIPELINES = (hook: string) => `pipelines:
  - name: inbox
    match: { paths: ['/${INBOX}/**'] }
    steps:
      - checksum: {}
      - move: { to: '${ARCHIVE}/{name}' }
      - webhook: { url: '${hook}', secret_env: WEBHOOK_SECRET, attempts: 5, backoff_ms: 100 }
  - name: all
    steps:
      - checksum: {}
      - webhook: { url: '${hook}', secret_env: WEBHOOK_SECRET, attempts: 5, backoff_ms: 100 }
`;

export async function startEnvironment(o: EnvOptions): Promise<ChaosEnv> {
  const disk = openDataDisk(o.diskBytes);
  let group: SentinelGroup | undefined;
  let cluster: Cluster | undefined;
  let receiver: Receiver | undefined;
  let redis: Redis | undefined;
  const workers: WorkerSlot[] = [];
  const closeAll = async () => {
    // Front to back: the edges drain, then the workers stop, then their Redis goes; the disk last.
    await cluster?.close();
    await Promise.all(workers.map((w) => w.proc.kill('SIGKILL')));
    redis?.disconnect();
    await receiver?.close();
    await group?.close();
    disk.close();
  };
  try {
    if (disk.cannotFill) o.log(`data disk: a plain folder (${disk.cannotFill}); the full-disk fault will be skipped`);
    else o.log(`data disk: tmpfs of ${Math.round(o.diskBytes / 2 ** 20)} MiB at ${disk.dir}`);
    group = await startSentinelGroup({ downAfterMs: 1000 });
    o.log(`Redis: primary :${group.serverPorts[0]}, replica :${group.serverPorts[1]}, sentinels :${group.sentinelPorts.join(', :')}`);
    receiver = await startWebhookReceiver();
    const hash = await hashPassword(TEST_PASSWORD);
    const extraUsers = Object.values(USERS)
      .map((u) => `  ${u}:\n    password: "${hash}"\n    home: ${u}\n    max_sessions: ${sessionLimit[u]}\n`)
      .join('');
    o.log(`per-user session limits (max_sessions: VUs + ${SESSION_MARGIN}): ${Object.values(USERS).map((u) => `${u} ${sessionLimit[u]}`).join(', ')}`);
    const outbox = join(disk.dir, '..', 'outbox');
    mkdirSync(outbox);
    cluster = await startCluster({
      replicas: 3,
      redisUrl: group.url,
      extraUsers,
      env: {
        FTP_DATA_DIR: disk.dir,
        FTP_OUTBOX_DIR: outbox,
        FTP_UPLOAD_EVENTS: 'completed',
        FTP_UPLOAD_SHA256: 'true',
        FTP_DRAIN_SECONDS: '5',
      },
      startTimeoutMs: 60_000,
    });
    o.log(`cluster: HAProxy 127.0.0.1 FTP :${cluster.port} SFTP :${cluster.sftpPort}; ${cluster.replicas.map((r) => `${r.id} ${r.address} pid ${r.pid}`).join(', ')}`);
    const pipelines = join(disk.root, 'pipelines.yaml');
    writeFileSync(pipelines, PIPELINES(receiver.url));
    const workerEnv = {
      REDIS_URL: group.url,
      FTP_REDIS_PREFIX: cluster.redisPrefix,
      FTP_DATA_DIR: disk.dir,
      FTP_FSYNC_UPLOADS: 'false',
      WORKER_PIPELINES: pipelines,
      WORKER_ADMIN_PORT: '0',
      // Well above a failover (promotion typically 2.3 s, up to 5.4 s, plus the worker's reconnect): a lock is renewed
      // every 2.5–5 s, so no failover costs a lock; a killed worker's jobs are taken over 10–20 s after the kill
      // (lock expiry, then the next stalled check), within the run's wait for the last webhooks.
      WORKER_LOCK_MS: '10000',
      WEBHOOK_SECRET: 'chaos-secret',
    };
    const allWorkers: ChaosEnv['allWorkers'] = [];
    for (let i = 0; i < o.workers; i++) workers.push({ name: `worker-${i + 1}`, proc: startWorkerProcess(workerEnv), generation: 1 });
    for (const w of workers) allWorkers.push({ name: w.name, proc: w.proc });
    o.log(`workers: ${workers.map((w) => `${w.name} pid ${w.proc.pid}`).join(', ')}; webhook receiver ${receiver.url}`);
    redis = new Redis({ sentinels: group.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), name: group.name, maxRetriesPerRequest: 2, connectTimeout: 1000 });
    redis.on('error', () => {}); // a failover makes it reconnect; calls that fail are retried by their callers
    const env: ChaosEnv = {
      disk,
      group,
      cluster,
      receiver,
      workers,
      replaceWorker(slot) {
        slot.proc = startWorkerProcess(workerEnv);
        slot.generation++;
        allWorkers.push({ name: slot.name, proc: slot.proc });
      },
      allWorkers,
      redis,
      queuePrefix: queuePrefix(cluster.redisPrefix),
      password: TEST_PASSWORD,
      sessionLimits: sessionLimit,
      close: closeAll,
    };
    return env;
  } catch (err) {
    await closeAll().catch(() => undefined);
    throw err;
  }
}
