import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { AdminScope } from '@ftp/identity';
import type { ApiContext } from './context';

/** The `user` failed token checks are counted under in the ban list (forgiven by no login). */
export const TOKEN_FAILURE_USER = '(api token)';

const deny = (reply: FastifyReply, statusCode: 401 | 403 | 429, message: string, challenge?: string) => {
  if (challenge) reply.header('www-authenticate', challenge);
  return reply.code(statusCode).send({ statusCode, error: statusCode === 401 ? 'Unauthorized' : statusCode === 403 ? 'Forbidden' : 'Too Many Requests', message });
};

/**
 * The check before a route: a bearer token (`Authorization: Bearer ftpat_…`) that verifies and carries `scope`.
 * 401 without a token or with a wrong one, 403 when the token lacks the scope, 429 from an address banned for failed
 * logins or failed token checks. A wrong token counts as a failure of the address in the cluster-wide ban list, exactly
 * as a wrong FTP password does. Runs before the body is read and validated: a stranger learns nothing of the schemas.
 */
export function requireScope(ctx: ApiContext, scope: AdminScope): onRequestHookHandler {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return deny(reply, 401, 'a bearer token is required (Authorization: Bearer …; ftpctl token create)', 'Bearer realm="ftp-admin"');
    if (await banned(ctx, request.ip)) return deny(reply, 429, 'too many failed logins or token checks from your address; try again later');
    const token = ctx.tokens.verifyToken(match[1]);
    if (!token) {
      await recordFailure(ctx, request.ip);
      return deny(reply, 401, 'unknown, revoked or expired token', 'Bearer realm="ftp-admin", error="invalid_token"');
    }
    request.token = token;
    if (!token.scopes.includes(scope))
      return deny(reply, 403, `token "${token.name}" lacks the scope ${scope}`, `Bearer realm="ftp-admin", error="insufficient_scope", scope="${scope}"`);
  };
}

/** A ban list that is away (Redis down) lets the request through: tokens are 256 random bits, not guessable anyway. */
async function banned(ctx: ApiContext, address: string): Promise<boolean> {
  try {
    return await ctx.cluster.bans.isBanned(address);
  } catch {
    return false;
  }
}

async function recordFailure(ctx: ApiContext, address: string): Promise<void> {
  try {
    const { banned: nowBanned, failures } = await ctx.cluster.bans.recordFailure(address, TOKEN_FAILURE_USER, ctx.banPolicy);
    ctx.log.warn({ event: 'admin-auth', result: 'failure', address, failures, banned: nowBanned }, 'admin API: wrong bearer token');
  } catch (err) {
    ctx.log.warn({ event: 'admin-auth', result: 'failure', address, err: (err as Error).message }, 'admin API: wrong bearer token (not counted: cluster state unavailable)');
  }
}
