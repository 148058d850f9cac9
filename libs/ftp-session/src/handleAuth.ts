import { SpanStatusCode, trace } from '@opentelemetry/api';
import { nextMethods } from '@ftp/identity';
import { attemptLogin, refuseIfBanned, type LoginResult } from '@ftp/session-core';
import { bindTraceContext, startChildSpan } from '@ftp/telemetry';
import { disposeData } from './dataChannel';
import { FtpError } from './errors';
import { controlProtectionRequired } from './handleTls';
import { freshSessionState, type Handler, type Session } from './state';

const PASSWORD_ONLY: ReadonlySet<'password'> = new Set(['password']);

/** Ends a login that the core refused, the FTP way: 421 and close when the session must end, 530 otherwise. */
function refuse(session: Session, result: Extract<LoginResult, { ok: false }>): never {
  if (result.end) {
    session.reply(421, result.message);
    session.end();
  }
  throw new FtpError(result.end ? 421 : 530, result.message); // after end(), the dispatcher's reply is not sent again
}

const USER: Handler = async (session, arg) => {
  if (session.user) throw new FtpError(530, 'Already logged in; use REIN to change user');
  // The server-wide rule is the same for every name; a per-user rule is applied at PASS, so USER answers every name
  // alike and does not tell which accounts exist.
  if (!session.secure && session.deps.tls && session.deps.settings.tlsRequireControl) {
    session.log.info({ user: arg }, 'login refused: TLS required on the control connection');
    throw new FtpError(530, 'TLS required: use AUTH TLS before USER');
  }
  const banned = await refuseIfBanned(session, session.deps);
  if (banned && !banned.ok) refuse(session, banned);
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
  session.currentContext = trace.setSpan(commandContext, span);
  let outcome = 'unavailable';
  try {
    const result = await attemptLogin(session, session.deps, name, { kind: 'password', password: arg }, {
      span,
      isClosed: () => session.closed,
      policy: (user) => {
        // user.requireTls too: a user store that learns of users only at login (the identity hook) cannot say it at USER.
        if (!session.secure && (controlProtectionRequired(session, user.name) || (Boolean(session.deps.tls) && user.requireTls)))
          return 'TLS required: use AUTH TLS before USER';
        // A user who must also present an SSH key cannot log in over FTP with the password alone.
        if (!nextMethods(user, PASSWORD_ONLY).complete) return 'This account logs in over SFTP only';
        return undefined;
      },
    });
    outcome = result.ok ? 'success' : result.reason;
    if (!result.ok) {
      if (result.reason === 'disconnected') return;
      span.setAttribute('ftp.login.reason', result.reason);
      refuse(session, result);
    }
    const user = result.user;
    session.user = user;
    session.storage = session.deps.storageFor(user);
    session.cwd = '/';
    session.log = session.log.child({ user: user.name });
    session.span.setAttribute('enduser.id', user.name);
    session.log.info({ audit: true, event: 'login', result: 'success' }, 'login');
    session.reply(230, 'Login successful');
  } finally {
    session.currentContext = commandContext;
    span.setAttribute('ftp.login.result', outcome);
    if (outcome !== 'success') span.setStatus({ code: SpanStatusCode.ERROR, message: `login ${outcome}` });
    span.end();
  }
};

const ACCT: Handler = (session) => session.reply(202, 'ACCT not needed');

const REIN: Handler = async (session) => {
  session.transfer?.abort();
  disposeData(session);
  if (session.user) await session.deps.cluster.sessions.unbindUser(session.id);
  Object.assign(session, freshSessionState());
  session.log = session.deps.log.child({ session: session.id, client: session.clientAddress });
  bindTraceContext(session.log, () => session.currentContext);
  session.startLoginGrace();
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
