import type { SessionProgress } from '@ftp/cluster-state';
import type { CoreDeps, CoreSession } from './types';

/** A session as the replica's heartbeat sees it: what its cluster-wide record says now. */
export interface LiveSession extends CoreSession {
  readonly startedAt: number;
  readonly closed: boolean;
  /** Protocol, last command and the running transfer with its bytes so far, for the cluster-wide record. */
  progress(): SessionProgress;
}

/**
 * Refreshes a session's record, and writes it again when the store lost it (Redis restarted without persistence, or
 * an outage longer than the record's TTL), so that limits and listings count this session again. Never rejects.
 */
export async function reportSession(session: LiveSession, deps: CoreDeps): Promise<void> {
  const { cluster, settings, metrics } = deps;
  try {
    if (await cluster.sessions.update(session.id, session.progress())) return;
    if (session.closed) return;
    const record = { id: session.id, replicaId: settings.replicaId, clientAddress: session.clientAddress, startedAt: session.startedAt, bytesIn: 0, bytesOut: 0 };
    // Already admitted: no limit may turn it away now.
    await cluster.sessions.open({ ...record, ...session.progress() }, { maxSessions: 0, maxPerAddress: 0 });
    if (session.user) await cluster.sessions.bindUser(session.id, session.user.name, { maxPerUser: 0 });
    session.log.info('session record was lost by the cluster state: registered again');
  } catch {
    metrics.clusterStateErrors.inc();
  }
}

export interface HeartbeatOptions {
  /** Every session's record is refreshed this often (well inside the registry's TTL). */
  intervalMs: number;
  /**
   * Sessions with a running transfer also report it this often, so that an admin listing shows its bytes nearly live
   * (0 = only with the heartbeat). One registry update per transferring session per tick; idle sessions cost nothing.
   */
  progressMs?: number;
  /** Runs with every heartbeat (FTP retries lease releases there). */
  alsoEachTick?: () => void;
}

/**
 * Keeps this replica's session records alive, of every front door: they expire unless refreshed, which is how a dead
 * replica's sessions leave the cluster-wide counts. Returns the function that stops it.
 */
export function startHeartbeat(live: () => Iterable<LiveSession>, deps: CoreDeps, options: HeartbeatOptions): () => void {
  const timers = [
    setInterval(() => {
      for (const session of live()) void reportSession(session, deps);
      options.alsoEachTick?.();
    }, options.intervalMs),
  ];
  if (options.progressMs && options.progressMs > 0) {
    timers.push(
      setInterval(() => {
        for (const session of live()) if (!session.closed && session.progress().transfer) void reportSession(session, deps);
      }, options.progressMs),
    );
  }
  for (const timer of timers) timer.unref();
  return () => timers.forEach(clearInterval);
}
