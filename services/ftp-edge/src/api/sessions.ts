import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { SessionKick, SessionRecord } from '@ftp/cluster-state';
import { requireScope } from './auth';
import { audit, type ApiContext } from './context';
import { ApiError } from './errors';
import { ErrorReply, IdParam, Session, SessionEnding, SessionList, SessionQuery } from './schemas';

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 429: ErrorReply, 503: ErrorReply };
const tags = ['sessions'];

/** How old a registry listing may be to answer a GET: concurrent and repeated listings share one read. */
const LISTING_MAX_AGE_MS = 250;

const iso = (ms: number) => new Date(ms).toISOString();

export function sessionOut(r: SessionRecord): Session {
  return {
    id: r.id,
    ...(r.user ? { user: r.user } : {}),
    ...(r.protocol ? { protocol: r.protocol } : {}),
    client: r.clientAddress,
    replica: r.replicaId,
    started: iso(r.startedAt),
    ...(r.command ? { command: r.command } : {}),
    ...(r.transfer
      ? {
          transfer: {
            direction: r.transfer.direction,
            path: r.transfer.path,
            started: iso(r.transfer.startedAt),
            ...(typeof r.transfer.bytes === 'number' ? { bytes: r.transfer.bytes } : {}),
          },
        }
      : {}),
    bytes_in: r.bytesIn ?? 0,
    bytes_out: r.bytesOut ?? 0,
  };
}

/**
 * The cluster-wide registry, read at most once per LISTING_MAX_AGE_MS however many requests ask: listing 2,000
 * records is one Lua script of ~13 ms in Redis (it blocks Redis meanwhile), which a dashboard polling the API must
 * not multiply. Progress in the records is about a second old anyway (FTP_TRANSFER_PROGRESS_SECONDS).
 */
export function createSessionListing(ctx: Pick<ApiContext, 'cluster'>) {
  let cached: { at: number; records: Promise<SessionRecord[]> } | undefined;
  const read = (maxAgeMs: number): Promise<SessionRecord[]> => {
    if (cached && Date.now() - cached.at <= maxAgeMs) return cached.records;
    const records = ctx.cluster.sessions.list();
    const entry = { at: Date.now(), records };
    cached = entry;
    records.catch(() => {
      if (cached === entry) cached = undefined; // a failure is not kept
    });
    return records;
  };
  return {
    recent: () => read(LISTING_MAX_AGE_MS),
    fresh: () => read(0),
  };
}

/** The registry is in Redis: while it is away the API says so instead of showing nothing. */
async function registry<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new ApiError(503, `the session registry is unavailable (cluster state: ${(err as Error).message})`);
  }
}

/**
 * Ends every session of `user` on every replica: this replica's at once, the others' through one kick to all (a
 * session that logs in while the kick travels is caught too, since every replica checks its own sessions by user).
 */
export async function endUserSessions(ctx: ApiContext, request: FastifyRequest, user: string, reason: string) {
  const kick: SessionKick = { user, reason, by: request.token?.name };
  const listed = (await ctx.cluster.sessions.list().catch(() => [])).filter((r) => r.user === user).length;
  const local = ctx.endLocal(kick);
  let delivered = true;
  try {
    await ctx.cluster.kicks.send('*', kick);
  } catch (err) {
    delivered = false;
    ctx.log.warn({ user, err: (err as Error).message }, 'admin API: kick not sent to other replicas (cluster state unavailable)');
  }
  await audit(ctx, request, 'user.sessions.end', user, { after: { reason, sessions: Math.max(listed, local) } }, { trail: true });
  if (!delivered && ctx.cluster.kind === 'redis') throw new ApiError(503, `ended ${local} session(s) here; other replicas could not be told (Redis unavailable)`);
  return { user, sessions: Math.max(listed, local) };
}

export function sessionRoutes(ctx: ApiContext) {
  const listing = createSessionListing(ctx);
  return async (api: FastifyInstance) => {
    const app = api.withTypeProvider<TypeBoxTypeProvider>();
    const read = requireScope(ctx, 'sessions:read');

    app.get(
      '/sessions',
      {
        onRequest: read,
        schema: {
          tags,
          summary: 'Live sessions on every replica (scope sessions:read)',
          description: 'From the cluster-wide session registry; transfer bytes are as of the last report, about a second old.',
          querystring: SessionQuery,
          response: { 200: SessionList, ...errors },
        },
      },
      async (request) => {
        const { user, protocol, replica } = request.query;
        const records = await registry(listing.recent);
        const items = records
          .filter((r) => (user === undefined || r.user === user) && (protocol === undefined || r.protocol === protocol) && (replica === undefined || r.replicaId === replica))
          .sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1))
          .map(sessionOut);
        return { items };
      },
    );

    const find = async (id: string) => {
      const record = (await registry(listing.recent)).find((r) => r.id === id) ?? (await registry(listing.fresh)).find((r) => r.id === id);
      if (!record) throw new ApiError(404, `no live session ${id}`);
      return record;
    };

    app.get('/sessions/:id', { onRequest: read, schema: { tags, summary: 'One live session (scope sessions:read)', params: IdParam, response: { 200: Session, ...errors } } }, async (request) =>
      sessionOut(await find(request.params.id)),
    );

    app.delete(
      '/sessions/:id',
      {
        onRequest: requireScope(ctx, 'sessions:write'),
        schema: {
          tags,
          summary: 'End a session on whichever replica holds it (scope sessions:write)',
          description: 'FTP: 421 and the control connection closes; SFTP: SSH disconnect. A running upload keeps its partial for a resume. 202: the owning replica got the request (it acts within milliseconds).',
          params: IdParam,
          response: { 202: SessionEnding, ...errors },
        },
      },
      async (request, reply) => {
        const record = await find(request.params.id);
        const kick: SessionKick = { sessionId: record.id, reason: 'ended by an administrator', by: request.token?.name };
        const heard = record.replicaId === ctx.replicaId ? ctx.endLocal(kick) : await registry(() => ctx.cluster.kicks.send(record.replicaId, kick));
        if (heard === 0)
          throw new ApiError(
            503,
            record.replicaId === ctx.replicaId
              ? `session ${record.id} is no longer open here`
              : `replica ${record.replicaId} holds session ${record.id} but is not listening (down, or cut off from Redis); its record expires by itself`,
          );
        await audit(ctx, request, 'session.end', record.id, { before: sessionOut(record) }, { trail: true });
        return reply.code(202).send({ id: record.id, ...(record.user ? { user: record.user } : {}), replica: record.replicaId, sessions: 1 });
      },
    );
  };
}
