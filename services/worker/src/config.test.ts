import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadWorkerConfig, parsePipelinesFile } from './config';

const file = (yaml: string) => {
  const path = join(mkdtempSync(join(tmpdir(), 'worker-cfg-')), 'pipelines.yaml');
  writeFileSync(path, yaml);
  return path;
};

test('REDIS_URL is required; without a pipelines file every upload gets a checksum', () => {
  assert.throws(() => loadWorkerConfig({}), /REDIS_URL: required/);
  const config = loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:6379', WORKER_PIPELINES: undefined });
  assert.deepEqual(config.pipelines, [{ name: 'default', match: {}, steps: [{ kind: 'checksum', options: {} }] }]);
  assert.throws(() => loadWorkerConfig({ REDIS_URL: 'redis://x', WORKER_PIPELINES: '/no/such/file.yaml' }), /does not exist/);
  assert.throws(() => loadWorkerConfig({ REDIS_URL: 'redis://x', WORKER_CONCURRENCY: '0' }), /WORKER_CONCURRENCY/);
});

test('a pipelines file is read with its rules and steps in order', () => {
  const parsed = parsePipelinesFile(
    file(`clamd: { host: 127.0.0.1, port: 3310 }
pipelines:
  - name: inbox
    match: { users: [alice], paths: ['/inbox/**'] }
    steps:
      - checksum: { algorithms: [sha256, md5] }
      - scan: {}
      - move: { to: 'archive/{yyyy}/{name}' }
      - webhook: { url: 'http://127.0.0.1/hook', secret_env: HOOK }
`),
  );
  assert.deepEqual(parsed.clamd, { host: '127.0.0.1', port: 3310 });
  assert.deepEqual(
    parsed.pipelines[0].steps.map((s) => s.kind),
    ['checksum', 'scan', 'move', 'webhook'],
  );
  assert.deepEqual(parsed.pipelines[0].match, { users: ['alice'], paths: ['/inbox/**'] });
});

test('mistakes in the pipelines file are named by where they are', () => {
  assert.throws(() => parsePipelinesFile(file('pipelines: []\n')), /pipelines: expected a non-empty list/);
  assert.throws(() => parsePipelinesFile(file('pipeline: []\n')), /pipeline: unknown key/);
  assert.throws(() => parsePipelinesFile(file('pipelines:\n  - name: a\n    steps:\n      - zip: {}\n')), /pipelines\[0\]\.steps\[0\]: unknown step "zip"/);
  assert.throws(() => parsePipelinesFile(file('pipelines:\n  - name: a\n    steps:\n      - scan: {}\n')), /needs `clamd/);
  assert.throws(() => parsePipelinesFile(file('pipelines:\n  - name: a\n    match: { user: [x] }\n    steps:\n      - checksum: {}\n')), /match\.user: unknown key/);
});
