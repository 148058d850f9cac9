import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPasswordCache } from './passwordCache';

test('matches only the same user, hash and password, until it expires', () => {
  let now = 0;
  const cache = createPasswordCache({ ttlMs: 1000, now: () => now });
  cache.remember('alice', 'h1', 'pw');
  assert.equal(cache.matches('alice', 'h1', 'pw'), true);
  assert.equal(cache.matches('alice', 'h1', 'other'), false);
  assert.equal(cache.matches('alice', 'h2', 'pw'), false, 'changed stored hash');
  assert.equal(cache.matches('bob', 'h1', 'pw'), false);
  now = 1000;
  assert.equal(cache.matches('alice', 'h1', 'pw'), false);
  assert.equal(cache.size(), 0);
});

test('evicts the oldest entry beyond maxEntries', () => {
  const cache = createPasswordCache({ maxEntries: 2 });
  cache.remember('a', 'h', 'p');
  cache.remember('b', 'h', 'p');
  cache.remember('c', 'h', 'p');
  assert.equal(cache.size(), 2);
  assert.equal(cache.matches('a', 'h', 'p'), false);
  assert.equal(cache.matches('c', 'h', 'p'), true);
});
