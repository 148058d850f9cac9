import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UploadEvent } from '@ftp/upload-events';
import { globToRegExp, matches } from './rules';

const event = (over: Partial<UploadEvent>): UploadEvent => ({
  uploadId: 'u1',
  user: 'alice',
  groups: ['partners'],
  path: '/inbox/2026/report.csv',
  storageKey: 'alice/inbox/2026/report.csv',
  size: 1,
  clientAddress: '10.0.0.1',
  protocol: 'ftp',
  startedAt: 0,
  completedAt: 0,
  replicaId: 'r1',
  ...over,
});

test('path globs: * stays in one folder, ** crosses folders, ? is one character', () => {
  assert.equal(globToRegExp('/inbox/*.csv').test('/inbox/a.csv'), true);
  assert.equal(globToRegExp('/inbox/*.csv').test('/inbox/2026/a.csv'), false);
  assert.equal(globToRegExp('/inbox/**').test('/inbox/2026/a.csv'), true);
  assert.equal(globToRegExp('/inbox/**/*.csv').test('/inbox/a.csv'), true);
  assert.equal(globToRegExp('/inbox/**/*.csv').test('/inbox/x/y/a.csv'), true);
  assert.equal(globToRegExp('/a?c').test('/abc'), true);
  assert.equal(globToRegExp('/a?c').test('/a/c'), false);
  assert.equal(globToRegExp('/file.(1)+[x]').test('/file.(1)+[x]'), true, 'regex characters are literal');
});

test('a rule matches when every given criterion holds', () => {
  assert.equal(matches({}, event({})), true);
  assert.equal(matches({ users: ['bob'] }, event({})), false);
  assert.equal(matches({ users: ['alice'], groups: ['partners'], paths: ['/inbox/**'] }, event({})), true);
  assert.equal(matches({ groups: ['ops'] }, event({})), false);
  assert.equal(matches({ paths: ['/outbox/**', '/inbox/**/*.csv'] }, event({})), true);
  assert.equal(matches({ paths: ['/inbox/*.csv'] }, event({})), false);
});
