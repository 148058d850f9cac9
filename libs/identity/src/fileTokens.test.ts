import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createFileTokenStore } from './fileTokens';
import { isUserStoreError } from './store';

const dir = mkdtempSync(join(tmpdir(), 'tokens-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const BY = { name: 'ops', via: 'test' };

test('a token is shown once, kept as its SHA-256 in a 0600 file, and verified with its name and scopes', async () => {
  const file = join(dir, 'a', 'api-tokens.yaml');
  const store = createFileTokenStore({ file });
  assert.deepEqual(await store.listTokens(), [], 'no file: no tokens');
  const { token, info } = await store.createToken({ name: 'deploy-bot', scopes: ['users:read', 'sessions:read', 'users:read'] }, BY);
  assert.match(token, /^ftpat_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(info.scopes, ['users:read', 'sessions:read']);
  assert.equal(info.createdBy, 'ops');
  const text = readFileSync(file, 'utf8');
  assert.ok(!text.includes(token) && !text.includes(token.slice(6)), 'the token itself is nowhere in the file');
  assert.match(text, /sha256: [0-9a-f]{64}/);
  assert.equal(statSync(file).mode & 0o777, 0o600);

  assert.equal(store.verifyToken(token)?.name, 'deploy-bot');
  assert.deepEqual(store.verifyToken(token)?.scopes, ['users:read', 'sessions:read']);
  assert.equal(store.verifyToken(`${token}x`), undefined);
  assert.equal(store.verifyToken('Bearer nonsense'), undefined);
  await assert.rejects(store.createToken({ name: 'deploy-bot', scopes: ['users:read'] }, BY), (err) => isUserStoreError(err, 'conflict'));
});

test('names, scopes and expiry are checked; an expired token no longer verifies', async () => {
  const store = createFileTokenStore({ file: join(dir, 'b.yaml') });
  await assert.rejects(store.createToken({ name: 'bad name', scopes: ['users:read'] }, BY), /token\.name/);
  await assert.rejects(store.createToken({ name: 'x', scopes: [] }, BY), /token\.scopes: expected some of users:read/);
  await assert.rejects(store.createToken({ name: 'x', scopes: ['root'] as never }, BY), /got root/);
  await assert.rejects(store.createToken({ name: 'x', scopes: ['users:read'], expiresAt: 'soon' }, BY), /token\.expires_at/);
  const old = await store.createToken({ name: 'old', scopes: ['bans:write'], expiresAt: '2001-01-01' }, BY);
  assert.equal(store.verifyToken(old.token), undefined);
  const fresh = await store.createToken({ name: 'fresh', scopes: ['bans:write'], expiresAt: '2999-01-01' }, BY);
  assert.equal(store.verifyToken(fresh.token)?.expiresAt, '2999-01-01T00:00:00.000Z');
});

test('another process (ftpctl) creating or revoking a token is seen within the reload check; a broken file keeps the last tokens', async () => {
  const file = join(dir, 'c.yaml');
  const edge = createFileTokenStore({ file, reloadCheckMs: 0 });
  const errors: string[] = [];
  const watching = createFileTokenStore({ file, reloadCheckMs: 0, onReloadError: (err) => errors.push(err.message) });
  const ftpctl = createFileTokenStore({ file });
  const { token } = await ftpctl.createToken({ name: 'ci', scopes: ['sessions:write'] }, BY);
  assert.equal(edge.verifyToken(token)?.name, 'ci');
  assert.equal(watching.verifyToken(token)?.name, 'ci');
  const saved = readFileSync(file, 'utf8');
  writeFileSync(file, 'tokens: [not, a, mapping]\n');
  assert.equal(watching.verifyToken(token)?.name, 'ci', 'a broken file keeps the tokens read before');
  assert.match(errors.join('\n'), /"tokens" must be a mapping/);
  writeFileSync(file, saved);
  await ftpctl.revokeToken('ci', BY);
  assert.equal(edge.verifyToken(token), undefined, 'a revoked token stops working');
  await assert.rejects(ftpctl.revokeToken('ci', BY), (err) => isUserStoreError(err, 'not-found'));
  writeFileSync(join(dir, 'd.yaml'), 'tokens:\n  x: { sha256: abc }\n');
  assert.throws(() => createFileTokenStore({ file: join(dir, 'd.yaml') }), /tokens\.x\.sha256: must be 64 hex digits[\s\S]*tokens\.x\.scopes/);
});
