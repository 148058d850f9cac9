import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { resolveHome, resolveLimits, UserStoreError, type UserView } from '@ftp/identity';
import { requireScope } from './auth';
import { actorOf, audit, type ApiContext } from './context';
import { effectiveLimitsOut, keyOut, keysFromBody, locksOut, userChangeFromBody, userFromBody, userOut } from './documents';
import { ApiError } from './errors';
import { ErrorReply, KeyParam, NameParam, Password, PublicKey, PublicKeys, ScannedUsage, SessionEnding, User, UserCreate, UserDetail, UserPatch } from './schemas';
import { endUserSessions } from './sessions';

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 409: ErrorReply, 429: ErrorReply, 501: ErrorReply, 503: ErrorReply };
const tags = ['users'];

/**
 * The user's storage usage and today's bytes from the cluster state: null when its home was never scanned, undefined
 * when the cluster state does not answer (Redis away: the user is still shown).
 */
async function usageOf(ctx: ApiContext, name: string): Promise<UserDetail['usage']> {
  try {
    const [stored, today] = await Promise.all([ctx.cluster.usage.get(name), ctx.cluster.budgets.today(name)]);
    if (!stored) return null;
    return { bytes: stored.bytes, files: stored.files, today_upload_bytes: today.upload, today_download_bytes: today.download };
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message, user: name }, 'admin API: usage not read (cluster state unavailable)');
    return undefined;
  }
}

/** The user, its limits in force (its own, its groups', the server's defaults) and its usage. */
async function userDetail(ctx: ApiContext, view: UserView): Promise<UserDetail> {
  const groups = await Promise.all(view.groups.map((g) => ctx.store.getGroup(g)));
  const limits = resolveLimits([view.limits, ...groups.map((g) => g?.limits)], ctx.defaultLimits);
  const usage = await usageOf(ctx, view.name);
  return { ...userOut(view), effective_limits: effectiveLimitsOut(limits), ...(usage === undefined ? {} : { usage }) };
}

/**
 * Users: CRUD through the user store (PostgreSQL takes writes; the users file and the identity hook answer 409 with
 * their reason), password, public keys, enable/disable and expiry (PATCH). A user disabled, expired or deleted here
 * has its live sessions ended on every replica at once.
 */
export function userRoutes(ctx: ApiContext) {
  return async (api: FastifyInstance) => {
    const app = api.withTypeProvider<TypeBoxTypeProvider>();
    const read = requireScope(ctx, 'users:read');
    const write = requireScope(ctx, 'users:write');
    const found = async (name: string) => {
      const view = await ctx.store.getUser(name);
      if (!view) throw new UserStoreError('not-found', `user "${name}" does not exist`);
      return view;
    };

    app.get('/users', { onRequest: read, schema: { tags, summary: 'Every user (scope users:read)', response: { 200: Type.Object({ items: Type.Array(User) }), ...errors } } }, async () => ({
      items: (await ctx.store.listUsers()).map(userOut),
    }));

    app.get(
      '/users/:name',
      {
        onRequest: read,
        schema: {
          tags,
          summary: 'One user, with its limits in force and its usage (scope users:read)',
          params: NameParam,
          response: { 200: UserDetail, ...errors },
        },
      },
      async (request) => userDetail(ctx, await found(request.params.name)),
    );

    app.post(
      '/users/:name/quota-scan',
      {
        onRequest: write,
        schema: {
          tags,
          summary: "Recount the user's stored bytes and files from storage (scope users:write)",
          description:
            'Walks the home (partial uploads and symbolic links not counted) and replaces the usage the quotas count in the cluster state: after files were changed outside the server, or to check it.',
          params: NameParam,
          response: { 200: ScannedUsage, ...errors },
        },
      },
      async (request) => {
        const view = await found(request.params.name);
        const usage = await ctx.storageAt(resolveHome(ctx.dataRoot, view.home)).usage();
        try {
          await ctx.cluster.usage.set(view.name, usage);
        } catch (err) {
          throw new ApiError(503, `the usage was not recorded (cluster state: ${(err as Error).message})`);
        }
        await audit(ctx, request, 'user.quota-scan', view.name, { after: usage });
        return usage;
      },
    );

    app.post(
      '/users',
      { onRequest: write, schema: { tags, summary: 'Create a user (scope users:write)', body: UserCreate, response: { 201: User, ...errors } } },
      async (request, reply) => {
        const { name, record } = await userFromBody(request.body);
        const view = await ctx.store.createUser(name, record, actorOf(request));
        const after = userOut(view);
        await audit(ctx, request, 'user.create', name, { after });
        return reply.code(201).header('location', `/api/v1/users/${encodeURIComponent(name)}`).send(after);
      },
    );

    app.patch(
      '/users/:name',
      {
        onRequest: write,
        schema: {
          tags,
          summary: 'Change a user: fields given replace, null clears (scope users:write)',
          description: 'disabled: true, or an expires_at in the past, also ends the user\'s sessions on every replica.',
          params: NameParam,
          body: UserPatch,
          response: { 200: User, ...errors },
        },
      },
      async (request) => {
        const { name } = request.params;
        const change = await userChangeFromBody(name, request.body);
        const before = userOut(await found(name));
        const after = userOut(await ctx.store.updateUser(name, change, actorOf(request)));
        await audit(ctx, request, 'user.update', name, { before, after: change.password ? { ...after, password: '(changed)' } : after });
        if (locksOut(change)) await endUserSessions(ctx, request, name, change.disabled ? 'user disabled' : 'user expired');
        return after;
      },
    );

    app.put(
      '/users/:name/password',
      { onRequest: write, schema: { tags, summary: 'Set the password (scope users:write)', params: NameParam, body: Password, response: { 204: Type.Null(), ...errors } } },
      async (request, reply) => {
        const { name } = request.params;
        const change = await userChangeFromBody(name, { password: request.body.password });
        await ctx.store.updateUser(name, change, actorOf(request));
        await audit(ctx, request, 'user.password', name, { after: { password: '(changed)' } });
        return reply.code(204).send(null);
      },
    );

    app.delete(
      '/users/:name',
      { onRequest: write, schema: { tags, summary: 'Delete a user and end its sessions (scope users:write)', params: NameParam, response: { 204: Type.Null(), ...errors } } },
      async (request, reply) => {
        const { name } = request.params;
        const before = userOut(await found(name));
        await ctx.store.deleteUser(name, actorOf(request));
        await audit(ctx, request, 'user.delete', name, { before });
        await endUserSessions(ctx, request, name, 'user deleted');
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/users/:name/keys',
      { onRequest: read, schema: { tags, summary: "The user's SSH public keys (scope users:read)", params: NameParam, response: { 200: Type.Object({ items: Type.Array(PublicKey) }), ...errors } } },
      async (request) => {
        const view = await found(request.params.name);
        return { items: view.publicKeys.map(keyOut) };
      },
    );

    app.post(
      '/users/:name/keys',
      { onRequest: write, schema: { tags, summary: 'Add SSH public keys (scope users:write)', params: NameParam, body: PublicKeys, response: { 201: User, ...errors } } },
      async (request, reply) => {
        const { name } = request.params;
        const keys = keysFromBody(request.body.public_keys);
        const after = userOut(await ctx.store.addPublicKeys(name, keys, actorOf(request)));
        await audit(ctx, request, 'user.add-keys', name, { after: { public_keys: keys.map((k) => keyOut(k).line) } });
        return reply.code(201).send(after);
      },
    );

    app.delete(
      '/users/:name/keys/:fingerprint',
      { onRequest: write, schema: { tags, summary: 'Remove the SSH key with this fingerprint (scope users:write)', params: KeyParam, response: { 200: User, ...errors } } },
      async (request) => {
        const { name } = request.params;
        const fingerprint = request.params.fingerprint.startsWith('SHA256:') ? request.params.fingerprint : `SHA256:${request.params.fingerprint}`;
        const after = userOut(await ctx.store.removePublicKey(name, fingerprint, actorOf(request)));
        await audit(ctx, request, 'user.remove-key', name, { before: { fingerprint } });
        return after;
      },
    );

    app.delete(
      '/users/:name/sessions',
      {
        onRequest: requireScope(ctx, 'sessions:write'),
        schema: { tags: ['sessions'], summary: "End every session of the user, on every replica (scope sessions:write)", params: NameParam, response: { 202: SessionEnding, ...errors } },
      },
      async (request, reply) => reply.code(202).send(await endUserSessions(ctx, request, request.params.name, 'ended by an administrator')),
    );
  };
}
