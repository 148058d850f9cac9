import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hmacSignature, signedHeaders, verifyHmacSignature, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './hmac';

const SECRET = 'shared-secret';

test('the signature is HMAC-SHA256 over "timestamp.body", hex, with its scheme', () => {
  // A fixed vector (openssl dgst -sha256 -hmac shared-secret <<< '1700000000.{"a":1}' without the newline), so that a
  // receiver in another language can check its implementation against this one.
  assert.equal(hmacSignature(SECRET, 1700000000, '{"a":1}'), 'sha256=46dcf16b2bf0ae1e3497a93b80e02f1016a6f7d969acd0bed37a30172a73d715');
  assert.equal(hmacSignature(SECRET, '1700000000', Buffer.from('{"a":1}')), hmacSignature(SECRET, 1700000000, '{"a":1}'));
  assert.match(hmacSignature(SECRET, 1, 'x'), /^sha256=[0-9a-f]{64}$/);
});

test('signedHeaders signs now; verifyHmacSignature accepts it and refuses tampering, other secrets, replays and garbage', () => {
  const now = 1_700_000_000_000;
  const body = '{"user":"x"}';
  const headers = signedHeaders(SECRET, body, now);
  assert.equal(headers[TIMESTAMP_HEADER], '1700000000');
  const ok = (b: string | Uint8Array, h: string | undefined, opts = { now }) => verifyHmacSignature(SECRET, headers[TIMESTAMP_HEADER], b, h, opts);
  assert.equal(ok(body, headers[SIGNATURE_HEADER]), true);
  assert.equal(ok(Buffer.from(body), headers[SIGNATURE_HEADER]), true);
  assert.equal(ok(body.replace('x', 'y'), headers[SIGNATURE_HEADER]), false);
  assert.equal(verifyHmacSignature('other', headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], { now }), false);
  assert.equal(ok(body, headers[SIGNATURE_HEADER], { now: now + 301_000 }), false, 'replayed after the tolerance');
  assert.equal(ok(body, `sha256=${'0'.repeat(64)}, ${headers[SIGNATURE_HEADER]}`), true, 'one of several matches');
  assert.equal(ok(body, 'garbage'), false);
  assert.equal(ok(body, undefined), false);
  assert.equal(verifyHmacSignature(SECRET, 'soon', body, headers[SIGNATURE_HEADER], { now }), false);
  assert.equal(verifyHmacSignature(SECRET, undefined, body, headers[SIGNATURE_HEADER], { now }), false);
});
