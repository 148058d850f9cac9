import { context, type Span } from '@opentelemetry/api';
import { limitsOf, type User } from '@ftp/identity';
import { REFUSAL_MESSAGES } from './admission';
import type { CoreDeps, CoreSession } from './types';

/** How a client proves who it is. A public key's signature is verified by the transport before it gets here. */
export type Credential = { kind: 'password'; password: string } | { kind: 'publickey'; key: { type: string; data: Buffer } };

export type LoginFailureReason =
  /** The address is banned (now, or by this very failure): the session must end. */
  | 'banned'
  /** Wrong name or credential; counted toward the ban. */
  | 'failure'
  /** Right credential, but the front door's policy refuses it (e.g. TLS required); not counted. */
  | 'refused'
  /** The user has its maximum of sessions, or of new sessions per minute, cluster-wide: the session must end. */
  | 'limited'
  /** The client hung up during the check. */
  | 'disconnected'
  /** The cluster state did not answer (the session must end), or the identity hook did not (it may try again). */
  | 'unavailable';

export type LoginResult = { ok: true; user: User } | { ok: false; reason: LoginFailureReason; message: string; end: boolean };

export interface LoginOptions {
  /** The login attempt's span: it gets the outcome and the user, never the credential. */
  span?: Span;
  /** Asked once the client has hung up, so that a late answer binds nothing. */
  isClosed?: () => boolean;
  /** The front door's own rule for a verified user: a refusal message, or undefined to let it in. */
  policy?: (user: User) => string | undefined;
}

const fail = (reason: LoginFailureReason, message: string, end: boolean): LoginResult => ({ ok: false, reason, message, end });

/**
 * Refuses a session whose address was banned after it connected (by this replica or another): checked before every
 * login step, so connections opened before a ban get no more guesses. Resolves the refusal, or undefined.
 */
export async function refuseIfBanned(session: CoreSession, deps: CoreDeps): Promise<LoginResult | undefined> {
  try {
    if (!(await context.with(session.currentContext, () => deps.cluster.bans.isBanned(session.clientAddress)))) return undefined;
  } catch (err) {
    return unavailable(session, deps, err);
  }
  deps.metrics.loginsTotal.inc({ protocol: session.protocol, result: 'banned' });
  session.log.warn('login refused: address is banned after failed logins');
  return fail('banned', REFUSAL_MESSAGES.banned, true);
}

/**
 * One login attempt, the same for every front door: ban check, credential check, failure bookkeeping per address and
 * target user, the cluster-wide per-user session limit, and on success forgiving only this user's failures. Logs an
 * audit line and counts the outcome; the caller only maps the result onto its protocol and sets `session.user`.
 */
export async function attemptLogin(session: CoreSession, deps: CoreDeps, name: string, credential: Credential, options: LoginOptions = {}): Promise<LoginResult> {
  const verified = await verifyCredential(session, deps, name, credential, options);
  return verified.ok ? completeLogin(session, deps, verified.user, options) : verified;
}

/**
 * The first half of a login: ban check, then the credential; a wrong one is counted toward the ban. Binds nothing, so
 * a front door that needs several methods (SSH partial success) calls it once per method and `completeLogin` once.
 */
export async function verifyCredential(session: CoreSession, deps: CoreDeps, name: string, credential: Credential, options: LoginOptions = {}): Promise<LoginResult> {
  const banned = await refuseIfBanned(session, deps);
  if (banned) return banned;
  const result =
    credential.kind === 'password'
      ? await deps.identity.authenticate(name, credential.password, session.clientAddress, session.protocol)
      : await deps.identity.authenticateKey(name, credential.key, session.clientAddress, session.protocol);
  if (!result.ok && result.reason === 'unavailable') return identityUnavailable(session, deps, name);
  if (!result.ok) return recordLoginFailure(session, deps, name, result.reason);
  if (options.isClosed?.()) return fail('disconnected', 'Connection closed', true);
  options.span?.setAttribute('enduser.id', result.user.name);
  return { ok: true, user: result.user };
}

/**
 * The second half: the front door's policy, then binding the user within the cluster-wide per-user session limit,
 * which also forgives this user's failures from this address. The session counts as logged in (no longer pre-login)
 * from here.
 */
export async function completeLogin(session: CoreSession, deps: CoreDeps, user: User, options: LoginOptions = {}): Promise<LoginResult> {
  const { cluster, settings, metrics } = deps;
  if (options.isClosed?.()) return fail('disconnected', 'Connection closed', true);
  const refusal = options.policy?.(user);
  if (refusal) {
    metrics.loginsTotal.inc({ protocol: session.protocol, result: 'refused' });
    session.log.info({ audit: true, event: 'login', user: user.name, result: 'refused', reason: refusal }, 'login refused');
    return fail('refused', refusal, false);
  }
  const maxPerUser = user.maxSessions ?? settings.maxSessionsPerUser;
  const limits = { maxPerUser, sessionsPerMinute: limitsOf(user).sessionsPerMinute };
  try {
    const bound = await context.with(session.currentContext, () => cluster.sessions.bindUser(session.id, user.name, limits));
    if (!bound.ok) {
      const rate = bound.reason === 'user-rate';
      metrics.loginsTotal.inc({ protocol: session.protocol, result: rate ? 'user-rate' : 'limited' });
      if (rate) {
        metrics.limitHits.inc({ limit: 'sessions_per_minute' });
        session.log.warn({ user: user.name, perMinute: limits.sessionsPerMinute }, 'login refused: too many new sessions for this user');
        return fail('limited', 'Too many new sessions for this user, try again later', true);
      }
      // 'gone' (the record expired under the session) is refused as before: the session ends either way.
      session.log.warn({ user: user.name, limit: maxPerUser, reason: bound.reason }, 'login refused: too many sessions for this user');
      return fail('limited', 'Too many sessions for this user', true);
    }
  } catch (err) {
    return unavailable(session, deps, err);
  }
  metrics.loginsTotal.inc({ protocol: session.protocol, result: 'success' });
  return { ok: true, user };
}

/** A failed credential (wrong password, unknown user, a bad SSH signature): logged, counted toward the ban. */
export async function recordLoginFailure(session: CoreSession, deps: CoreDeps, name: string, reason: string): Promise<LoginResult> {
  const { cluster, settings, metrics } = deps;
  metrics.loginsTotal.inc({ protocol: session.protocol, result: 'failure' });
  session.log.info({ audit: true, event: 'login', user: name, result: 'failure', reason }, 'login failed');
  let banned: boolean;
  try {
    const policy = { threshold: settings.banAfterFailures, banSeconds: settings.banSeconds };
    ({ banned } = await context.with(session.currentContext, () => cluster.bans.recordFailure(session.clientAddress, name, policy)));
  } catch (err) {
    return unavailable(session, deps, err);
  }
  if (!banned) return fail('failure', 'Login incorrect', false);
  metrics.bansTotal.inc();
  session.log.warn({ seconds: settings.banSeconds }, 'address banned after repeated failed logins');
  return fail('banned', 'Too many failed logins; closing connection', true);
}

/** The source of users (an identity hook) did not answer: refused, but not the client's failure, so not counted toward a ban. */
function identityUnavailable(session: CoreSession, deps: CoreDeps, name: string): LoginResult {
  deps.metrics.loginsTotal.inc({ protocol: session.protocol, result: 'unavailable' });
  session.log.warn({ audit: true, event: 'login', user: name, result: 'unavailable' }, 'login refused: the identity provider did not answer');
  return fail('unavailable', REFUSAL_MESSAGES.unavailable, false);
}

function unavailable(session: CoreSession, deps: CoreDeps, err: unknown): LoginResult {
  deps.metrics.clusterStateErrors.inc();
  session.log.error({ err: (err as Error).message }, 'cluster state unavailable: login refused');
  return fail('unavailable', REFUSAL_MESSAGES.unavailable, true);
}
