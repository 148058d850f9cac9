import type { SessionRecord } from '@ftp/cluster-state';
import type { Session } from './session';
import type { SessionDeps } from './types';

/** What the cluster-wide record of a session says now: its current transfer and the bytes so far. */
function progress(session: Session): Pick<SessionRecord, 'transfer' | 'bytesIn' | 'bytesOut'> {
  const transfer = session.transfer;
  return {
    transfer: transfer && {
      direction: transfer.direction === 'upload' ? 'upload' : 'download',
      path: transfer.path,
      startedAt: transfer.startedAt,
    },
    bytesIn: session.bytesIn,
    bytesOut: session.bytesOut,
  };
}

/**
 * Refreshes a session's record, and writes it again when the store lost it (Redis restarted without persistence, or
 * an outage longer than the record's TTL), so that limits and listings count this session again. Never rejects.
 */
export async function reportSession(session: Session): Promise<void> {
  const { cluster, settings, metrics } = session.deps;
  try {
    if (await cluster.sessions.update(session.id, progress(session))) return;
    if (session.closed) return;
    const record = { id: session.id, replicaId: settings.replicaId, clientAddress: session.clientAddress, startedAt: session.startedAt };
    // Already admitted: no limit may turn it away now.
    await cluster.sessions.open({ ...record, ...progress(session) }, { maxSessions: 0, maxPerAddress: 0 });
    if (session.user) await cluster.sessions.bindUser(session.id, session.user.name, 0);
    session.log.info('session record was lost by the cluster state: registered again');
  } catch {
    metrics.clusterStateErrors.inc();
  }
}

/** Releases the leases whose release failed earlier, oldest first; stops at the first failure (still away). Never rejects. */
export async function retryReleases(deps: Pick<SessionDeps, 'cluster' | 'unreleased'>): Promise<void> {
  for (const lease of deps.unreleased) {
    try {
      await deps.cluster.ports.release(lease);
    } catch {
      return;
    }
    deps.unreleased.delete(lease);
  }
}

/**
 * Keeps this replica's session records alive: they expire unless refreshed, which is how a dead replica's sessions
 * leave the cluster-wide counts; and retries lease releases that failed. Returns the function that stops it.
 */
export function startHeartbeat(deps: SessionDeps, intervalMs: number): () => void {
  const timer = setInterval(() => {
    for (const session of deps.live) void reportSession(session);
    void retryReleases(deps);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
