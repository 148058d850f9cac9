import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isUserStoreError, USER_STORE_ERROR_STATUS } from '@ftp/identity';
import type { Logger } from '@ftp/telemetry';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

/** An error a route throws to answer with `statusCode` and `message` (404 for a missing session, 503 for Redis). */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly fields?: string[],
  ) {
    super(message);
  }
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/permissions/~1inbox/0` → `permissions["/inbox"][0]` */
const fieldOf = (pointer: string) =>
  pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(part) ? (path ? `${path}.${part}` : part) : `${path}[${JSON.stringify(part)}]`), '');

/**
 * Schema errors as one line naming every field at fault, and the fields themselves. A nullable field's failed
 * alternatives ("must be string", "must be null", "must match a schema in anyOf") collapse into the first.
 */
export function describeValidation(errors: AjvError[], context: string): { message: string; fields: string[] } {
  const byField = new Map<string, string>();
  for (const error of errors) {
    let field = fieldOf(error.instancePath);
    let text = error.message ?? error.keyword;
    if (error.keyword === 'required') {
      field = [field, String(error.params.missingProperty)].filter(Boolean).join('.');
      text = 'is required';
    } else if (error.keyword === 'additionalProperties') {
      field = [field, String(error.params.additionalProperty)].filter(Boolean).join('.');
      text = 'is not a known field';
    } else if (error.keyword === 'enum') {
      text = `must be one of ${(error.params.allowedValues as unknown[]).join(', ')}`;
    } else if (error.keyword === 'anyOf' || (error.keyword === 'type' && error.params.type === 'null')) continue;
    if (!byField.has(field)) byField.set(field, text);
  }
  if (byField.size === 0) for (const error of errors) byField.set(fieldOf(error.instancePath), error.message ?? error.keyword);
  const fields = [...byField.keys()];
  const message = [...byField].map(([field, text]) => `${context}${field ? (field.startsWith('[') ? field : `.${field}`) : ''}: ${text}`).join('; ');
  return { message, fields: fields.filter(Boolean) };
}

/** Fields a store's `invalid` message names (`body.home: …`, `user.groups: …`). */
const fieldsIn = (message: string) => [...new Set([...message.matchAll(/\b(?:body|user|group|token)\.([a-z_]+)/g)].map((m) => m[1]))];

/** Every failure as `{statusCode, error, message, fields?}`: schema errors 400, store errors by their code, the rest 500. */
export function errorHandler(log: Logger) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const send = (statusCode: number, message: string, fields?: string[]) =>
      reply.code(statusCode).send({ statusCode, error: REASONS[statusCode] ?? 'Error', message, ...(fields && fields.length > 0 ? { fields } : {}) });
    if (error.validation) {
      const { message, fields } = describeValidation(error.validation as AjvError[], error.validationContext ?? 'request');
      return send(400, message, fields);
    }
    if (isUserStoreError(error)) {
      const status = USER_STORE_ERROR_STATUS[error.code];
      if (status >= 500) log.warn({ err: error.message, code: error.code, route: request.routeOptions.url }, 'admin API: user store unavailable');
      return send(status, error.message, error.code === 'invalid' ? fieldsIn(error.message) : undefined);
    }
    if (error instanceof ApiError) return send(error.statusCode, error.message, error.fields);
    // Fastify's own client errors: a body that is not JSON, too large, a wrong content type.
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return send(error.statusCode, error.message);
    log.error({ err: error, route: request.routeOptions.url }, 'admin API: request failed');
    return send(500, 'internal error (logged)');
  };
}
