import { createHash, createPublicKey, timingSafeEqual, type JsonWebKey } from 'node:crypto';
import type { PublicKey } from './types';

/** Key types a user may register. The RSA key type is still 'ssh-rsa'; refusing SHA-1 signatures is the transport's job. */
export const PUBLIC_KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'] as const;
export const MIN_RSA_BITS = 2048;
// OpenSSH's own ceiling (SSHBUF_MAX_BIGNUM); bigger keys only make every verification slower.
const MAX_RSA_BITS = 16384;
// A 16384-bit RSA key is ~2.8 kB of base64; anything far longer is not a key.
const MAX_LINE_LENGTH = 8192;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// ECDSA: the curve name inside the blob, the JWK curve and the size of one coordinate.
const CURVES: Record<string, { name: string; crv: string; size: number }> = {
  'ecdsa-sha2-nistp256': { name: 'nistp256', crv: 'P-256', size: 32 },
  'ecdsa-sha2-nistp384': { name: 'nistp384', crv: 'P-384', size: 48 },
  'ecdsa-sha2-nistp521': { name: 'nistp521', crv: 'P-521', size: 66 },
};
const LOOKS_LIKE_TYPE = /^(?:ssh-|ecdsa-|sk-)[A-Za-z0-9@.+-]+$/;

/** `ssh-keygen -lf`'s fingerprint of a key blob: 'SHA256:' + unpadded base64 of its sha256. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key as one authorized_keys line, `type base64 [comment]`; the inverse of parseAuthorizedKey. */
export function formatAuthorizedKey(key: Pick<PublicKey, 'type' | 'data' | 'comment'>): string {
  return `${key.type} ${key.data.toString('base64')}${key.comment ? ` ${key.comment}` : ''}`;
}

function refuseType(type: string): string | undefined {
  if (type === 'ssh-dss') return 'ssh-dss (DSA) keys are refused: DSA is obsolete (OpenSSH disabled it); use ssh-ed25519';
  if (type.includes('-cert-v0')) return `"${type}": certificates are not supported; give the plain public key`;
  if (type.startsWith('sk-')) return `"${type}": security-key (FIDO) keys are not supported by the SSH transport; use ssh-ed25519`;
  if (!(PUBLIC_KEY_TYPES as readonly string[]).includes(type))
    return `unsupported key type "${type}" (accepted: ${PUBLIC_KEY_TYPES.join(', ')})`;
  return undefined;
}

/**
 * Parses one OpenSSH authorized_keys line, `type base64 [comment]`, into a PublicKey; throws an Error saying what is
 * wrong. Options before the type (`from="…"`, `command="…"`, `restrict`, …) are refused rather than ignored: a key
 * that silently dropped its `from=` would let in more than its owner wrote (use the user's `allow_from`). Accepted:
 * ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa of at least 2048 bits; refused: ssh-dss, certificates, sk-*.
 * The key data must be canonical (what ssh-keygen writes), so formatAuthorizedKey gives the line back. Decoded here
 * with node:crypto rather than ssh2's parseKey: that one does not check the curve name or trailing bytes, and ssh2
 * `require`s native .node bindings that esbuild cannot bundle, which every process reading the users file would inherit.
 */
export function parseAuthorizedKey(line: string): PublicKey {
  const text = line.trim();
  if (text === '') throw new Error('empty key line');
  if (text.length > MAX_LINE_LENGTH) throw new Error(`key line longer than ${MAX_LINE_LENGTH} characters`);
  if (/PRIVATE KEY/.test(text)) throw new Error('this is a private key: give the public one (the .pub file), and keep the private key secret');
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text)) throw new Error('key line contains control characters');
  const match = /^(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(.*))?$/.exec(text);
  const [, type, encoded, rest] = match ?? [];
  if (!LOOKS_LIKE_TYPE.test(type)) {
    if (text.split(/[ \t]+/).some((token) => LOOKS_LIKE_TYPE.test(token)))
      throw new Error(
        'authorized_keys options before the key type (from="…", command="…", restrict, …) are not supported: ' +
          'give "type base64 [comment]" and restrict addresses with allow_from',
      );
    throw new Error(`not an OpenSSH public key line ("type base64 [comment]"): unknown key type "${type.slice(0, 24)}"`);
  }
  const refused = refuseType(type);
  if (refused) throw new Error(refused);
  if (!encoded) throw new Error(`${type}: the base64 key data is missing`);
  if (!BASE64.test(encoded)) throw new Error(`${type}: the key data is not base64`);
  const data = Buffer.from(encoded, 'base64');
  if (data.toString('base64') !== encoded) throw new Error(`${type}: the key data is not canonical base64`);

  const inner = innerType(data);
  if (inner !== type)
    throw new Error(inner === undefined ? `${type}: the key data does not start with its type` : `the key data holds a "${inner}" key, not "${type}"`);
  const jwk = decodeBlob(type, data);
  if (typeof jwk === 'string') throw new Error(`${type}: malformed key (${jwk})`);
  let details: { modulusLength?: number };
  try {
    details = createPublicKey({ key: jwk, format: 'jwk' }).asymmetricKeyDetails ?? {};
  } catch {
    throw new Error(`${type}: not a valid public key (bad point or numbers)`);
  }
  if (type === 'ssh-rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw new Error(`ssh-rsa: ${bits}-bit key is too short (at least ${MIN_RSA_BITS} bits; better ssh-ed25519)`);
    if (bits > MAX_RSA_BITS) throw new Error(`ssh-rsa: ${bits}-bit key is too long (at most ${MAX_RSA_BITS} bits)`);
  }
  const key: PublicKey = { type, data, fingerprint: fingerprintOf(data) };
  const comment = rest?.trim();
  if (comment) key.comment = comment;
  return key;
}

/** Reads SSH wire strings (uint32 length + bytes) off a blob. */
function wireReader(blob: Buffer) {
  let pos = 0;
  return {
    next(): Buffer | undefined {
      if (blob.length - pos < 4) return undefined;
      const length = blob.readUInt32BE(pos);
      if (blob.length - pos - 4 < length) return undefined;
      pos += 4 + length;
      return blob.subarray(pos - length, pos);
    },
    atEnd: () => pos === blob.length,
  };
}

// An mpint (RFC 4251 §5) that is positive and minimally encoded, as ssh-keygen writes it; its magnitude.
function positiveMpint(value: Buffer | undefined): Buffer | undefined {
  if (!value || value.length === 0 || value[0] & 0x80) return undefined;
  if (value[0] === 0 && (value.length === 1 || !(value[1] & 0x80))) return undefined;
  return value[0] === 0 ? value.subarray(1) : value;
}

/**
 * The key of an SSH blob (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4) as a JWK for node:crypto, or what is wrong with
 * it. Everything must be exactly as OpenSSH encodes it (minimal integers, uncompressed points, the curve the type
 * names, nothing after the last field), so that the bytes stored are the bytes a client offers.
 */
function decodeBlob(type: string, blob: Buffer): JsonWebKey | string {
  const read = wireReader(blob);
  read.next(); // the type, checked by the caller
  let jwk: JsonWebKey;
  if (type === 'ssh-ed25519') {
    const pk = read.next();
    if (pk?.length !== 32) return 'the Ed25519 key must be 32 bytes';
    jwk = { kty: 'OKP', crv: 'Ed25519', x: pk.toString('base64url') };
  } else if (type === 'ssh-rsa') {
    const e = positiveMpint(read.next());
    const n = positiveMpint(read.next());
    if (!e || !n) return 'bad RSA exponent or modulus encoding';
    if (!(e[e.length - 1] & 1) || (e.length === 1 && e[0] === 1)) return 'the RSA exponent must be odd and at least 3';
    jwk = { kty: 'RSA', e: e.toString('base64url'), n: n.toString('base64url') };
  } else {
    const curve = CURVES[type];
    const name = read.next()?.toString('latin1');
    if (name !== curve.name) return name && /^[\x21-\x7e]{1,32}$/.test(name) ? `the curve is "${name}", not ${curve.name}` : `the curve is not ${curve.name}`;
    const q = read.next();
    if (q?.length !== 1 + 2 * curve.size || q[0] !== 0x04) return 'the point is not an uncompressed point of the curve';
    const x = q.subarray(1, 1 + curve.size).toString('base64url');
    jwk = { kty: 'EC', crv: curve.crv, x, y: q.subarray(1 + curve.size).toString('base64url') };
  }
  return read.atEnd() ? jwk : 'extra bytes after the key';
}

// The type string the blob starts with, when it has a printable one.
function innerType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || blob.length < 4 + length) return undefined;
  const name = blob.toString('latin1', 4, 4 + length);
  return /^[\x21-\x7e]+$/.test(name) ? name : undefined;
}

/**
 * The key among `keys` whose blob equals `offered`, compared in constant time per key and without stopping at the
 * first match, so the answer's timing does not say which key (or whether any) matched.
 */
export function findKey(keys: readonly PublicKey[], offered: Buffer): PublicKey | undefined {
  let found: PublicKey | undefined;
  for (const key of keys) {
    const same = key.data.length === offered.length && timingSafeEqual(key.data, offered);
    if (same && !found) found = key;
  }
  return found;
}

/** What an unknown user's offered key is compared with, so that the check costs what a known user's does. */
export function dummyKeys(offered: Buffer): PublicKey[] {
  return [{ type: 'dummy', data: Buffer.alloc(offered.length), fingerprint: '' }];
}
