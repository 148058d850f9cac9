import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { findKey, fingerprintOf, formatAuthorizedKey, parseAuthorizedKey } from './publicKeys';
import { sshKeygen } from './testKeys';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'identity-keys-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** SSH wire encoding: each part as a uint32-length-prefixed string. */
function wire(...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    parts.map((p) => {
      const b = typeof p === 'string' ? Buffer.from(p) : p;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      return Buffer.concat([len, b]);
    }),
  );
}
const blobOf = (line: string) => Buffer.from(line.split(' ')[1], 'base64');

test('keys made by ssh-keygen parse, with the fingerprint ssh-keygen -lf prints, and format back to the same line', () => {
  const cases = [
    { type: 'ed25519', expect: 'ssh-ed25519' },
    { type: 'ecdsa', bits: 256, expect: 'ecdsa-sha2-nistp256' },
    { type: 'ecdsa', bits: 384, expect: 'ecdsa-sha2-nistp384' },
    { type: 'ecdsa', bits: 521, expect: 'ecdsa-sha2-nistp521' },
    { type: 'rsa', bits: 2048, expect: 'ssh-rsa' },
    { type: 'rsa', bits: 3072, expect: 'ssh-rsa' },
  ];
  for (const c of cases) {
    const made = sshKeygen(dir, c.type, { bits: c.bits, comment: `partner@host ${c.type}` });
    const key = parseAuthorizedKey(made.line);
    assert.equal(key.type, c.expect);
    assert.equal(key.fingerprint, made.fingerprint, `${c.type} ${c.bits}`);
    assert.equal(key.comment, `partner@host ${c.type}`);
    assert.deepEqual(key.data, blobOf(made.line));
    assert.equal(formatAuthorizedKey(key), made.line);
    const bySsh2 = ssh2.utils.parseKey(made.line);
    assert.ok(!(bySsh2 instanceof Error));
    assert.deepEqual(key.data, bySsh2.getPublicSSH(), 'the same blob as ssh2 reads');
  }
});

test("keys made by ssh2's generateKeyPairSync parse too; no comment, CRLF and extra blanks are fine", () => {
  for (const [type, opts] of [['ed25519', {}], ['ecdsa', { bits: 256 }], ['rsa', { bits: 2048 }]] as const) {
    // ssh2 1.17 writes an ed25519 key whose public half starts with a zero byte short (1 in 256): such a pair is its
    // bug, not ours, so draw another.
    let pair = ssh2.utils.generateKeyPairSync(type as 'ed25519', opts as object);
    while (ssh2.utils.parseKey(pair.private) instanceof Error) pair = ssh2.utils.generateKeyPairSync(type as 'ed25519', opts as object);
    const [keyType, b64] = pair.public.split(' ');
    const key = parseAuthorizedKey(`  ${keyType}\t ${b64}  \r\n`);
    assert.equal(key.type, keyType);
    assert.equal(key.comment, undefined);
    assert.equal(formatAuthorizedKey(key), `${keyType} ${b64}`);
    const parsed = ssh2.utils.parseKey(pair.private);
    assert.ok(!(parsed instanceof Error));
    assert.deepEqual(key.data, parsed.getPublicSSH(), 'the blob is what the private key holder offers');
  }
});

test('fingerprintOf is unpadded base64 of sha256', () => {
  assert.equal(fingerprintOf(Buffer.from('abc')), 'SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0');
});

test('refused: obsolete, weak, unsupported types, options, private keys and malformed data, each with a clear reason', () => {
  const ed = sshKeygen(dir, 'ed25519');
  const [, edB64] = ed.line.split(' ');
  const edBlob = blobOf(ed.line);
  const ec256 = sshKeygen(dir, 'ecdsa', { bits: 256 });
  const ecParts = (() => {
    const b = blobOf(ec256.line);
    const point = b.subarray(4 + 19 + 4 + 8 + 4);
    return point;
  })();
  const rsa1024 = sshKeygen(dir, 'rsa', { bits: 1024 });
  // ssh-rsa blob: type, e, n (n starts with a 0 byte: its top bit is set)
  const rsaN = (() => {
    const b = blobOf(sshKeygen(dir, 'rsa', { bits: 2048 }).line);
    const eLength = b.readUInt32BE(11);
    return b.subarray(11 + 4 + eLength + 4);
  })();
  assert.equal(rsaN.length, 257);
  assert.equal(rsaN[0], 0);
  const dss = `ssh-dss ${wire('ssh-dss', Buffer.alloc(129, 1), Buffer.alloc(21, 1), Buffer.alloc(128, 1), Buffer.alloc(128, 1)).toString('base64')} old@box`;
  const sk = `sk-ssh-ed25519@openssh.com ${wire('sk-ssh-ed25519@openssh.com', Buffer.alloc(32, 7), 'ssh:').toString('base64')} fido`;
  const badPoint = Buffer.from(blobOf(ec256.line));
  badPoint[badPoint.length - 1] ^= 1;

  const cases: [string, RegExp][] = [
    ['', /empty/],
    [dss, /ssh-dss \(DSA\) keys are refused/],
    [rsa1024.line, /1024-bit key is too short \(at least 2048/],
    [sk, /security-key \(FIDO\) keys are not supported/],
    [`ssh-ed25519-cert-v01@openssh.com ${edB64}`, /certificates are not supported/],
    [`from="10.0.0.0/8" ${ed.line}`, /options before the key type .* not supported/],
    [`restrict,command="/bin/true" ${ed.line}`, /options before the key type/],
    [`no-pty ${ed.line}`, /options before the key type/],
    [`hello world`, /not an OpenSSH public key line/],
    ['-----BEGIN OPENSSH PRIVATE KEY-----', /private key/],
    ['ssh-ed25519', /key data is missing/],
    ['ssh-ed25519 AAAA$$$', /not base64/],
    [`ssh-ed25519 ${edB64.replace(/=*$/, '')}x`, /not canonical base64|malformed/],
    [`ssh-rsa ${edB64}`, /the key data holds a "ssh-ed25519" key, not "ssh-rsa"/],
    [`ssh-ed25519 ${wire('ssh-ed25519', Buffer.alloc(31)).toString('base64')}`, /malformed key/],
    [`ssh-ed25519 ${Buffer.concat([edBlob, Buffer.from([0])]).toString('base64')}`, /malformed key \(extra bytes after the key\)/],
    [`ecdsa-sha2-nistp256 ${wire('ecdsa-sha2-nistp256', 'nistp384', ecParts).toString('base64')}`, /the curve is "nistp384", not nistp256/],
    [`ecdsa-sha2-nistp256 ${wire('ecdsa-sha2-nistp256', 'nistp256', Buffer.concat([Buffer.from([2]), ecParts.subarray(1, 33)])).toString('base64')}`, /not an uncompressed point/],
    [`ssh-rsa ${wire('ssh-rsa', Buffer.from([0, 1, 0, 1]), rsaN).toString('base64')}`, /bad RSA exponent or modulus encoding/],
    [`ssh-rsa ${wire('ssh-rsa', Buffer.from([1, 0, 0]), rsaN).toString('base64')}`, /exponent must be odd/],
    [`ssh-rsa ${wire('ssh-rsa', Buffer.from([1, 0, 1]), rsaN.subarray(1)).toString('base64')}`, /bad RSA exponent or modulus encoding/],
    [`ssh-ed25519 ${Buffer.from('garbage bytes, no type').toString('base64')}`, /does not start with its type/],
    [`ecdsa-sha2-nistp256 ${badPoint.toString('base64')}`, /not a valid public key/],
    [`ssh-foo ${edB64}`, /unsupported key type "ssh-foo"/],
    [`ssh-ed25519 ${edB64} comment\u0000with NUL`, /control characters/],
    [`ssh-ed25519 ${'A'.repeat(9000)}`, /longer than/],
  ];
  for (const [line, reason] of cases) assert.throws(() => parseAuthorizedKey(line), reason, JSON.stringify(line.slice(0, 60)));
});

test('findKey matches the blob only, whichever key of the list it is', () => {
  const keys = ['ed25519', 'ecdsa', 'rsa'].map((t) => parseAuthorizedKey(sshKeygen(dir, t).line));
  const other = parseAuthorizedKey(sshKeygen(dir, 'ed25519').line);
  for (const key of keys) assert.equal(findKey(keys, Buffer.from(key.data)), key);
  assert.equal(findKey(keys, other.data), undefined);
  assert.equal(findKey(keys, keys[0].data.subarray(0, 20)), undefined);
  assert.equal(findKey([], other.data), undefined);
});
