import { ANY_SSH_METHODS, allowsMethod, nextMethods, type AuthMethod, type SshAuthMethod, type User } from '@ftp/identity';
import { completeLogin, recordLoginFailure, verifyCredential, type Credential, type LoginResult } from '@ftp/session-core';
import ssh2, { type AuthContext, type KeyboardAuthContext, type PublicKeyAuthContext } from 'ssh2';
import type { SshDeps, SshSession } from './frontDoor';
import { DISCONNECT } from './ssh2Hooks';

const { utils } = ssh2;

/** What one connection's authentication has established so far (SSH allows several methods, one after the other). */
export interface AuthState {
  attempts: number;
  /** The user and the methods it has passed (partial success), until the login completes. */
  user?: User;
  name?: string;
  done: Set<AuthMethod>;
}

/**
 * One SSH authentication request, mapped onto identity and the shared login bookkeeping: a wrong password or a bad
 * signature counts toward the per-address ban like an FTP failure; a key the user does not have (clients offer every
 * key of their agent) does not, but counts toward the attempts of this connection. A user who must pass two methods
 * gets partial success after the first.
 */
export async function handleAuthentication(ctx: AuthContext, session: SshSession, deps: SshDeps, auth: AuthState): Promise<void> {
  if (session.user || session.closed) return ctx.reject();
  if (auth.name !== undefined && ctx.username !== auth.name) {
    // A new user name starts over: what the previous name passed does not carry over.
    auth.user = undefined;
    auth.done.clear();
  }
  auth.name = ctx.username;
  if (ctx.method === 'none') return ctx.reject(remaining(auth));
  if (++auth.attempts > deps.settings.maxAuthTries) {
    session.log.warn({ user: ctx.username, attempts: auth.attempts - 1 }, 'too many authentication attempts: closing');
    ctx.reject();
    session.disconnect('Too many authentication failures'); // OpenSSH's words for MaxAuthTries
    return;
  }
  try {
    switch (ctx.method) {
      case 'password':
        return await passed(ctx, session, deps, auth, 'password', await verify(session, deps, ctx.username, { kind: 'password', password: ctx.password }));
      case 'keyboard-interactive':
        return await keyboardInteractive(ctx, session, deps, auth);
      case 'publickey':
        return await publicKey(ctx, session, deps, auth);
      default:
        return ctx.reject(remaining(auth));
    }
  } catch (err) {
    session.log.error({ err }, 'SSH authentication failed unexpectedly');
    ctx.reject();
  }
}

function verify(session: SshSession, deps: SshDeps, name: string, credential: Credential): Promise<LoginResult> {
  return verifyCredential(session, deps, name, credential, { isClosed: () => session.closed });
}

/** WinSCP and FileZilla send the password through keyboard-interactive: one prompt, no echo. */
function keyboardInteractive(ctx: KeyboardAuthContext, session: SshSession, deps: SshDeps, auth: AuthState): Promise<void> {
  return new Promise((resolve) => {
    ctx.prompt([{ prompt: 'Password: ', echo: false }], (answers: string[]) => {
      const password = answers[0] ?? '';
      verify(session, deps, ctx.username, { kind: 'password', password })
        .then((result) => passed(ctx, session, deps, auth, 'password', result))
        .catch((err) => {
          session.log.error({ err }, 'SSH authentication failed unexpectedly');
          ctx.reject();
        })
        .finally(resolve);
    });
  });
}

async function publicKey(ctx: PublicKeyAuthContext, session: SshSession, deps: SshDeps, auth: AuthState): Promise<void> {
  // RSA keys sign with SHA-2 (rsa-sha2-256/512); the SHA-1 'ssh-rsa' signature algorithm is refused, as OpenSSH 8.8+ does.
  // ssh2 reports every RSA key as algo 'ssh-rsa' and tells the signature algorithm by hashAlgo ('sha256'/'sha512' for
  // rsa-sha2-256/512, none for SHA-1 'ssh-rsa').
  if (ctx.key.algo === 'ssh-rsa' && !ctx.hashAlgo) {
    session.log.info({ user: ctx.username }, 'public key refused: ssh-rsa (SHA-1) signatures are not accepted');
    return ctx.reject(remaining(auth));
  }
  const key = { type: keyTypeOf(ctx.key.data), data: ctx.key.data };
  if (!ctx.signature) {
    // The client asks whether this key would do (it offers each key of its agent): a miss is not a failed login.
    const known = await deps.identity.authenticateKey(ctx.username, key, session.clientAddress, session.protocol);
    return known.ok ? ctx.accept() : ctx.reject(remaining(auth));
  }
  const parsed = utils.parseKey(`${key.type} ${key.data.toString('base64')}`);
  if (parsed instanceof Error || parsed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) {
    return passed(ctx, session, deps, auth, 'publickey', await recordLoginFailure(session, deps, ctx.username, 'bad-signature'));
  }
  return passed(ctx, session, deps, auth, 'publickey', await verify(session, deps, ctx.username, { kind: 'publickey', key }));
}

/** One method's outcome: reject, partial success (another method is still required), or the completed login. */
async function passed(ctx: AuthContext, session: SshSession, deps: SshDeps, auth: AuthState, method: AuthMethod, result: LoginResult) {
  if (!result.ok) {
    if (result.reason === 'disconnected') return ctx.reject();
    // The cluster state (or the identity hook) is away: not the partner's credentials, so no "Permission denied"
    // but a disconnect that says so, as an FTP partner gets 421.
    if (result.reason === 'unavailable' && result.end) return session.disconnect(result.message, DISCONNECT.SERVICE_NOT_AVAILABLE);
    ctx.reject(remaining(auth));
    if (result.end) session.disconnect(result.message); // banned now
    return;
  }
  if (auth.user && auth.user.name !== result.user.name) auth.done.clear();
  auth.user = result.user;
  if (allowsMethod(result.user, method)) auth.done.add(method);
  const next = nextMethods(result.user, auth.done);
  if (!next.complete) {
    session.log.info({ user: result.user.name, method, remaining: next.remaining }, 'SSH authentication: partial success');
    return ctx.reject(next.remaining, true);
  }
  const login = await completeLogin(session, deps, result.user, { isClosed: () => session.closed });
  if (!login.ok) {
    if (login.reason === 'unavailable' && login.end) return session.disconnect(login.message, DISCONNECT.SERVICE_NOT_AVAILABLE);
    ctx.reject();
    if (login.end) session.disconnect(login.message);
    return;
  }
  session.user = login.user;
  session.log = session.log.child({ user: login.user.name });
  session.span.setAttribute('enduser.id', login.user.name);
  session.log.info({ audit: true, event: 'login', result: 'success', method: [...auth.done].join('+') }, 'login');
  ctx.accept();
}

/** The methods still open to this connection: all of them until a user has passed one, then what that user lacks. */
function remaining(auth: AuthState): SshAuthMethod[] {
  return auth.user ? nextMethods(auth.user, auth.done).remaining : [...ANY_SSH_METHODS];
}

/** The key type named at the start of an SSH public key blob (string length, then the name). */
function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return '';
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + Math.min(length, 64)).toString('latin1');
}
