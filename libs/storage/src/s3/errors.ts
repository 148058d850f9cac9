import { storageError } from '../errors';
import { StorageError, type StorageErrorCode } from '../types';

/**
 * SDK failures → StorageError. Messages are written here, never copied from the SDK: those name the bucket and the
 * key (the user's home prefix), and a StorageError's message may reach the client. The SDK's error stays as `cause`
 * for the logs.
 */
const BY_NAME: Record<string, [StorageErrorCode, string?]> = {
  NoSuchKey: ['not-found'],
  NotFound: ['not-found'],
  NoSuchUpload: ['not-found', 'the interrupted upload is gone'],
  PreconditionFailed: ['exists'],
  AccessDenied: ['denied'],
  // The store does not take the server's credentials: not the client's doing, and it passes (FTP 451, not 550). The
  // health watch (health.ts) turns readiness false meanwhile.
  InvalidAccessKeyId: ['io', 'object storage refused the server\'s credentials'],
  SignatureDoesNotMatch: ['io', 'object storage refused the server\'s credentials'],
  ExpiredToken: ['io', 'object storage refused the server\'s credentials'],
  TokenRefreshRequired: ['io', 'object storage refused the server\'s credentials'],
  CredentialsProviderError: ['io', 'object storage refused the server\'s credentials'],
  QuotaExceeded: ['quota'],
  EntityTooLarge: ['no-space', 'file too large for object storage'],
  InvalidRange: ['invalid-offset'],
  NoSuchBucket: ['io', 'object storage bucket missing'],
  SlowDown: ['io', 'object storage busy, try again later'],
  ServiceUnavailable: ['io', 'object storage busy, try again later'],
  TimeoutError: ['io', 'object storage timed out'],
  RequestTimeout: ['io', 'object storage timed out'],
};

const NETWORK: Record<string, string> = {
  ECONNREFUSED: 'object storage unreachable',
  ECONNRESET: 'object storage connection lost',
  EPIPE: 'object storage connection lost',
  ENOTFOUND: 'object storage unreachable',
  EAI_AGAIN: 'object storage unreachable',
  EHOSTUNREACH: 'object storage unreachable',
  ETIMEDOUT: 'object storage timed out',
  ECONNABORTED: 'object storage connection lost',
};

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Any failure of an S3 call (or of a response body stream) as a StorageError with a client-safe message. */
export function s3Error(err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const e = (err ?? {}) as SdkError;
  const named = e.name !== undefined ? BY_NAME[e.name] : undefined;
  if (named) return withMessage(named[0], named[1], err);
  if (e.code !== undefined && NETWORK[e.code]) return new StorageError('io', NETWORK[e.code], err);
  const status = e.$metadata?.httpStatusCode;
  if (status === 404) return storageError('not-found', err);
  if (status === 412) return storageError('exists', err);
  if (status === 403) return storageError('denied', err);
  if (status === 416) return storageError('invalid-offset', err);
  if (status === 503 || status === 429) return new StorageError('io', 'object storage busy, try again later', err);
  if (status !== undefined && status >= 500) return new StorageError('io', 'object storage failed', err);
  return new StorageError('io', 'object storage request failed', err);
}

function withMessage(code: StorageErrorCode, message: string | undefined, cause: unknown): StorageError {
  return message === undefined ? storageError(code, cause) : new StorageError(code, message, cause);
}

/** True when `err` says the object (or upload) is not there. */
export function isNotFound(err: unknown): boolean {
  return s3Error(err).code === 'not-found';
}

/** Await `op`, turning "not there" into undefined; other failures become StorageErrors. */
export async function ifPresent<T>(op: Promise<T>): Promise<T | undefined> {
  try {
    return await op;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw s3Error(err);
  }
}
