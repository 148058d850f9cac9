import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadWorkerConfig, parsePipelinesFile, WorkerConfigError } from './config';

const file = (text: string, name = 'pipelines.yaml') => {
  const path = join(mkdtempSync(join(tmpdir(), 'worker-cfg-')), name);
  writeFileSync(path, text);
  return path;
};

const REDIS = { REDIS_URL: 'redis://127.0.0.1:6379' };
const configError = (pattern: RegExp) => (err: unknown) => err instanceof WorkerConfigError && pattern.test(err.message);

test('REDIS_URL is required; without a pipelines file every upload gets a checksum', () => {
  assert.throws(() => loadWorkerConfig({}, []), configError(/REDIS_URL: required/));
  const config = loadWorkerConfig({ ...REDIS, WORKER_PIPELINES: undefined }, []);
  assert.deepEqual(config.pipelineSpecs, [{ name: 'default', match: {}, steps: [{ kind: 'checksum', options: {} }] }]);
  assert.equal(config.clamd, undefined);
  assert.throws(() => loadWorkerConfig({ ...REDIS, WORKER_PIPELINES: '/no/such/file.yaml' }, []), configError(/WORKER_PIPELINES: .*does not exist/));
});

test("the worker's own settings: defaults, and WORKER_* from the environment, checked", () => {
  assert.deepEqual(loadWorkerConfig(REDIS, []).worker, {
    concurrency: 16,
    lockMs: 30_000,
    adminHost: '127.0.0.1',
    adminPort: 9091,
    logLevel: 'info',
    pipelines: './pipelines.yaml',
  });
  const pipelines = file('pipelines:\n  - name: all\n    steps:\n      - checksum: {}\n');
  const env = {
    ...REDIS,
    WORKER_CONCURRENCY: '4',
    WORKER_LOCK_MS: '5000',
    WORKER_ADMIN_HOST: '0.0.0.0',
    WORKER_ADMIN_PORT: '0',
    WORKER_LOG_LEVEL: 'debug',
    WORKER_PIPELINES: pipelines,
  };
  assert.deepEqual(loadWorkerConfig(env, []).worker, { concurrency: 4, lockMs: 5000, adminHost: '0.0.0.0', adminPort: 0, logLevel: 'debug', pipelines });
  assert.throws(() => loadWorkerConfig({ ...REDIS, WORKER_CONCURRENCY: '0' }, []), configError(/WORKER_CONCURRENCY/));
  assert.throws(() => loadWorkerConfig({ ...REDIS, WORKER_LOCK_MS: '10' }, []), configError(/WORKER_LOCK_MS/));
  assert.throws(() => loadWorkerConfig({ ...REDIS, WORKER_ADMIN_PORT: '70000' }, []), configError(/WORKER_ADMIN_PORT/));
  assert.throws(() => loadWorkerConfig({ ...REDIS, WORKER_LOG_LEVEL: 'loud' }, []), configError(/WORKER_LOG_LEVEL/));
});

test("the storage, data root and Redis prefix are the edge's settings, read by the same names", () => {
  const local = loadWorkerConfig({ ...REDIS, FTP_DATA_DIR: '/srv/ftp', FTP_REDIS_PREFIX: 'ftp-a:' }, []);
  assert.deepEqual([local.storage, local.dataDir, local.redisPrefix, local.redisUrl], ['local', '/srv/ftp', 'ftp-a:', REDIS.REDIS_URL]);
  const s3 = loadWorkerConfig(
    { ...REDIS, FTP_STORAGE: 's3', FTP_S3_ENDPOINT: 'http://127.0.0.1:7480', FTP_S3_BUCKET: 'uploads', FTP_S3_FORCE_PATH_STYLE: 'true', FTP_S3_PART_SIZE: String(8 * 1024 * 1024) },
    [],
  );
  assert.deepEqual(
    [s3.storage, s3.s3Endpoint, s3.s3Bucket, s3.s3ForcePathStyle, s3.s3PartSize],
    ['s3', 'http://127.0.0.1:7480', 'uploads', true, 8 * 1024 * 1024],
  );
  assert.throws(() => loadWorkerConfig({ ...REDIS, FTP_STORAGE: 's3' }, []), configError(/FTP_S3_BUCKET/));
  assert.throws(() => loadWorkerConfig({ ...REDIS, FTP_STORAGE: 'nfs' }, []), configError(/FTP_STORAGE/));
});

test('--config: the YAML file the edge reads, the environment winning over it', () => {
  const pipelines = file('clamd: { host: 127.0.0.1, port: 3310 }\npipelines:\n  - name: scan\n    steps:\n      - scan: {}\n');
  const config = file(
    ['redis_url: redis://redis:6379', 'data_dir: /data', 'storage: local', 'worker_concurrency: 8', `worker_pipelines: ${pipelines}`, ''].join('\n'),
    'ftp.yaml',
  );
  const fromFile = loadWorkerConfig({}, ['--config', config]);
  assert.deepEqual([fromFile.redisUrl, fromFile.dataDir, fromFile.worker.concurrency], ['redis://redis:6379', '/data', 8]);
  assert.deepEqual(fromFile.clamd, { host: '127.0.0.1', port: 3310 });
  assert.deepEqual(fromFile.pipelineSpecs.map((p) => [p.name, p.steps.map((s) => s.kind)]), [['scan', ['scan']]]);
  const overridden = loadWorkerConfig({ WORKER_CONCURRENCY: '2', FTP_DATA_DIR: '/other' }, [`--config=${config}`]);
  assert.deepEqual([overridden.worker.concurrency, overridden.dataDir, overridden.redisUrl], [2, '/other', 'redis://redis:6379']);
  assert.throws(() => loadWorkerConfig(REDIS, ['--config', file('worker_threads: 3\n', 'ftp.yaml')]), configError(/unknown key "worker_threads"/));
  assert.throws(() => loadWorkerConfig(REDIS, ['--config']), /--config needs a path/);
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
  assert.deepEqual(parsed.pipelines[0].steps[2].options, { to: 'archive/{yyyy}/{name}' });
  assert.deepEqual(parsed.pipelines[0].match, { users: ['alice'], paths: ['/inbox/**'] });
});

test('mistakes in the pipelines file are named by where they are', () => {
  assert.throws(() => parsePipelinesFile(file('pipelines: []\n')), /pipelines: expected a non-empty list/);
  assert.throws(() => parsePipelinesFile(file('pipeline: []\n')), /pipeline: unknown key/);
  assert.throws(() => parsePipelinesFile(file('pipelines:\n  - name: a\n    steps:\n      - zip: {}\n')), /pipelines\[0\]\.steps\[0\]: unknown step "zip"/);
  assert.throws(() => parsePipelinesFile(file('pipelines:\n  - name: a\n    steps:\n      - scan: {}\n')), /needs `clamd/);
  assert.throws(() => parsePipelinesFile(file('pipelines:\n  - name: a\n    match: { user: [x] }\n    steps:\n      - checksum: {}\n')), /match\.user: unknown key/);
  // Through loadWorkerConfig too: a bad pipelines file stops the start.
  assert.throws(() => loadWorkerConfig({ ...REDIS, WORKER_PIPELINES: file('pipelines: []\n') }, []), configError(/pipelines: expected a non-empty list/));
});
