import { context } from '@opentelemetry/api';
import type { CoreDeps, CoreSession } from './types';

export type RefusalReason = 'banned' | 'max-sessions' | 'max-per-address' | 'max-unauthenticated' | 'address-rate' | 'unavailable';

export type AdmissionResult = { ok: true } | { ok: false; reason: RefusalReason; message: string };

/** What a refused client is told, in any protocol (an FTP 421 text, an SSH disconnect description). */
export const REFUSAL_MESSAGES: Record<RefusalReason, string> = {
  banned: 'Too many failed logins from your address; try again later',
  'max-sessions': 'Too many users, try again later',
  'max-per-address': 'Too many connections from your address',
  'max-unauthenticated': 'Too many connections from your address that have not logged in',
  'address-rate': 'Too many new sessions from your address, try again later',
  unavailable: 'Service temporarily unavailable, try again later',
};

/**
 * Admits a new connection: not from a banned address, within the cluster-wide limits (total, per address, and not yet
 * logged in per address), registered in the session registry — all in one call of the cluster state. Logs and counts a refusal; the caller tells the client
 * and closes. A session admitted here must be closed with `deps.cluster.sessions.close(id)`.
 */
export async function admitSession(session: CoreSession, deps: CoreDeps, startedAt: number): Promise<AdmissionResult> {
  const { cluster, settings, metrics } = deps;
  const refuse = (reason: RefusalReason): AdmissionResult => {
    metrics.connectionsTotal.inc({ protocol: session.protocol, result: reason });
    return { ok: false, reason, message: REFUSAL_MESSAGES[reason] };
  };
  try {
    return await context.with(session.currentContext, async () => {
      const admission = await cluster.sessions.open(
        { id: session.id, replicaId: settings.replicaId, clientAddress: session.clientAddress, protocol: session.protocol, startedAt, bytesIn: 0, bytesOut: 0 },
        { maxSessions: settings.maxSessions, maxPerAddress: settings.maxSessionsPerIp, maxUnauthenticatedPerAddress: settings.maxUnauthenticatedPerIp, sessionsPerMinutePerAddress: settings.sessionsPerMinutePerIp },
      );
      if (!admission.ok) {
        if (admission.reason === 'banned') session.log.warn('connection refused: address is banned after failed logins');
        else if (admission.reason === 'address-rate') {
          metrics.limitHits.inc({ limit: 'sessions_per_minute_per_ip' });
          session.log.warn({ perMinute: settings.sessionsPerMinutePerIp }, 'connection refused: too many new sessions from this address');
        }
        else session.log.warn({ reason: admission.reason }, 'connection refused: session limit reached');
        return refuse(admission.reason);
      }
      metrics.connectionsTotal.inc({ protocol: session.protocol, result: 'accepted' });
      return { ok: true } as const;
    });
  } catch (err) {
    metrics.clusterStateErrors.inc();
    session.log.error({ err }, 'cluster state unavailable: refusing new session');
    return refuse('unavailable');
  }
}
