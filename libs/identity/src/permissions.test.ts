import assert from 'node:assert/strict';
import { test } from 'node:test';
import { can, permString } from './permissions';
import type { User } from './types';

const user: Pick<User, 'permissions'> = {
  permissions: {
    '/': ['list', 'download'],
    '/inbox': ['list', 'upload'],
    '/inbox/archive/': ['list'],
  },
};

test('the longest containing folder wins', () => {
  assert.equal(can(user, '/readme.txt', 'download'), true);
  assert.equal(can(user, '/inbox', 'upload'), true);
  assert.equal(can(user, '/inbox/a/b/c.txt', 'upload'), true);
  assert.equal(can(user, '/inbox/a/b/c.txt', 'download'), false, '/inbox replaces /, it does not add to it');
  assert.equal(can(user, '/inbox/archive/x', 'upload'), false);
  assert.equal(can(user, '/inbox/archive', 'list'), true);
});

test('/inbox does not apply to /inboxes', () => {
  assert.equal(can(user, '/inboxes', 'upload'), false);
  assert.equal(can(user, '/inboxes/f', 'download'), true);
});

test('paths are normalized before matching', () => {
  assert.equal(can(user, '/inbox/', 'upload'), true);
  assert.equal(can(user, 'inbox/x', 'upload'), true);
  assert.equal(can(user, '/inbox/../etc', 'upload'), false);
  assert.equal(can(user, '/inbox//x', 'upload'), true);
});

test('without a "/" rule nothing outside the listed folders is allowed', () => {
  const partial = { permissions: { '/inbox': ['upload' as const] } };
  assert.equal(can(partial, '/x', 'list'), false);
  assert.equal(can(partial, '/', 'list'), false);
  assert.equal(can(partial, '/inbox/x', 'upload'), true);
});

test('permString for files and folders', () => {
  const all: Pick<User, 'permissions'> = {
    permissions: { '/': ['list', 'download', 'upload', 'overwrite', 'delete', 'rename', 'mkdir', 'rmdir'] },
  };
  assert.equal(permString(all, '/f', 'file'), 'adfrw');
  assert.equal(permString(all, '/d', 'dir'), 'cdeflmp');
  assert.equal(permString(user, '/f', 'file'), 'r');
  assert.equal(permString(user, '/d', 'dir'), 'el');
  assert.equal(permString(user, '/inbox', 'dir'), 'cel');
  assert.equal(permString(user, '/inbox/f', 'file'), 'a');
  assert.equal(permString({ permissions: {} }, '/f', 'file'), '');
});
