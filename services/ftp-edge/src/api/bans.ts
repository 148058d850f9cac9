import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { requireScope } from './auth';
import { audit, type ApiContext } from './context';
import { ApiError } from './errors';
import { AddressParam, BanList, ErrorReply } from './schemas';

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 429: ErrorReply, 503: ErrorReply };
const tags = ['bans'];

async function bansCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new ApiError(503, `the ban list is unavailable (cluster state: ${(err as Error).message})`);
  }
}

/**
 * Addresses banned after failed logins (or failed token checks), cluster-wide: list them (scope sessions:read) and
 * lift one (scope bans:write), which also forgets its failures.
 */
export function banRoutes(ctx: ApiContext) {
  return async (api: FastifyInstance) => {
    const app = api.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/bans',
      { onRequest: requireScope(ctx, 'sessions:read'), schema: { tags, summary: 'Addresses banned now, on every replica (scope sessions:read)', response: { 200: BanList, ...errors } } },
      async () => ({ items: (await bansCall(() => ctx.cluster.bans.list())).map((b) => ({ address: b.address, until: new Date(b.until).toISOString() })) }),
    );

    app.delete(
      '/bans/:address',
      {
        onRequest: requireScope(ctx, 'bans:write'),
        schema: { tags, summary: 'Lift the ban of an address and forget its failures (scope bans:write)', params: AddressParam, response: { 204: Type.Null(), ...errors } },
      },
      async (request, reply) => {
        const { address } = request.params;
        if (!isIP(address)) throw new ApiError(400, `params.address: "${address}" is not an IP address`, ['address']);
        const until = (await bansCall(() => ctx.cluster.bans.list())).find((b) => b.address === address)?.until;
        if (!(await bansCall(() => ctx.cluster.bans.lift(address)))) throw new ApiError(404, `${address} is not banned`);
        await audit(ctx, request, 'ban.lift', address, { before: { address, until: until === undefined ? undefined : new Date(until).toISOString() } }, { trail: true });
        return reply.code(204).send(null);
      },
    );
  };
}
