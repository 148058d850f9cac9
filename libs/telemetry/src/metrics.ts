import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric the edge exports. Labels are bounded: verbs come from the command table, never paths or user names. */
export function createEdgeMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = {
    registry,
    sessionsActive: new Gauge({ name: 'ftp_sessions_active', help: 'Open control connections on this replica', registers: [registry] }),
    connectionsTotal: new Counter({
      name: 'ftp_connections_total',
      help: 'Control connections accepted or refused',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    loginsTotal: new Counter({ name: 'ftp_logins_total', help: 'Login attempts by result', labelNames: ['result'] as const, registers: [registry] }),
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
      help: 'File bytes moved by direction',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    transfersTotal: new Counter({
      name: 'ftp_transfers_total',
      help: 'Data transfers by direction and result',
      labelNames: ['direction', 'result'] as const,
      registers: [registry],
    }),
    transferSeconds: new Histogram({
      name: 'ftp_transfer_duration_seconds',
      help: 'Data transfer duration',
      labelNames: ['direction'] as const,
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
    bansTotal: new Counter({ name: 'ftp_bans_total', help: 'Addresses banned after failed logins', registers: [registry] }),
    clusterStateErrors: new Counter({
      name: 'ftp_cluster_state_errors_total',
      help: 'Failed calls to the cluster state store',
      registers: [registry],
    }),
    uploadEventsTotal: new Counter({
      name: 'ftp_upload_events_total',
      help: 'Upload events for the post-upload workers: queued = added to the queue, deferred = kept in the outbox while Redis is away, lost = dropped (outbox full, or not delivered by shutdown)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    uploadEventsPending: new Gauge({
      name: 'ftp_upload_events_pending',
      help: 'Upload events waiting in the outbox for Redis',
      registers: [registry],
    }),
  };
  return metrics;
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;

/** "2xx", "5xx"… for the reply-class label. */
export const replyClass = (code: number) => `${Math.floor(code / 100)}xx`;
