import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowsMethod, describeAuthMethods, nextMethods, parseAuthMethods } from './authMethods';
import type { AuthMethod } from './types';

const done = (...methods: AuthMethod[]) => new Set(methods);

test('default (no auth_methods): any one of password and public key completes the login', () => {
  const user = {};
  assert.deepEqual(nextMethods(user, done()), { complete: false, remaining: ['publickey', 'password', 'keyboard-interactive'] });
  assert.deepEqual(nextMethods(user, done('password')), { complete: true, remaining: [] });
  assert.deepEqual(nextMethods(user, done('publickey')), { complete: true, remaining: [] });
  assert.deepEqual(nextMethods(user, done('publickey', 'password')), { complete: true, remaining: [] });
  assert.equal(allowsMethod(user, 'password'), true);
  assert.equal(allowsMethod(user, 'publickey'), true);
});

test('two methods: both are needed, in any order, and each success leaves the other (partial success)', () => {
  for (const authMethods of [['publickey', 'password'], ['password', 'publickey']] as AuthMethod[][]) {
    const user = { authMethods };
    assert.deepEqual(nextMethods(user, done()), { complete: false, remaining: ['publickey', 'password', 'keyboard-interactive'] });
    assert.deepEqual(nextMethods(user, done('publickey')), { complete: false, remaining: ['password', 'keyboard-interactive'] });
    assert.deepEqual(nextMethods(user, done('password')), { complete: false, remaining: ['publickey'] });
    assert.deepEqual(nextMethods(user, done('password', 'publickey')), { complete: true, remaining: [] });
  }
});

test('one required method: the other never counts, so it cannot complete a login', () => {
  const keyOnly = { authMethods: ['publickey'] as AuthMethod[] };
  assert.deepEqual(nextMethods(keyOnly, done()), { complete: false, remaining: ['publickey'] });
  assert.deepEqual(nextMethods(keyOnly, done('password')), { complete: false, remaining: ['publickey'] });
  assert.deepEqual(nextMethods(keyOnly, done('publickey')), { complete: true, remaining: [] });
  assert.equal(allowsMethod(keyOnly, 'password'), false);
  assert.equal(allowsMethod(keyOnly, 'publickey'), true);

  const passwordOnly = { authMethods: ['password'] as AuthMethod[] };
  assert.deepEqual(nextMethods(passwordOnly, done('publickey')), { complete: false, remaining: ['password', 'keyboard-interactive'] });
  assert.deepEqual(nextMethods(passwordOnly, done('password')), { complete: true, remaining: [] });
  assert.equal(allowsMethod(passwordOnly, 'publickey'), false);
});

test('FTP can only do passwords: it may let a user in only when the password alone completes the login', () => {
  const ftpOk = (authMethods?: AuthMethod[]) => nextMethods({ authMethods }, done('password')).complete;
  assert.equal(ftpOk(undefined), true);
  assert.equal(ftpOk(['password']), true);
  assert.equal(ftpOk(['publickey']), false);
  assert.equal(ftpOk(['publickey', 'password']), false);
});

test('parseAuthMethods reads a list or a comma-separated string and explains what is wrong', () => {
  assert.deepEqual(parseAuthMethods(['publickey', 'password']), ['publickey', 'password']);
  assert.deepEqual(parseAuthMethods('publickey, password'), ['publickey', 'password']);
  assert.deepEqual(parseAuthMethods('password'), ['password']);
  assert.match(parseAuthMethods([]) as string, /non-empty list/);
  assert.match(parseAuthMethods('') as string, /unknown method ""/);
  assert.match(parseAuthMethods(['keyboard-interactive']) as string, /carries the password: write "password"/);
  assert.match(parseAuthMethods(['password', 'password']) as string, /listed twice/);
  assert.match(parseAuthMethods(['hostbased']) as string, /unknown method "hostbased" \(known: password, publickey\)/);
  assert.match(parseAuthMethods(42) as string, /non-empty list/);
  assert.equal(describeAuthMethods(undefined), 'password|publickey');
  assert.equal(describeAuthMethods(['publickey', 'password']), 'publickey+password');
});
