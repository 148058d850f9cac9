import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface EdgeMetricsOptions {
  /** Addresses banned right now, cluster-wide (read at scrape time from the cluster state). */
  bansActive?: () => Promise<number>;
  /** Whether the cluster state store answers (Redis up; always true for the in-memory state). */
  clusterStateUp?: () => boolean;
  /** FTP_METRICS_USER_LABELS: also count transfers and bytes per user (bounded by the users file; off by default). */
  perUser?: boolean;
  /** The user store's health (read at scrape time): its backend, whether its source answers, users in memory. */
  userStore?: () => UserStoreHealth;
}

type UserStoreHealth = { backend: string; up: boolean; users: number };

/** A user-store gauge at scrape time: one series, labelled with the backend in use (none without a store). */
function setByBackend(gauge: Gauge<'backend'>, health: (() => UserStoreHealth) | undefined, value: (health: UserStoreHealth) => number) {
  if (!health) return;
  const now = health();
  gauge.reset();
  gauge.set({ backend: now.backend }, value(now));
}

/** A scrape must answer even while Redis hangs: a read that takes longer is skipped (the gauge keeps its last value). */
const SCRAPE_READ_TIMEOUT_MS = 1000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.catch(() => undefined),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Every metric the edge exports. Labels are bounded: verbs come from the command table, reply classes, directions,
 * results and modes are fixed sets; never paths, and user names only with `perUser` (authenticated users only, so
 * the set is the users file, never what a client typed).
 */
export function createEdgeMetrics(options: EdgeMetricsOptions = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const perUser = options.perUser
    ? {
        bytes: new Counter({
          name: 'ftp_user_transfer_bytes_total',
          help: 'File bytes moved by authenticated user and direction (FTP_METRICS_USER_LABELS)',
          labelNames: ['user', 'direction'] as const,
          registers: [registry],
        }),
        transfers: new Counter({
          name: 'ftp_user_transfers_total',
          help: 'Data transfers by authenticated user, direction and result (FTP_METRICS_USER_LABELS)',
          labelNames: ['user', 'direction', 'result'] as const,
          registers: [registry],
        }),
        quotaUsed: new Gauge({
          name: 'ftp_user_quota_used_ratio',
          help: 'Share of its storage quota a user fills (bytes or files, whichever is fuller), as of its last change on this replica (FTP_METRICS_USER_LABELS)',
          labelNames: ['user'] as const,
          registers: [registry],
        }),
      }
    : undefined;
  const metrics = {
    registry,
    // `protocol`: the front door (ftp, ftps, sftp); an FTP session counts as ftps when it started on the implicit port.
    sessionsActive: new Gauge({
      name: 'ftp_sessions_active',
      help: 'Open sessions (FTP control connections, SFTP connections) on this replica',
      labelNames: ['protocol'] as const,
      registers: [registry],
    }),
    connectionsTotal: new Counter({
      name: 'ftp_connections_total',
      help: 'Connections accepted or refused, by protocol',
      labelNames: ['protocol', 'result'] as const,
      registers: [registry],
    }),
    loginsTotal: new Counter({
      name: 'ftp_logins_total',
      help: 'Login attempts by protocol and result',
      labelNames: ['protocol', 'result'] as const,
      registers: [registry],
    }),
    commandsTotal: new Counter({
      name: 'ftp_commands_total',
      help: 'Commands by verb and reply class',
      labelNames: ['verb', 'class'] as const,
      registers: [registry],
    }),
    commandSeconds: new Histogram({
      name: 'ftp_command_duration_seconds',
      help: 'Time from command received to final reply',
      labelNames: ['verb'] as const,
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    }),
    transferBytes: new Counter({
      name: 'ftp_transfer_bytes_total',
      help: 'File bytes moved by protocol and direction',
      labelNames: ['protocol', 'direction'] as const,
      registers: [registry],
    }),
    transfersTotal: new Counter({
      name: 'ftp_transfers_total',
      help: 'File transfers by protocol, direction and result',
      labelNames: ['protocol', 'direction', 'result'] as const,
      registers: [registry],
    }),
    transferIoBytes: new Counter({
      name: 'ftp_transfer_io_bytes_total',
      help: 'File bytes of FTP data connections by direction and how they moved: stream (through Node), sendfile or splice (zero-copy, FTP_ZERO_COPY)',
      labelNames: ['direction', 'io'] as const,
      registers: [registry],
    }),
    transferSeconds: new Histogram({
      name: 'ftp_transfer_duration_seconds',
      help: 'File transfer duration',
      labelNames: ['protocol', 'direction'] as const,
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120, 600],
      registers: [registry],
    }),
    passiveLeases: new Gauge({ name: 'ftp_passive_leases', help: 'Passive port leases held by this replica', registers: [registry] }),
    tlsDataConnections: new Counter({
      name: 'ftp_tls_data_connections_total',
      help: 'Protected data connections by whether they resumed the TLS session',
      labelNames: ['resumed'] as const,
      registers: [registry],
    }),
    relayedConnections: new Counter({
      name: 'ftp_relayed_data_connections_total',
      help: 'Data connections relayed between replicas: sent = reached this replica for a peer lease, received = handed over by a peer',
      labelNames: ['side'] as const,
      registers: [registry],
    }),
    limitHits: new Counter({
      name: 'ftp_limit_hits_total',
      help: 'Refusals and stops by a user limit: quota_bytes, quota_files, daily_upload_bytes, daily_download_bytes, sessions_per_minute, sessions_per_minute_per_ip',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    limitThrottledSeconds: new Counter({
      name: 'ftp_limit_throttled_seconds_total',
      help: 'Time transfers waited for bandwidth (bandwidth = the user cap shared across replicas, session = the per-session cap)',
      labelNames: ['direction', 'limit'] as const,
      registers: [registry],
    }),
    limitFallback: new Gauge({
      name: 'ftp_limit_fallback_transfers',
      help: 'Limited transfers running on a local share of their user cap because the cluster state (Redis) did not answer',
      registers: [registry],
    }),
    bansTotal: new Counter({ name: 'ftp_bans_total', help: 'Addresses banned after failed logins by this replica', registers: [registry] }),
    bansActive: new Gauge({
      name: 'ftp_bans_active',
      help: 'Addresses banned right now, cluster-wide (every replica reports the same figure: aggregate with max, not sum)',
      registers: [registry],
      async collect() {
        if (!options.bansActive) return this.set(0);
        const count = await withTimeout(options.bansActive(), SCRAPE_READ_TIMEOUT_MS);
        if (count !== undefined) this.set(count); // store away: keep the last figure rather than fail the scrape
      },
    }),
    clusterStateUp: new Gauge({
      name: 'ftp_cluster_state_up',
      help: 'Whether the cluster state store (Redis) answers: 1 yes, 0 no; always 1 with the in-memory state',
      registers: [registry],
      collect() {
        this.set(options.clusterStateUp ? Number(options.clusterStateUp()) : 1);
      },
    }),
    dataConnectionsTotal: new Counter({
      name: 'ftp_data_connections_total',
      help: 'Data connections opened for transfers, by mode: passive, active, or relayed (passive, handed over by a peer replica)',
      labelNames: ['mode'] as const,
      registers: [registry],
    }),
    clusterStateErrors: new Counter({
      name: 'ftp_cluster_state_errors_total',
      help: 'Failed calls to the cluster state store (Redis errors and timeouts, in cluster mode)',
      registers: [registry],
    }),
    uploadEventsTotal: new Counter({
      name: 'ftp_upload_events_total',
      help: 'Upload events for the post-upload workers: queued = added to the queue, deferred = kept in the outbox while Redis is away, recovered = found in the outbox journal at start (left by an earlier process), lost = dropped (outbox full, or not delivered by shutdown)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    uploadEventsPending: new Gauge({
      name: 'ftp_upload_events_pending',
      help: 'Upload events waiting in the outbox for Redis',
      registers: [registry],
    }),
    userStoreUp: new Gauge({
      name: 'ftp_user_store_up',
      help: 'Whether the user store answers, by backend: file readable, PostgreSQL connected and listening for changes, identity hook answering. 0: logins go on from the users in memory (file, postgres) or the cache (hook); writes fail',
      labelNames: ['backend'] as const,
      registers: [registry],
      collect() {
        setByBackend(this, options.userStore, (health) => Number(health.up));
      },
    }),
    userStoreUsers: new Gauge({
      name: 'ftp_user_store_users',
      help: 'Users the user store holds in memory on this replica (the identity hook: cached answers)',
      labelNames: ['backend'] as const,
      registers: [registry],
      collect() {
        setByBackend(this, options.userStore, (health) => health.users);
      },
    }),
    xferlogDropped: new Counter({
      name: 'ftp_xferlog_dropped_lines_total',
      help: 'xferlog lines dropped because the file could not keep up or could not be written',
      registers: [registry],
    }),
    /** Only with FTP_METRICS_USER_LABELS. */
    perUser,
  };
  return metrics;
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;

/** "2xx", "5xx"… for the reply-class label. */
export const replyClass = (code: number) => `${Math.floor(code / 100)}xx`;
