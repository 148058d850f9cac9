import { FtpError } from './errors';
import type { Handler, Session } from './state';

function tlsOf(session: Session) {
  if (!session.deps.tls) throw new FtpError(502, 'TLS is not enabled on this server');
  return session.deps.tls;
}

/** AUTH TLS (RFC 4217); SSL, TLS-C and TLS-P are the aliases older clients send (curl starts with AUTH SSL). */
const AUTH: Handler = async (session, arg) => {
  tlsOf(session);
  const mechanism = arg.toUpperCase();
  if (!['TLS', 'TLS-C', 'SSL', 'TLS-P'].includes(mechanism)) throw new FtpError(504, `AUTH ${arg} not supported; use AUTH TLS`);
  if (session.secure) throw new FtpError(503, 'Already using TLS');
  session.reply(234, `AUTH ${mechanism} successful`);
  await session.upgradeControl();
  // Old drafts: AUTH SSL and TLS-P also protect the data connections.
  if (mechanism === 'SSL' || mechanism === 'TLS-P') session.protection = 'P';
};

const PBSZ: Handler = (session, arg) => {
  tlsOf(session);
  if (!session.secure) throw new FtpError(503, 'PBSZ needs AUTH TLS first');
  if (!/^\d+$/.test(arg)) throw new FtpError(501, 'PBSZ needs a number');
  session.pbszDone = true;
  // Stream-mode TLS has no protection buffer: any requested size is answered with 0 (RFC 4217 §9).
  session.reply(200, 'PBSZ=0');
};

const PROT: Handler = (session, arg) => {
  tlsOf(session);
  if (!session.secure || !session.pbszDone) throw new FtpError(503, 'PROT needs AUTH TLS and PBSZ first');
  const level = arg.toUpperCase();
  if (level === 'C') {
    if (dataProtectionRequired(session)) throw new FtpError(534, 'Data connections must be protected on this server');
    session.protection = 'C';
    session.reply(200, 'Protection level set to Clear');
  } else if (level === 'P') {
    session.protection = 'P';
    session.reply(200, 'Protection level set to Private');
  } else if (level === 'S' || level === 'E') {
    throw new FtpError(536, `PROT ${level} not supported`);
  } else {
    throw new FtpError(504, `Unknown protection level ${arg}`);
  }
};

/** CCC would send commands (and passwords typed later) in clear again: refused. */
const CCC: Handler = () => {
  throw new FtpError(534, 'CCC refused by policy');
};

/** Whether transfers of this session must be protected: server policy, or the logged-in user's rule. */
export function dataProtectionRequired(session: Session): boolean {
  return session.deps.settings.tlsRequireData || Boolean(session.user?.requireTls);
}

/** Whether USER must wait for TLS: server policy, or the named user's rule. */
export function controlProtectionRequired(session: Session, name: string): boolean {
  return Boolean(session.deps.tls) && (session.deps.settings.tlsRequireControl || session.deps.identity.requiresTls(name));
}

export const tlsHandlers: Record<string, Handler> = { AUTH, PBSZ, PROT, CCC };
