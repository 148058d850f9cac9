import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import { parseRedisUrl } from '@ftp/cluster-state';
import { loadConfig } from '@ftp/config';
import { loadWorkerConfig } from '../../services/worker/src/config';
import { buildPipelines } from '../../services/worker/src/pipeline';
import { composeSchemaErrors, isPortMapping, loadCompose } from './compose';
import { sftpSettings } from './sftpSettings';

// docker-compose.yml and deploy/haproxy/haproxy.cfg, offline: the Compose Specification schema, the old
// docker-compose 1.29 parser (`config -q` needs no engine), `haproxy -c` with the values Compose passes, and the
// values the edges and workers would actually load.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPOSE = join(ROOT, 'docker-compose.yml');
const HAPROXY_CFG = join(ROOT, 'deploy', 'haproxy', 'haproxy.cfg');
const EDGES = ['edge-1', 'edge-2', 'edge-3'];
const WORKERS = ['worker-1', 'worker-2'];

const temp: string[] = [];
after(() => temp.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A program on PATH or in /usr/sbin (where Debian puts haproxy), or a clear failure naming the package. */
function binary(name: string, pkg: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  assert.fail(`${name} not found: apt-get install --no-install-recommends ${pkg} (.ci/run installs it)`);
}

/** This process's environment without the variables the deploy files set, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('FTP_') && k !== 'REDIS_URL' && !k.startsWith('COMPOSE_')) env[k] = v;
  return { ...env, ...extra };
}

const compose = () => loadCompose(COMPOSE, {});
/** A service's `environment` map as strings. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const envOf = (service: any): Record<string, string> => Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v)]));

test('docker-compose.yml is valid against the Compose Specification schema', () => {
  assert.deepEqual(composeSchemaErrors(compose()), []);
});

test('docker-compose 1.29 accepts it (docker-compose config -q)', () => {
  const result = spawnSync(binary('docker-compose', 'docker-compose'), ['-f', COMPOSE, 'config', '-q'], { cwd: ROOT, env: cleanEnv(), encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
});

test('the cluster: Redis, PostgreSQL, HAProxy, three edges, two workers and the observability stack', () => {
  const services = Object.keys(compose().services).sort();
  assert.deepEqual(services, ['edge-1', 'edge-2', 'edge-3', 'grafana', 'haproxy', 'jaeger', 'otel-collector', 'postgres', 'prometheus', 'redis', 'worker-1', 'worker-2']);
});

test('users live in the postgres service, and every edge serves the admin API on its own port, published on loopback only', () => {
  const doc = compose();
  const postgres = doc.services.postgres;
  const pg = envOf(postgres);
  assert.ok(postgres.healthcheck.test.join(' ').includes('pg_isready'), 'the edges wait for a database that answers');
  assert.ok((postgres.volumes as string[]).some((v) => v.endsWith(':/var/lib/postgresql/data') && v.split(':')[0] in doc.volumes), 'the database on a named volume');
  const haproxyPorts = (doc.services.haproxy.ports as string[]).map((p) => p.split(':').at(-1)!);
  for (const [i, name] of EDGES.entries()) {
    const service = doc.services[name];
    const config = loadConfig({ env: envOf(service) });
    assert.equal(config.userStore, 'postgres', `${name}: users from PostgreSQL`);
    const url = new URL(config.usersDatabaseUrl);
    assert.equal(url.hostname, 'postgres');
    assert.deepEqual([url.username, decodeURIComponent(url.password), url.pathname], [pg.POSTGRES_USER, pg.POSTGRES_PASSWORD, `/${pg.POSTGRES_DB}`], `${name}: the postgres service's own credentials`);
    assert.equal(service.depends_on.postgres?.condition, 'service_healthy', `${name} waits for PostgreSQL`);
    assert.notEqual(config.apiPort, 0, `${name}: the API is on (FTP_API_PORT)`);
    assert.notEqual(config.apiPort, config.adminPort);
    assert.equal(config.apiHost, '0.0.0.0');
    assert.ok((service.ports as string[]).includes(`127.0.0.1:${9181 + i}:${config.apiPort}`), `${name}: the API published on the host's loopback only`);
    assert.ok(!haproxyPorts.some((p) => p.split('-').map(Number).includes(config.apiPort)), 'HAProxy never publishes the API');
  }
  assert.equal(loadCompose(COMPOSE, { FTP_DB_PASSWORD: 's3cret' }).services['edge-2'].environment.FTP_USERS_DATABASE_URL, 'postgres://ftp:s3cret@postgres:5432/ftp');
});

test('every edge gets a configuration it accepts, and HAProxy forwards exactly its control port, passive range and SFTP port', () => {
  const doc = compose();
  const haproxy = doc.services.haproxy;
  const lb = envOf(haproxy);
  const configs = EDGES.map((name) => {
    const env = envOf(doc.services[name]);
    const config = loadConfig({ env });
    assert.equal(config.advertiseHost, name, `${name}: peers relay to FTP_ADVERTISE_HOST, which must be its own name`);
    assert.equal(config.replicaId, name);
    assert.deepEqual(config.proxyProtocolFrom, [haproxy.networks.ftp.ipv4_address], `${name} must trust HAProxy's PROXY header, and only its`);
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
    assert.equal(config.redisUrl, 'redis://redis:6379');
    const check = doc.services[name].healthcheck.test.join(' ');
    assert.ok(check.includes(`:${config.adminPort}/readyz`), `${name}: healthcheck must ask /readyz on the admin port`);
    return config;
  });
  for (const config of configs) assert.deepEqual(config.pasvRange, configs[0].pasvRange, 'one passive range for all replicas');
  const { port, adminPort, agentPort, pasvRange } = configs[0];
  const sftp = sftpSettings(configs[0], envOf(doc.services['edge-1']));
  for (const name of EDGES) assert.deepEqual(sftpSettings(loadConfig({ env: envOf(doc.services[name]) }), envOf(doc.services[name])), sftp);
  assert.deepEqual([lb.FTP_EDGE_1, lb.FTP_EDGE_2, lb.FTP_EDGE_3], EDGES);
  assert.equal(Number(lb.FTP_EDGE_CONTROL_PORT), port);
  assert.equal(Number(lb.FTP_EDGE_ADMIN_PORT), adminPort);
  assert.notEqual(agentPort, 0, 'the edges answer HAProxy\'s agent check');
  for (const config of configs) assert.equal(config.agentPort, agentPort);
  assert.equal(Number(lb.FTP_EDGE_AGENT_PORT), agentPort, 'HAProxy asks the edges\' FTP_AGENT_PORT');
  assert.equal(Number(lb.FTP_EDGE_SFTP_PORT), sftp.port, 'HAProxy forwards SFTP to the edges\' FTP_SFTP_PORT');
  assert.notEqual(sftp.port, 0);
  assert.deepEqual([Number(lb.FTP_PASV_MIN), Number(lb.FTP_PASV_MAX)], [pasvRange.min, pasvRange.max]);
  assert.deepEqual(haproxy.ports, [
    `21:${lb.FTP_LB_CONTROL_PORT}`,
    `${pasvRange.min}-${pasvRange.max}:${pasvRange.min}-${pasvRange.max}`,
    `22:${lb.FTP_LB_SFTP_PORT}`,
  ]);
  // SFTP_HOST_PORT moves the published SFTP port off 22 (where the host's own sshd listens).
  assert.deepEqual(loadCompose(COMPOSE, { SFTP_HOST_PORT: '2222' }).services.haproxy.ports[2], `2222:${lb.FTP_LB_SFTP_PORT}`);
});

test('every edge presents the same SFTP host keys: made once by edge-1 on the shared volume, the others wait for it', () => {
  const doc = compose();
  for (const name of EDGES) {
    const service = doc.services[name];
    const env = envOf(service);
    const sftp = sftpSettings(loadConfig({ env }), env);
    assert.deepEqual(sftp.hostKeys, [], `${name}: no FTP_SFTP_HOST_KEYS, so the keys are made in FTP_TLS_DIR`);
    // FTP_TLS_DIR on the volume every edge mounts, not on the container's own (read-only) file system or a tmpfs.
    const shared = (service.volumes as string[]).map((v) => v.split(':')).find(([source]) => source === 'ftp-data');
    assert.ok(shared, `${name} mounts the shared volume`);
    for (const key of sftp.generatedKeys) assert.ok(key.startsWith(`${shared[1]}/`), `${name}: ${key} must be on the shared volume ${shared[1]}`);
    assert.ok(!(service.tmpfs ?? []).some((t: string) => sftp.generatedKeys.some((k) => k.startsWith(`${t}/`))));
    if (name !== 'edge-1') {
      assert.equal(service.depends_on['edge-1']?.condition, 'service_healthy', `${name} must wait until edge-1 has made the keys (and the users file)`);
    }
  }
  assert.deepEqual(Object.keys(doc.services['edge-1'].depends_on).sort(), ['postgres', 'redis'], 'edge-1 waits for no other edge');
});

test('every worker loads its configuration and pipelines and shares the edges\' volume, data folder and Redis', () => {
  const doc = compose();
  const edge = loadConfig({ env: envOf(doc.services['edge-1']) });
  for (const name of WORKERS) {
    const service = doc.services[name];
    const env = envOf(service);
    // The pipelines file as the container sees it: the bind mount's source on this side.
    const mount = (service.volumes as string[]).map((v) => v.split(':')).find(([, target]) => target === env.WORKER_PIPELINES);
    assert.ok(mount, `${name}: WORKER_PIPELINES ${env.WORKER_PIPELINES} is not mounted`);
    const config = loadWorkerConfig({ ...env, WORKER_PIPELINES: join(ROOT, mount[0]) });
    assert.deepEqual(buildPipelines(config, {}).map((p) => p.name), ['inbox-archive', 'default']);
    // The same configuration model as the edge's: where files and jobs are cannot differ.
    for (const key of ['dataDir', 'redisUrl', 'redisPrefix', 'storage', 's3Bucket', 's3Prefix', 's3Endpoint'] as const) assert.equal(config[key], edge[key], `${name}: ${key}`);
    assert.equal(config.worker.adminHost, '0.0.0.0');
    assert.equal(config.worker.adminPort, 9091);
    assert.ok(service.healthcheck.test.join(' ').includes(`:${config.worker.adminPort}/readyz`));
    assert.ok((service.volumes as string[]).includes('ftp-data:/data'));
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
  }
  assert.ok((doc.services['edge-1'].volumes as string[]).includes('ftp-data:/data'));
});

test('every file or folder Compose bind-mounts exists in the repository', () => {
  const doc = compose();
  const missing = [];
  for (const [name, service] of Object.entries<any>(doc.services)) { // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const volume of service.volumes ?? []) {
      const source = typeof volume === 'string' ? volume.split(':')[0] : volume.source;
      if (source.startsWith('./') && !existsSync(join(ROOT, source))) missing.push(`${name}: ${source}`);
    }
  }
  assert.deepEqual(missing, []);
});

test('Prometheus scrapes every edge and worker by service name on its admin port', () => {
  const doc = compose();
  const prometheus = parse(readFileSync(join(ROOT, 'deploy', 'observability', 'prometheus.yml'), 'utf8')) as {
    scrape_configs: Array<{ static_configs?: Array<{ targets: string[] }> }>;
  };
  const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs ?? []).flatMap((c) => c.targets).sort();
  const expected = [
    ...EDGES.map((name) => `${name}:${loadConfig({ env: envOf(doc.services[name]) }).adminPort}`),
    ...WORKERS.map((name) => `${name}:${envOf(doc.services[name]).WORKER_ADMIN_PORT}`),
  ].sort();
  assert.deepEqual(targets, expected);
});

test('HAProxy accepts its configuration with the values Compose passes (haproxy -c)', () => {
  const result = spawnSync(binary('haproxy', 'haproxy'), ['-c', '-f', HAPROXY_CFG], { env: cleanEnv(envOf(compose().services.haproxy)), encoding: 'utf8' });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
});

test('HAProxy\'s SFTP frontend is on with FTP_LB_SFTP_PORT, and the file stays valid without it (FTP only)', () => {
  const text = readFileSync(HAPROXY_CFG, 'utf8');
  // The SFTP block, between `.if defined(FTP_LB_SFTP_PORT)` and `.endif`: a frontend on the SFTP port and a backend
  // of the three edges' SFTP ports whose health follows the FTP control servers' /readyz checks.
  const block = /^\.if defined\(FTP_LB_SFTP_PORT\)\n([\s\S]*?)^\.endif$/m.exec(text)?.[1] ?? '';
  assert.match(block, /^frontend sftp\n\s+bind "\$\{FTP_LB_BIND\}:\$\{FTP_LB_SFTP_PORT\}"\n\s+default_backend sftp$/m);
  for (const [i, edge] of EDGES.entries()) {
    assert.match(block, new RegExp(`^\\s+server ${edge} "\\$\\{FTP_EDGE_${i + 1}\\}:\\$\\{FTP_EDGE_SFTP_PORT-2222\\}" track ftp_control/${edge}$`, 'm'));
  }
  // send-proxy-v2 for every server of every backend, SFTP's included (haproxy.test.ts sees the header arrive).
  assert.match(text, /^defaults\n(?:.*\n)*?\s+default-server [^\n]*\bsend-proxy-v2\b/m);

  const lb = envOf(compose().services.haproxy);
  const haproxy = binary('haproxy', 'haproxy');
  const { FTP_LB_SFTP_PORT: _, FTP_EDGE_SFTP_PORT: __, ...ftpOnly } = lb;
  const without = spawnSync(haproxy, ['-c', '-f', HAPROXY_CFG], { env: cleanEnv(ftpOnly), encoding: 'utf8' });
  assert.equal(without.status, 0, `${without.stdout}${without.stderr}`);
  const badPort = spawnSync(haproxy, ['-c', '-f', HAPROXY_CFG], { env: cleanEnv({ ...lb, FTP_LB_SFTP_PORT: 'ssh' }), encoding: 'utf8' });
  assert.notEqual(badPort.status, 0);
  assert.match(`${badPort.stdout}${badPort.stderr}`, /invalid character 's' in port number 'ssh'/);
});

test('a wrong field fails each validator: schema, docker-compose, haproxy -c', () => {
  // Schema: an unknown key in a service, a malformed port, a duration without unit, an unknown top-level key.
  const broken = compose();
  broken.services['edge-1'].restart_policy = 'always';
  broken.services.haproxy.ports = ['21:abc'];
  broken.services.redis.healthcheck.interval = '5 seconds';
  broken.service = {};
  const errors = composeSchemaErrors(broken).join('\n');
  assert.match(errors, /\/services\/edge-1 must NOT have additional properties: restart_policy/);
  assert.match(errors, /\/services\/haproxy\/ports\/0 must match format "ports"/);
  assert.match(errors, /\/services\/redis\/healthcheck\/interval must match format "duration"/);
  assert.match(errors, /\/ must NOT have additional properties: service/);
  assert.equal(isPortMapping('127.0.0.1:9091:9090'), true);
  assert.equal(isPortMapping('30000-30019:30000-30019'), true);
  assert.equal(isPortMapping('21:70000'), false);

  // docker-compose: the same unknown key in a copy (build contexts resolve against the repository).
  const dir = mkdtempSync(join(tmpdir(), 'compose-test-'));
  temp.push(dir);
  const copy = join(dir, 'docker-compose.yml');
  writeFileSync(copy, readFileSync(COMPOSE, 'utf8').replace('\n  redis:\n    image:', '\n  redis:\n    restart_policy: always\n    image:'));
  const dockerCompose = binary('docker-compose', 'docker-compose');
  const result = spawnSync(dockerCompose, ['-f', copy, '--project-directory', ROOT, 'config', '-q'], { env: cleanEnv(), encoding: 'utf8' });
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /Unsupported config option for services\.redis: 'restart_policy'/);

  // haproxy -c: a balance algorithm that does not exist, and a misspelt keyword in a copy of the file.
  const lb = envOf(compose().services.haproxy);
  const haproxy = binary('haproxy', 'haproxy');
  const badBalance = spawnSync(haproxy, ['-c', '-f', HAPROXY_CFG], { env: cleanEnv({ ...lb, FTP_LB_BALANCE: 'fastest' }), encoding: 'utf8' });
  assert.notEqual(badBalance.status, 0);
  assert.match(`${badBalance.stdout}${badBalance.stderr}`, /balance only supports/);
  writeFileSync(join(dir, 'haproxy.cfg'), readFileSync(HAPROXY_CFG, 'utf8').replace('option redispatch', 'option redispach'));
  const typo = spawnSync(haproxy, ['-c', '-f', join(dir, 'haproxy.cfg')], { env: cleanEnv(lb), encoding: 'utf8' });
  assert.notEqual(typo.status, 0);
  assert.match(`${typo.stdout}${typo.stderr}`, /redispach/);
});

test('the Sentinel override: a replica and three sentinels, and every edge and worker on the sentinels', () => {
  const file = join(ROOT, 'deploy', 'redis-sentinel', 'docker-compose.sentinel.yml');
  const merged = spawnSync(binary('docker-compose', 'docker-compose'), ['-f', COMPOSE, '-f', file, 'config', '-q'], { cwd: ROOT, env: cleanEnv(), encoding: 'utf8' });
  assert.equal(merged.status, 0, merged.stderr);
  const base = compose();
  const override = loadCompose(file, {});
  assert.deepEqual(Object.keys(override.services).sort(), ['edge-1', 'edge-2', 'edge-3', 'redis-replica', 'sentinel-1', 'sentinel-2', 'sentinel-3', 'worker-1', 'worker-2']);
  const replicaOf = override.services['redis-replica'].command as string[];
  assert.deepEqual(replicaOf.slice(replicaOf.indexOf('--replicaof'), replicaOf.indexOf('--replicaof') + 3), ['--replicaof', 'redis', '6379'], 'the replica follows the base file\'s redis');

  // What each sentinel is told: the quoted lines of its printf.
  const sentinelNames = ['sentinel-1', 'sentinel-2', 'sentinel-3'];
  for (const name of sentinelNames) {
    const script = (override.services[name].command as string[]).join(' ');
    const lines = [...script.matchAll(/'([^']*)'/g)].map((m) => m[1]).filter((l) => l !== '%s\\n');
    const monitor = lines.find((l) => l.startsWith('sentinel monitor '))?.split(' ') ?? [];
    assert.deepEqual(monitor.slice(2), ['ftpmain', 'redis', '6379', '2'], `${name}: monitors the base file's redis, quorum 2 of 3`);
    const downAfter = Number(lines.find((l) => l.startsWith('sentinel down-after-milliseconds '))?.split(' ')[3]);
    assert.ok(downAfter > 0 && downAfter <= 5000, `${name}: down-after-milliseconds ${downAfter} within the edges' 10 s failover wait`);
    assert.ok(lines.includes('port 26379'));
  }

  for (const name of [...EDGES, ...WORKERS]) {
    const env = { ...envOf(base.services[name]), ...envOf(override.services[name]) };
    const target = parseRedisUrl(env.REDIS_URL);
    assert.equal(target.kind, 'sentinel', name);
    if (target.kind !== 'sentinel') continue;
    assert.deepEqual(target.options.sentinels, sentinelNames.map((host) => ({ host, port: 26379 })));
    assert.equal(target.options.name, 'ftpmain');
    if (EDGES.includes(name)) assert.equal(loadConfig({ env }).redisUrl, env.REDIS_URL);
    else assert.equal(loadWorkerConfig({ ...env, WORKER_PIPELINES: join(ROOT, 'deploy', 'worker', 'pipelines.yaml') }).redisUrl, env.REDIS_URL);
  }
});
