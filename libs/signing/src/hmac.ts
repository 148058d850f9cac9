import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries the signature: `sha256=<hex>`, possibly several comma-separated. */
export const SIGNATURE_HEADER = 'x-ftp-signature';
/** The header that carries the signing time, epoch seconds. */
export const TIMESTAMP_HEADER = 'x-ftp-timestamp';

const DEFAULT_TOLERANCE_SECONDS = 300;

/** The signature header value: `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. */
export function hmacSignature(secret: string, timestamp: string | number, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

/** Both headers of a request signed now (or at `now`, ms). */
export function signedHeaders(secret: string, body: string | Uint8Array, now = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: hmacSignature(secret, timestamp, body) };
}

/**
 * For receivers: true when `header` (x-ftp-signature) signs `timestamp` (x-ftp-timestamp) and the raw `body` with
 * `secret`, and the timestamp is within `toleranceSeconds` (default 300) of now, so a captured request cannot be
 * replayed later. The header may list several signatures, comma-separated; one match is enough. Verify the body
 * bytes as received, before any JSON parsing.
 */
export function verifyHmacSignature(
  secret: string,
  timestamp: string | number | null | undefined,
  body: string | Uint8Array,
  header: string | null | undefined,
  options: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  const ts = String(timestamp ?? '');
  if (!header || !/^\d{1,15}$/.test(ts)) return false;
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(now - Number(ts)) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(hmacSignature(secret, ts, body));
  return header.split(',').some((candidate) => {
    const given = Buffer.from(candidate.trim());
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
