import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DUMMY_HASH, hashPassword, parseScryptHash, verifyPassword } from './password';

test('hash then verify: right password passes, wrong one fails', async () => {
  const encoded = await hashPassword('correct horse');
  assert.match(encoded, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.equal(await verifyPassword('correct horse', encoded), true);
  assert.equal(await verifyPassword('correct horsE', encoded), false);
});

test('same password hashes differently each time (random salt)', async () => {
  assert.notEqual(await hashPassword('pw'), await hashPassword('pw'));
});

test('empty password is refused', async () => {
  await assert.rejects(hashPassword(''), /empty/);
});

test('malformed hashes verify false and never throw', async () => {
  const good = await hashPassword('pw');
  const parts = good.split('$');
  const bad = [
    '',
    'pw',
    'scrypt$',
    'bcrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    [...parts.slice(0, 5)].join('$'),
    ['scrypt', '1000', ...parts.slice(2)].join('$'), // N not a power of two
    ['scrypt', String(1 << 30), ...parts.slice(2)].join('$'), // N too large
    [...parts.slice(0, 4), '!!!', parts[5]].join('$'),
    [...parts.slice(0, 5), 'AAAA'].join('$'), // hash too short
  ];
  for (const encoded of bad) {
    assert.equal(await verifyPassword('pw', encoded), false, encoded);
  }
  assert.equal(await verifyPassword(undefined as unknown as string, good), false);
});

test('the dummy hash is well formed and matches nothing', async () => {
  assert.ok(parseScryptHash(DUMMY_HASH));
  assert.equal(await verifyPassword('', DUMMY_HASH), false);
});
