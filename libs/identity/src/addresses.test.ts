import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressAllowed, checkAddressRule } from './addresses';

test('an empty list allows everyone', () => {
  assert.equal(addressAllowed('203.0.113.9', []), true);
  assert.equal(addressAllowed('2001:db8::1', []), true);
});

test('IPv4 addresses and CIDRs', () => {
  const list = ['127.0.0.1', '10.0.0.0/8'];
  assert.equal(addressAllowed('127.0.0.1', list), true);
  assert.equal(addressAllowed('127.0.0.2', list), false);
  assert.equal(addressAllowed('10.200.3.4', list), true);
  assert.equal(addressAllowed('11.0.0.1', list), false);
});

test('IPv6 addresses and CIDRs', () => {
  const list = ['::1', '2001:db8::/32'];
  assert.equal(addressAllowed('::1', list), true);
  assert.equal(addressAllowed('2001:db8:ffff::7', list), true);
  assert.equal(addressAllowed('2001:db9::7', list), false);
  assert.equal(addressAllowed('fe80::1%eth0', ['fe80::/10']), true);
});

test('IPv4-mapped IPv6 clients count as IPv4', () => {
  assert.equal(addressAllowed('::ffff:10.1.2.3', ['10.0.0.0/8']), true);
  assert.equal(addressAllowed('::FFFF:127.0.0.1', ['127.0.0.1']), true);
  assert.equal(addressAllowed('::ffff:192.168.1.1', ['10.0.0.0/8']), false);
  assert.equal(addressAllowed('10.1.2.3', ['::ffff:10.0.0.0/104']), true);
});

test('garbage client addresses are refused when a list is set', () => {
  assert.equal(addressAllowed('', ['10.0.0.0/8']), false);
  assert.equal(addressAllowed('not-an-ip', ['10.0.0.0/8']), false);
});

test('rule validation', () => {
  for (const ok of ['1.2.3.4', '10.0.0.0/8', '::1', '2001:db8::/32', '0.0.0.0/0']) assert.equal(checkAddressRule(ok), undefined, ok);
  for (const bad of ['example.com', '10.0.0.0/33', '::/129', '1.2.3.4/8/1', '10.0.0.0/x', '']) assert.ok(checkAddressRule(bad), bad);
});
