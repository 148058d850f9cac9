import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, configPathFromArgv, loadConfig } from './config';

test('defaults give a loopback server on 2121 with a passive range', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.port, 2121);
  assert.deepEqual(config.pasvRange, { min: 30000, max: 30099 });
  assert.equal(config.fsyncUploads, true);
});

test('environment overrides the YAML file, which overrides defaults', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'port: 2222\npasv_range: "40000-40009"\nmax_sessions_per_ip: 3\n');
  const config = loadConfig({ file, env: { FTP_PORT: '2323' } });
  assert.equal(config.port, 2323);
  assert.deepEqual(config.pasvRange, { min: 40000, max: 40009 });
  assert.equal(config.maxSessionsPerIp, 3);
});

test('a bad value stops start-up with a message naming the key', () => {
  assert.throws(() => loadConfig({ env: { FTP_PORT: 'abc' } }), (err: Error) => err instanceof ConfigError && /^FTP_PORT: /.test(err.message));
  assert.throws(() => loadConfig({ env: { FTP_PASV_RANGE: '30010-30000' } }), /FTP_PASV_RANGE: range start/);
  assert.throws(() => loadConfig({ env: { FTP_PASV_ADDRESS: '::1' } }), /FTP_PASV_ADDRESS: expected an IPv4/);
  assert.throws(() => loadConfig({ env: { FTP_FSYNC_UPLOADS: 'maybe' } }), /FTP_FSYNC_UPLOADS: expected true or false/);
});

test('unknown keys in the YAML file are refused by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'prot: 21\n');
  assert.throws(() => loadConfig({ file, env: {} }), /unknown key "prot"/);
  writeFileSync(file, 'port: 70000\n');
  assert.throws(() => loadConfig({ file, env: {} }), /^ConfigError: port \(in .*\): expected a whole number/);
});

test('--config is read from argv in both spellings', () => {
  assert.equal(configPathFromArgv(['--config', 'a.yaml']), 'a.yaml');
  assert.equal(configPathFromArgv(['--config=b.yaml']), 'b.yaml');
  assert.equal(configPathFromArgv([]), undefined);
});

test('PROXY protocol sources are addresses or CIDRs, from the environment or a YAML list', () => {
  assert.deepEqual(loadConfig({ env: {} }).proxyProtocolFrom, [], 'trusts no balancer by default');
  const config = loadConfig({ env: { FTP_PROXY_PROTOCOL_FROM: '10.0.0.0/8, 127.0.0.1,fd00::/8' } });
  assert.deepEqual(config.proxyProtocolFrom, ['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);
  assert.throws(() => loadConfig({ env: { FTP_PROXY_PROTOCOL_FROM: '10.0.0.0/33' } }), /FTP_PROXY_PROTOCOL_FROM: .*"10.0.0.0\/33"/);
  assert.throws(() => loadConfig({ env: { FTP_PROXY_PROTOCOL_FROM: 'haproxy' } }), /FTP_PROXY_PROTOCOL_FROM/);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'proxy_protocol_from:\n  - 10.1.0.0/16\n  - 10.2.0.1\nrelay_port: 2200\n');
  const fromFile = loadConfig({ file, env: {} });
  assert.deepEqual(fromFile.proxyProtocolFrom, ['10.1.0.0/16', '10.2.0.1']);
  assert.equal(fromFile.relayPort, 2200);
});

test('upload events: completed ones by default, sha256 off; both from the environment or YAML', () => {
  const defaults = loadConfig({ env: {} });
  assert.equal(defaults.uploadEvents, 'completed');
  assert.equal(defaults.uploadSha256, false);
  const config = loadConfig({ env: { FTP_UPLOAD_EVENTS: 'all', FTP_UPLOAD_SHA256: 'yes' } });
  assert.equal(config.uploadEvents, 'all');
  assert.equal(config.uploadSha256, true);
  assert.equal(loadConfig({ env: { FTP_UPLOAD_EVENTS: 'off' } }).uploadEvents, 'off');
  assert.equal(defaults.outboxDir, '', 'memory only unless configured');
  assert.equal(loadConfig({ env: { FTP_OUTBOX_DIR: ' /data/outbox ' } }).outboxDir, '/data/outbox');
  assert.throws(() => loadConfig({ env: { FTP_UPLOAD_EVENTS: 'aborted' } }), /FTP_UPLOAD_EVENTS: expected one of off, completed, all/);
  assert.throws(() => loadConfig({ env: { FTP_UPLOAD_SHA256: 'sha' } }), /FTP_UPLOAD_SHA256: expected true or false/);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'upload_events: off\nupload_sha256: true\n');
  const fromFile = loadConfig({ file, env: {} });
  assert.equal(fromFile.uploadEvents, 'off');
  assert.equal(fromFile.uploadSha256, true);
});

test('zero-copy transfers: auto by default, off from the environment or YAML, anything else refused', () => {
  assert.equal(loadConfig({ env: {} }).zeroCopy, 'auto');
  assert.equal(loadConfig({ env: { FTP_ZERO_COPY: 'off' } }).zeroCopy, 'off');
  assert.equal(loadConfig({ env: { FTP_ZERO_COPY: 'auto' } }).zeroCopy, 'auto');
  assert.throws(() => loadConfig({ env: { FTP_ZERO_COPY: 'on' } }), /FTP_ZERO_COPY: expected one of auto, off, got "on"/);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'zero_copy: off\n');
  assert.equal(loadConfig({ file, env: {} }).zeroCopy, 'off');
  assert.equal(loadConfig({ file, env: { FTP_ZERO_COPY: 'auto' } }).zeroCopy, 'auto', 'the environment wins');
});

test('xferlog file: off by default, set from the environment or YAML; per-user metrics are opt-in', () => {
  const defaults = loadConfig({ env: {} });
  assert.equal(defaults.xferlogFile, '');
  assert.equal(defaults.metricsUserLabels, false);
  const fromEnv = loadConfig({ env: { FTP_XFERLOG_FILE: ' /var/log/ftp/xferlog ', FTP_METRICS_USER_LABELS: 'yes' } });
  assert.equal(fromEnv.xferlogFile, '/var/log/ftp/xferlog');
  assert.equal(fromEnv.metricsUserLabels, true);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'xferlog_file: /tmp/xferlog\nmetrics_user_labels: false\n');
  assert.equal(loadConfig({ file, env: {} }).xferlogFile, '/tmp/xferlog');
  assert.throws(() => loadConfig({ env: { FTP_METRICS_USER_LABELS: 'sometimes' } }), /FTP_METRICS_USER_LABELS: expected true or false/);
});

test('user store: the users file by default; postgres or hook from their URLs or FTP_USER_STORE, with what each needs', () => {
  const defaults = loadConfig({ env: {} });
  assert.equal(defaults.userStore, 'file');
  assert.equal(defaults.usersDatabaseMigrate, true);
  assert.equal(defaults.authHookTimeoutMs, 5000);
  assert.equal(defaults.authHookCacheSeconds, 60);
  const url = 'postgres://ftp@db:5432/ftp';
  assert.equal(loadConfig({ env: { FTP_USERS_DATABASE_URL: url } }).userStore, 'postgres', 'chosen by its URL');
  assert.equal(loadConfig({ env: { FTP_USERS_DATABASE_URL: url, FTP_USER_STORE: 'file' } }).userStore, 'file', 'an explicit choice wins');
  const secret = 'x'.repeat(32);
  const hook = loadConfig({ env: { FTP_AUTH_HOOK_URL: 'https://idp.example.com/ftp', FTP_AUTH_HOOK_SECRET: secret, FTP_AUTH_HOOK_CACHE_SECONDS: '0' } });
  assert.equal(hook.userStore, 'hook');
  assert.equal(hook.authHookCacheSeconds, 0);
  assert.equal(loadConfig({ env: { FTP_AUTH_HOOK_URL: 'http://127.0.0.1:8080/auth', FTP_AUTH_HOOK_SECRET: secret } }).userStore, 'hook', 'http to a sidecar');

  assert.throws(() => loadConfig({ env: { FTP_USER_STORE: 'ldap' } }), /FTP_USER_STORE: expected one of file, postgres, hook/);
  assert.throws(() => loadConfig({ env: { FTP_USER_STORE: 'postgres' } }), /FTP_USER_STORE=postgres needs FTP_USERS_DATABASE_URL/);
  assert.throws(() => loadConfig({ env: { FTP_USERS_DATABASE_URL: 'mysql://db/ftp' } }), /FTP_USERS_DATABASE_URL: expected a PostgreSQL URL/);
  assert.throws(() => loadConfig({ env: { FTP_AUTH_HOOK_URL: 'http://idp.example.com/ftp', FTP_AUTH_HOOK_SECRET: secret } }), /FTP_AUTH_HOOK_URL: expected an https/);
  assert.throws(() => loadConfig({ env: { FTP_AUTH_HOOK_URL: 'https://idp.example.com/ftp' } }), /FTP_AUTH_HOOK_SECRET: .*at least 16/);
  assert.throws(() => loadConfig({ env: { FTP_USER_STORE: 'hook' } }), /needs FTP_AUTH_HOOK_URL/);
  assert.throws(
    () => loadConfig({ env: { FTP_USERS_DATABASE_URL: url, FTP_AUTH_HOOK_URL: 'https://idp.example.com/ftp', FTP_AUTH_HOOK_SECRET: secret } }),
    /both set: choose one with FTP_USER_STORE/,
  );
  assert.throws(() => loadConfig({ env: { FTP_AUTH_HOOK_TIMEOUT_MS: '10' } }), /FTP_AUTH_HOOK_TIMEOUT_MS: expected a whole number from 100/);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, `user_store: postgres\nusers_database_url: ${url}\nusers_database_migrate: false\n`);
  const fromFile = loadConfig({ file, env: {} });
  assert.equal(fromFile.userStore, 'postgres');
  assert.equal(fromFile.usersDatabaseMigrate, false);
});

test('admin API: off by default, its own port, a tokens file beside the users file unless set', () => {
  const defaults = loadConfig({ env: {} });
  assert.equal(defaults.apiPort, 0, 'off unless asked for');
  assert.equal(defaults.apiHost, '127.0.0.1');
  assert.equal(defaults.apiTokensFile, join('.', 'api-tokens.yaml'));
  assert.equal(defaults.transferProgressSeconds, 1);
  const config = loadConfig({ env: { FTP_API_PORT: '9443', FTP_API_HOST: '0.0.0.0', FTP_USERS_FILE: '/etc/ftp/users/users.yaml', FTP_TRANSFER_PROGRESS_SECONDS: '0' } });
  assert.equal(config.apiPort, 9443);
  assert.equal(config.apiHost, '0.0.0.0');
  assert.equal(config.apiTokensFile, '/etc/ftp/users/api-tokens.yaml');
  assert.equal(config.transferProgressSeconds, 0);
  assert.equal(loadConfig({ env: { FTP_API_TOKENS_FILE: ' /data/tokens.yaml ' } }).apiTokensFile, '/data/tokens.yaml');
  assert.throws(() => loadConfig({ env: { FTP_API_PORT: '9090' } }), /FTP_API_PORT: 9090 is FTP_ADMIN_PORT too/);
  assert.throws(() => loadConfig({ env: { FTP_AGENT_PORT: '9090' } }), /FTP_AGENT_PORT: 9090 is taken by FTP_ADMIN_PORT/);
  assert.equal(loadConfig({ env: { FTP_AGENT_PORT: '9092' } }).agentPort, 9092);
  assert.throws(() => loadConfig({ env: { FTP_API_PORT: 'api' } }), /^ConfigError: FTP_API_PORT: expected a whole number/);
  assert.throws(() => loadConfig({ env: { FTP_TRANSFER_PROGRESS_SECONDS: '-1' } }), /FTP_TRANSFER_PROGRESS_SECONDS: /);
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'api_port: 9444\napi_tokens_file: /srv/tokens.yaml\n');
  const fromFile = loadConfig({ file, env: {} });
  assert.equal(fromFile.apiPort, 9444);
  assert.equal(fromFile.apiTokensFile, '/srv/tokens.yaml');
});

test('default limits and the per-address session rate: 0 (none) unless set, whole numbers, from the environment or YAML', () => {
  const none = loadConfig({ env: {} });
  assert.deepEqual(none.defaultLimits, {
    quotaBytes: 0,
    quotaFiles: 0,
    dailyUploadBytes: 0,
    dailyDownloadBytes: 0,
    bandwidthUp: 0,
    bandwidthDown: 0,
    sessionBandwidthUp: 0,
    sessionBandwidthDown: 0,
    sessionsPerMinute: 0,
  });
  assert.equal(none.sessionsPerMinutePerIp, 0);

  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'default_quota_bytes: 10737418240\ndefault_bandwidth_down: 1048576\nsessions_per_minute_per_ip: 120\n');
  const config = loadConfig({
    file,
    env: {
      FTP_DEFAULT_QUOTA_FILES: '100000',
      FTP_DEFAULT_DAILY_UPLOAD_BYTES: '5000000000',
      FTP_DEFAULT_DAILY_DOWNLOAD_BYTES: '6000000000',
      FTP_DEFAULT_BANDWIDTH_UP: '2000000',
      FTP_DEFAULT_SESSION_BANDWIDTH_UP: '500000',
      FTP_DEFAULT_SESSION_BANDWIDTH_DOWN: '600000',
      FTP_DEFAULT_SESSIONS_PER_MINUTE: '30',
      FTP_DEFAULT_BANDWIDTH_DOWN: '3000000', // the environment wins over the file
    },
  });
  assert.deepEqual(config.defaultLimits, {
    quotaBytes: 10737418240,
    quotaFiles: 100000,
    dailyUploadBytes: 5000000000,
    dailyDownloadBytes: 6000000000,
    bandwidthUp: 2000000,
    bandwidthDown: 3000000,
    sessionBandwidthUp: 500000,
    sessionBandwidthDown: 600000,
    sessionsPerMinute: 30,
  });
  assert.equal(config.sessionsPerMinutePerIp, 120);

  for (const [env, raw] of [
    ['FTP_DEFAULT_QUOTA_BYTES', '-1'],
    ['FTP_DEFAULT_QUOTA_FILES', '1.5'],
    ['FTP_DEFAULT_BANDWIDTH_UP', '10M'],
    ['FTP_DEFAULT_DAILY_DOWNLOAD_BYTES', '9007199254740992'],
    ['FTP_DEFAULT_SESSIONS_PER_MINUTE', '1000001'],
    ['FTP_SESSIONS_PER_MINUTE_PER_IP', 'many'],
  ]) {
    assert.throws(() => loadConfig({ env: { [env]: raw } }), (err: Error) => err instanceof ConfigError && err.message.startsWith(`${env}: expected a whole number from 0`), `${env}=${raw}`);
  }
  writeFileSync(file, 'default_session_bandwidth_down: -5\n');
  assert.throws(() => loadConfig({ file, env: {} }), /^ConfigError: default_session_bandwidth_down \(in .*\): expected a whole number/);
});

test('storage: local by default; s3 needs a bucket, takes a normalised key prefix and a part size of at least 5 MiB', () => {
  const local = loadConfig({ env: {} });
  assert.equal(local.storage, 'local');
  assert.equal(local.s3PartSize, 16 * 1024 * 1024);
  assert.throws(() => loadConfig({ env: { FTP_STORAGE: 's3' } }), /FTP_STORAGE=s3 needs FTP_S3_BUCKET/);
  const s3 = loadConfig({
    env: { FTP_STORAGE: 's3', FTP_S3_BUCKET: 'partners', FTP_S3_ENDPOINT: 'http://127.0.0.1:7480', FTP_S3_PREFIX: 'homes/', FTP_S3_FORCE_PATH_STYLE: 'true' },
  });
  assert.deepEqual([s3.storage, s3.s3Bucket, s3.s3Endpoint, s3.s3Prefix, s3.s3ForcePathStyle], ['s3', 'partners', 'http://127.0.0.1:7480', 'homes/', true]);
  assert.throws(() => loadConfig({ env: { FTP_S3_PREFIX: '../other' } }), /FTP_S3_PREFIX: expected a key prefix/);
  assert.throws(() => loadConfig({ env: { FTP_S3_PREFIX: '/abs' } }), /FTP_S3_PREFIX: expected a key prefix/);
  assert.throws(() => loadConfig({ env: { FTP_S3_PART_SIZE: '1000' } }), /FTP_S3_PART_SIZE/);
  assert.throws(() => loadConfig({ env: { FTP_S3_ENDPOINT: 'ftp://x' } }), /FTP_S3_ENDPOINT: expected an http\(s\):\/\/ URL/);
});

test('the worker\'s own settings live in the same model: WORKER_* in the environment, worker_* in the YAML file', () => {
  assert.deepEqual(loadConfig({ env: {} }).worker, {
    concurrency: 16,
    lockMs: 30_000,
    adminHost: '127.0.0.1',
    adminPort: 9091,
    logLevel: 'info',
    pipelines: './pipelines.yaml',
  });
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'ftp.yaml');
  writeFileSync(file, 'data_dir: /srv/files\nworker_concurrency: 4\nworker_pipelines: /etc/ftp/pipelines.yaml\n');
  const config = loadConfig({ file, env: { WORKER_LOCK_MS: '5000' } });
  assert.equal(config.dataDir, '/srv/files');
  assert.deepEqual([config.worker.concurrency, config.worker.lockMs, config.worker.pipelines], [4, 5000, '/etc/ftp/pipelines.yaml']);
  assert.throws(() => loadConfig({ env: { WORKER_CONCURRENCY: '0' } }), /WORKER_CONCURRENCY: expected a whole number from 1 to 1000/);
  assert.throws(() => loadConfig({ env: { WORKER_LOG_LEVEL: 'loud' } }), /WORKER_LOG_LEVEL/);
});
