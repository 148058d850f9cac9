import { SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { bindTraceContext, startChildSpan } from '@ftp/telemetry';
import { disposeData } from './dataChannel';
import { FtpError } from './errors';
import { controlProtectionRequired } from './handleTls';
import { freshSessionState, withContext, type Handler, type Session } from './session';

/**
 * A cluster-state call of a login, made in the session's current context (its Redis span joins the login's): while
 * the store is away the login gets 421 and the connection closes, as a new one would.
 */
async function shared<T>(session: Session, call: () => Promise<T>): Promise<T> {
  try {
    return await withContext(session, call);
  } catch (err) {
    session.deps.metrics.clusterStateErrors.inc();
    session.log.error({ err: (err as Error).message }, 'cluster state unavailable: login refused');
    session.reply(421, 'Service temporarily unavailable, try again later');
    session.end();
    throw new FtpError(421, 'Service temporarily unavailable, try again later');
  }
}

async function loginFailed(session: Session, attempt: LoginAttempt, name: string, reason: string) {
  const { cluster, settings, metrics } = session.deps;
  metrics.loginsTotal.inc({ result: 'failure' });
  attempt.result = 'failure';
  attempt.span.setAttribute('ftp.login.reason', reason);
  session.log.info({ audit: true, event: 'login', user: name, result: 'failure', reason }, 'login failed');
  const { banned } = await shared(session, () =>
    cluster.bans.recordFailure(session.clientAddress, { threshold: settings.banAfterFailures, banSeconds: settings.banSeconds }),
  );
  if (banned) {
    metrics.bansTotal.inc();
    attempt.result = 'banned';
    session.log.warn({ seconds: settings.banSeconds }, 'address banned after repeated failed logins');
    session.reply(421, 'Too many failed logins; closing connection');
    session.end();
    return;
  }
  throw new FtpError(530, 'Login incorrect');
}

const USER: Handler = (session, arg) => {
  if (session.user) throw new FtpError(530, 'Already logged in; use REIN to change user');
  if (!session.secure && controlProtectionRequired(session, arg)) {
    session.log.info({ user: arg }, 'login refused: TLS required on the control connection');
    throw new FtpError(530, 'TLS required: use AUTH TLS before USER');
  }
  session.pendingUser = arg;
  const anonymous = session.deps.identity.isAnonymous(arg);
  session.reply(331, anonymous ? 'Anonymous login ok, send your e-mail address as password' : `Password required for ${arg}`);
};

const PASS: Handler = async (session, arg) => {
  if (session.user) throw new FtpError(503, 'Already logged in');
  const name = session.pendingUser;
  if (name === undefined) throw new FtpError(503, 'Login with USER first');
  session.pendingUser = undefined;
  // The login attempt as a span of its own, under `ftp PASS`; it records the outcome, never the password.
  const commandContext = session.currentContext;
  const span = startChildSpan('ftp login', { attributes: { 'ftp.session.id': session.id, 'client.address': session.clientAddress } }, commandContext);
  const attempt: LoginAttempt = { span, result: 'unavailable' };
  session.currentContext = trace.setSpan(commandContext, span);
  try {
    await login(session, attempt, name, arg);
  } finally {
    session.currentContext = commandContext;
    span.setAttribute('ftp.login.result', attempt.result);
    if (attempt.result !== 'success') span.setStatus({ code: SpanStatusCode.ERROR, message: `login ${attempt.result}` });
    span.end();
  }
};

/** One login attempt: its span and its outcome so far ('unavailable' until decided: the cluster state failed). */
interface LoginAttempt {
  span: Span;
  result: 'success' | 'failure' | 'banned' | 'limited' | 'disconnected' | 'unavailable';
}

async function login(session: Session, attempt: LoginAttempt, name: string, password: string) {
  const { identity, cluster, settings, metrics } = session.deps;
  const result = await identity.authenticate(name, password, session.clientAddress);
  if (!result.ok) return loginFailed(session, attempt, name, result.reason);
  // The client hung up during the password check: its session record is gone, which bindUser would report as a limit.
  if (session.closed) {
    attempt.result = 'disconnected';
    return;
  }
  const user = result.user;
  const maxPerUser = user.maxSessions ?? settings.maxSessionsPerUser;
  if (!(await shared(session, () => cluster.sessions.bindUser(session.id, user.name, maxPerUser)))) {
    metrics.loginsTotal.inc({ result: 'limited' });
    attempt.result = 'limited';
    attempt.span.setAttribute('enduser.id', user.name);
    session.log.warn({ user: user.name, limit: maxPerUser }, 'login refused: too many sessions for this user');
    session.reply(421, 'Too many sessions for this user');
    session.end();
    return;
  }
  await shared(session, () => cluster.bans.clearFailures(session.clientAddress));
  session.user = user;
  session.storage = session.deps.storageFor(user);
  session.cwd = '/';
  session.log = session.log.child({ user: user.name });
  metrics.loginsTotal.inc({ result: 'success' });
  attempt.result = 'success';
  attempt.span.setAttribute('enduser.id', user.name);
  session.span.setAttribute('enduser.id', user.name);
  session.log.info({ audit: true, event: 'login', result: 'success' }, 'login');
  session.reply(230, 'Login successful');
}

const ACCT: Handler = (session) => session.reply(202, 'ACCT not needed');

const REIN: Handler = async (session) => {
  session.transfer?.abort();
  disposeData(session);
  if (session.user) await session.deps.cluster.sessions.unbindUser(session.id);
  Object.assign(session, freshSessionState());
  session.log = session.deps.log.child({ session: session.id, client: session.clientAddress });
  bindTraceContext(session.log, () => session.currentContext);
  session.reply(220, 'Session reset, send USER');
};

const QUIT: Handler = (session) => {
  session.reply(221, 'Goodbye');
  session.end();
};

/** RFC 7151: one virtual host here, so any name is accepted before login. */
const HOST: Handler = (session) => {
  if (session.user || session.pendingUser !== undefined) throw new FtpError(503, 'HOST must come before USER');
  session.reply(220, 'Host accepted');
};

export const authHandlers: Record<string, Handler> = { USER, PASS, ACCT, REIN, QUIT, HOST };
