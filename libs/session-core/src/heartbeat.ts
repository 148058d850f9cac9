import type { SessionRecord } from '@ftp/cluster-state';
import type { CoreDeps, CoreSession } from './types';

/** A session as the replica's heartbeat sees it: what its cluster-wide record says now. */
export interface LiveSession extends CoreSession {
  readonly startedAt: number;
  readonly closed: boolean;
  progress(): Pick<SessionRecord, 'command' | 'transfer' | 'bytesIn' | 'bytesOut'>;
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
    const record = { id: session.id, replicaId: settings.replicaId, clientAddress: session.clientAddress, startedAt: session.startedAt };
    // Already admitted: no limit may turn it away now.
    await cluster.sessions.open({ ...record, ...session.progress() }, { maxSessions: 0, maxPerAddress: 0 });
    if (session.user) await cluster.sessions.bindUser(session.id, session.user.name, 0);
    session.log.info('session record was lost by the cluster state: registered again');
  } catch {
    metrics.clusterStateErrors.inc();
  }
}

/**
 * Keeps this replica's session records alive, of every front door: they expire unless refreshed, which is how a dead
 * replica's sessions leave the cluster-wide counts. `alsoEachTick` runs with it (FTP retries lease releases there).
 * Returns the function that stops it.
 */
export function startHeartbeat(live: () => Iterable<LiveSession>, deps: CoreDeps, intervalMs: number, alsoEachTick?: () => void): () => void {
  const timer = setInterval(() => {
    for (const session of live()) void reportSession(session, deps);
    alsoEachTick?.();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
