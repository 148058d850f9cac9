import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { banRoutes } from './bans';
import type { ApiContext } from './context';
import { errorHandler } from './errors';
import { groupRoutes } from './groups';
import { ErrorReply, Health } from './schemas';
import { sessionRoutes } from './sessions';
import { userRoutes } from './users';

export const API_BASE = '/api/v1';

export interface ApiServer {
  port: number;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * The admin REST API as a Fastify app: every route under /api/v1 with its request and response schemas, the OpenAPI
 * document generated from them at /api/v1/openapi.json (no token), /api/v1/healthz (no token), the rest behind
 * bearer tokens with scopes.
 */
export async function buildApi(ctx: ApiContext, version = '1'): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 1 << 20,
    // Unknown fields are refused (not silently dropped), types are not coerced, and every bad field is reported.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: false } },
    forceCloseConnections: true,
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setErrorHandler(errorHandler(ctx.log));
  // A DELETE or POST without a body but with a JSON content type (some clients always send one) is no error.
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) =>
    body === '' ? done(null, undefined) : json(request, body as string, done),
  );
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]}` }));
  app.addHook('onResponse', async (request, reply) => {
    // Reads that succeed at debug (dashboards poll); writes and failures at info (writes also have their audit line).
    const level = request.method === 'GET' && reply.statusCode < 400 ? 'debug' : 'info';
    ctx.log[level](
      { event: 'admin-request', method: request.method, url: request.url.split('?')[0], status: reply.statusCode, token: request.token?.name, address: request.ip, ms: Math.round(reply.elapsedTime) },
      'admin API request',
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'FTP cluster admin API',
        version,
        description:
          'Users, groups and SSH keys (through the user store), live sessions on every replica, and address bans. ' +
          'Bearer tokens come from `ftpctl token create --name N --scope …`; each route names the scope it needs. ' +
          'Errors: {statusCode, error, message, fields?}; a bad request answers 400 naming the fields.',
      },
      servers: [{ url: '/' }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'ftpat_… token (ftpctl token create)' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'users', description: 'users and their keys (users:read, users:write)' },
        { name: 'groups', description: 'settings groups give their members (users:read, users:write)' },
        { name: 'sessions', description: 'live sessions, cluster-wide (sessions:read, sessions:write)' },
        { name: 'bans', description: 'addresses banned after failed logins (sessions:read, bans:write)' },
        { name: 'meta', description: 'the API itself (no token)' },
      ],
    },
  });

  await app.register(
    async (v1) => {
      const api = v1.withTypeProvider<TypeBoxTypeProvider>();
      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
      api.get(
        '/healthz',
        { schema: { tags: ['meta'], summary: 'The API answers (no token)', security: [], response: { 200: Health, 500: ErrorReply } } },
        async () => {
          const store = ctx.store.health();
          return { status: 'ok' as const, replica: ctx.replicaId, user_store: { backend: store.backend, up: store.up }, cluster_state: { kind: ctx.cluster.kind, up: ctx.cluster.available() } };
        },
      );
      await api.register(userRoutes(ctx));
      await api.register(groupRoutes(ctx));
      await api.register(sessionRoutes(ctx));
      await api.register(banRoutes(ctx));
    },
    { prefix: API_BASE },
  );
  await app.ready();
  return app;
}

/** Builds the API and listens on host:port (FTP_API_HOST, FTP_API_PORT). */
export async function startApiServer(options: { host: string; port: number; ctx: ApiContext }): Promise<ApiServer> {
  const app = await buildApi(options.ctx);
  await app.listen({ host: options.host, port: options.port });
  return {
    port: (app.server.address() as AddressInfo).port,
    app,
    close: () => app.close(),
  };
}
