import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { UserStoreError } from '@ftp/identity';
import { requireScope } from './auth';
import { actorOf, audit, type ApiContext } from './context';
import { groupChangeFromBody, groupFromBody, groupOut } from './documents';
import { ErrorReply, Group, GroupCreate, GroupPatch, NameParam } from './schemas';

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 409: ErrorReply, 429: ErrorReply, 501: ErrorReply, 503: ErrorReply };
const tags = ['groups'];

/** Groups: settings their members inherit unless they set their own (scopes users:read / users:write). */
export function groupRoutes(ctx: ApiContext) {
  return async (api: FastifyInstance) => {
    const app = api.withTypeProvider<TypeBoxTypeProvider>();
    const read = requireScope(ctx, 'users:read');
    const write = requireScope(ctx, 'users:write');
    const found = async (name: string) => {
      const view = await ctx.store.getGroup(name);
      if (!view) throw new UserStoreError('not-found', `group "${name}" does not exist`);
      return view;
    };

    app.get('/groups', { onRequest: read, schema: { tags, summary: 'Every group with its members (scope users:read)', response: { 200: Type.Object({ items: Type.Array(Group) }), ...errors } } }, async () => ({
      items: (await ctx.store.listGroups()).map(groupOut),
    }));

    app.get('/groups/:name', { onRequest: read, schema: { tags, summary: 'One group (scope users:read)', params: NameParam, response: { 200: Group, ...errors } } }, async (request) =>
      groupOut(await found(request.params.name)),
    );

    app.post('/groups', { onRequest: write, schema: { tags, summary: 'Create a group (scope users:write)', body: GroupCreate, response: { 201: Group, ...errors } } }, async (request, reply) => {
      const { name, record } = groupFromBody(request.body);
      const after = groupOut(await ctx.store.createGroup(name, record, actorOf(request)));
      await audit(ctx, request, 'group.create', name, { after });
      return reply.code(201).header('location', `/api/v1/groups/${encodeURIComponent(name)}`).send(after);
    });

    app.patch(
      '/groups/:name',
      { onRequest: write, schema: { tags, summary: 'Change a group: fields given replace, null clears (scope users:write)', params: NameParam, body: GroupPatch, response: { 200: Group, ...errors } } },
      async (request) => {
        const { name } = request.params;
        const change = groupChangeFromBody(request.body);
        const before = groupOut(await found(name));
        const after = groupOut(await ctx.store.updateGroup(name, change, actorOf(request)));
        await audit(ctx, request, 'group.update', name, { before, after });
        return after;
      },
    );

    app.delete(
      '/groups/:name',
      { onRequest: write, schema: { tags, summary: 'Delete a group that no user names (scope users:write)', params: NameParam, response: { 204: Type.Null(), ...errors } } },
      async (request, reply) => {
        const { name } = request.params;
        const before = groupOut(await found(name));
        await ctx.store.deleteGroup(name, actorOf(request));
        await audit(ctx, request, 'group.delete', name, { before });
        return reply.code(204).send(null);
      },
    );
  };
}
