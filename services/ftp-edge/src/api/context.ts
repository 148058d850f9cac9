import type { FastifyRequest } from 'fastify';
import type { BanPolicy, ClusterState, SessionKick } from '@ftp/cluster-state';
import type { Storage } from '@ftp/storage';
import type { Actor, AdminTokenInfo, AdminTokens, AuditTrail, EffectiveLimits, UserStore } from '@ftp/identity';
import type { Logger } from '@ftp/telemetry';

/** What the admin API works with: every part is an interface, the same on every replica. */
export interface ApiContext {
  /** Users and groups (writes are audited by the store itself where it keeps an audit trail). */
  store: UserStore;
  /** Bearer tokens: PostgreSQL's table, or the tokens file. */
  tokens: Pick<AdminTokens, 'verifyToken'>;
  /** PostgreSQL's audit table, for what the API does outside the store (ending sessions, lifting bans). */
  audit?: AuditTrail;
  /** Cluster-wide state: sessions, bans, and the users' storage usage and byte counters. */
  cluster: ClusterState;
  /** FTP_DATA_DIR: the homes a quota scan walks. */
  dataRoot: string;
  /** The storage of a home (its host path under the data root): the edge's, whatever FTP_STORAGE chose. */
  storageAt(root: string): Storage;
  /** FTP_DEFAULT_*: the limits of a user that neither it nor its groups set (shown as its effective limits). */
  defaultLimits: EffectiveLimits;
  /** This replica (FTP_REPLICA_ID): its own sessions are ended directly, others' through the kick channel. */
  replicaId: string;
  /** Ends this replica's sessions matching the kick at once; returns how many. */
  endLocal(kick: SessionKick): number;
  /** Failed token checks count against the client's address like failed logins (FTP_BAN_AFTER_FAILURES). */
  banPolicy: BanPolicy;
  log: Logger;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The token that authenticated the request (set by the scope check). */
    token?: AdminTokenInfo;
  }
}

/** Who the audit trail names for a request: its token, through the API, from the client's address. */
export const actorOf = (request: FastifyRequest): Actor => ({ name: request.token?.name ?? 'anonymous', via: 'api', address: request.ip });

/**
 * One audit line in the log for every write: who, what, on which target, before and after (never secrets: the views
 * carry no password hash, a password change shows as "(changed)"). The store's own writes are also in PostgreSQL's
 * audit table (it writes them in the same transaction); what the API does elsewhere (`trail: true`: ending sessions,
 * lifting bans) is added to that table here.
 */
export async function audit(
  ctx: ApiContext,
  request: FastifyRequest,
  action: string,
  target: string | undefined,
  change: { before?: unknown; after?: unknown } = {},
  options: { trail?: boolean } = {},
): Promise<void> {
  const by = actorOf(request);
  ctx.log.info({ event: 'admin-audit', actor: by.name, via: by.via, address: by.address, action, target, ...change }, `admin: ${action}${target ? ` ${target}` : ''}`);
  if (!options.trail || !ctx.audit) return;
  // The change is done: an audit table that is away must not turn it into a failure (the log line stands).
  await ctx.audit.audit(by, action, target, change).catch((err: Error) => ctx.log.warn({ err: err.message, action, target }, 'audit row not written (PostgreSQL unavailable): the log line stands'));
}
