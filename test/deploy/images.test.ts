import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { builtinModules } from 'node:module';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { loadConfig } from '@ftp/config';
import { loadWorkerConfig } from '../../services/worker/src/config';
import { freeBlock } from '../support/processes';
import { buildStageSources, dockerignored, imageProblems, lintProblems, type ImageExpectations } from './dockerfile';
import { sftpSettings } from './sftpSettings';

// The two images without a Docker engine: their Dockerfiles linted and checked for what they promise, the bundles
// they contain built with the very command the build stage runs, and each bundle started the way the image starts it
// (node, the bundle, npm packages beside it), asked for health and stopped with SIGTERM.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:deploy:${process.pid}:${Date.now()}:`;
const temp: string[] = [];
after(async () => {
  temp.forEach((d) => rmSync(d, { recursive: true, force: true }));
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect().catch(() => undefined);
  if (redis.status === 'ready') {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

const edgeDefaults = loadConfig({ env: {} });
const sftpDefaults = sftpSettings(edgeDefaults, {});
const workerDefaults = loadWorkerConfig({ REDIS_URL: 'redis://unused' });

interface Image extends ImageExpectations {
  dir: string;
}
const IMAGES: Record<string, Image> = {
  edge: {
    dir: 'services/ftp-edge',
    workspace: '@ftp/edge',
    bundle: 'services/ftp-edge/dist/main.js',
    exposes: [edgeDefaults.port, edgeDefaults.relayPort, sftpDefaults.port, edgeDefaults.adminPort, `${edgeDefaults.pasvRange.min}-${edgeDefaults.pasvRange.max}`].map(String),
  },
  worker: { dir: 'services/worker', workspace: '@ftp/worker', bundle: 'services/worker/dist/main.js', exposes: [String(workerDefaults.worker.adminPort)] },
};

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const buildScript = (image: Image) => (JSON.parse(read(`${image.dir}/package.json`)) as { scripts: { build: string } }).scripts.build;

/** What `npm ci --omit=dev` installs at the top of node_modules: the lockfile's packages not marked dev-only. */
function runtimePackages(): Set<string> {
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
  const names = new Set<string>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    const match = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(path);
    if (match && !entry.dev) names.add(match[1]);
  }
  return names;
}

const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

for (const [name, image] of Object.entries(IMAGES)) {
  test(`${name} image: the Dockerfile lints clean and keeps its promises`, () => {
    const text = read(`${image.dir}/Dockerfile`);
    assert.deepEqual(lintProblems(text), []);
    assert.deepEqual(imageProblems(text, image), []);
    assert.match(buildScript(image), new RegExp(`--outfile=${image.bundle.slice(image.dir.length + 1)} `));
    // Listen on all interfaces inside the container (the defaults are 127.0.0.1, right for a laptop).
    assert.match(text, name === 'edge' ? /FTP_HOST=0\.0\.0\.0[\s\S]*FTP_ADMIN_HOST=0\.0\.0\.0/ : /WORKER_ADMIN_HOST=0\.0\.0\.0/);
  });

  test(`${name} image: every file the build stage type-checks is copied into it and not left out by .dockerignore`, () => {
    const tsconfig = join(ROOT, image.dir, 'tsconfig.json');
    const parsed = ts.parseJsonConfigFileContent(ts.readConfigFile(tsconfig, ts.sys.readFile).config, ts.sys, join(ROOT, image.dir));
    // Parsing and resolving only (no type-check): the files tsc -p would read.
    const files = ts.createProgram(parsed.fileNames, parsed.options).getSourceFiles().map((f) => realpathSync(f.fileName));
    const ours = files.filter((f) => !f.includes(`${join('node_modules', '')}`)).map((f) => relative(ROOT, f));
    assert.ok(ours.length > 10 && ours.some((f) => f.startsWith('libs/')), `expected the sources and libs, got ${ours.length} files`);
    const copied = buildStageSources(read(`${image.dir}/Dockerfile`));
    const ignore = read('.dockerignore');
    const missing = ours.filter((f) => !copied.some((c) => f === c || f.startsWith(`${c}/`)) || dockerignored(f, ignore));
    assert.deepEqual(missing, [], 'read by tsc in the build stage but not in it');
  });

  test(`${name} image: the build stage's bundle builds, and every package it leaves outside is a production dependency`, () => {
    const esbuild = buildScript(image).split('&&').map((part) => part.trim()).find((part) => part.startsWith('esbuild '));
    assert.ok(esbuild, 'the build script bundles with esbuild');
    const result = spawnSync('sh', ['-c', esbuild], {
      cwd: join(ROOT, image.dir),
      env: { ...process.env, PATH: `${join(ROOT, 'node_modules', '.bin')}${delimiter}${process.env.PATH}` },
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    const bundle = read(image.bundle);
    const imports = /(?:^|\n)import\s[^;]*?from\s*"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)|\brequire\(\s*"([^"]+)"\s*\)/g;
    const specifiers = new Set([...bundle.matchAll(imports)].map((m) => m[1] ?? m[2] ?? m[3]));
    const bare = [...specifiers].filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s));
    assert.ok(bare.length > 0, 'expected npm packages outside the bundle');
    const runtime = runtimePackages();
    assert.ok(runtime.has('ioredis') && !runtime.has('esbuild'), 'the lockfile tells production from development packages');
    assert.deepEqual(bare.map(packageOf).filter((p) => !runtime.has(p)), [], 'imported by the bundle but not installed by npm ci --omit=dev');
  });
}

/** Starts a bundle as the image does (`node main.js`, the environment only), and returns how to stop it. */
function startBundle(bundle: string, env: Record<string, string>) {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(FTP_|WORKER_|REDIS_URL$)/.test(k)) clean[k] = v;
  const child = spawn(process.execPath, [join(ROOT, bundle)], { env: { ...clean, NODE_ENV: 'production', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    output: () => output,
    exited,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, output: () => string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${timeoutMs} ms; output:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const status = async (url: string) => (await fetch(url)).status;
const greeting = (port: number) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('data', (d) => {
      resolve(d.toString('latin1'));
      socket.end();
    });
    socket.once('error', reject);
  });

test('the edge bundle starts like the image (control greeting, SSH greeting, /readyz) and exits 0 on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-edge-'));
  temp.push(dir);
  const port = await freeBlock(4, ['127.0.0.1']);
  const [admin, passive, sftp] = [port + 1, port + 2, port + 3];
  const edge = startBundle(IMAGES.edge.bundle, {
    FTP_HOST: '127.0.0.1',
    FTP_PORT: String(port),
    FTP_PASV_RANGE: `${passive}-${passive}`,
    FTP_ADMIN_HOST: '127.0.0.1',
    FTP_ADMIN_PORT: String(admin),
    FTP_RELAY_PORT: '0',
    // Never the default 2222, which another edge on this machine may hold.
    FTP_SFTP_PORT: String(sftp),
    FTP_DATA_DIR: join(dir, 'files'),
    FTP_USERS_FILE: join(dir, 'users.yaml'),
    FTP_TLS_DIR: join(dir, 'tls'),
    REDIS_URL,
    FTP_REDIS_PREFIX: prefix,
  });
  try {
    await until('readiness', async () => ((await status(`http://127.0.0.1:${admin}/readyz`)) === 200 ? true : undefined), edge.output);
    assert.match(await greeting(port), /^220 /);
    // Once the edge reads FTP_SFTP_PORT, the bundle (with ssh2 outside or inside it) must serve SSH too.
    if ('sftpPort' in edgeDefaults) assert.match(await greeting(sftp), /^SSH-2\.0-/);
  } finally {
    assert.equal(await edge.stop(), 0, edge.output());
  }
  assert.match(edge.output(), /"msg":"stopped"/);
});

test('the worker bundle starts like the image (/healthz, /readyz) and exits 0 on SIGTERM', async () => {
  const admin = await freeBlock(1, ['127.0.0.1']);
  const worker = startBundle(IMAGES.worker.bundle, {
    REDIS_URL,
    FTP_REDIS_PREFIX: prefix,
    FTP_DATA_DIR: mkdtempSync(join(tmpdir(), 'deploy-worker-')),
    WORKER_ADMIN_HOST: '127.0.0.1',
    WORKER_ADMIN_PORT: String(admin),
  });
  try {
    await until('readiness', async () => ((await status(`http://127.0.0.1:${admin}/readyz`)) === 200 ? true : undefined), worker.output);
    assert.equal(await status(`http://127.0.0.1:${admin}/healthz`), 200);
  } finally {
    assert.equal(await worker.stop(), 0, worker.output());
  }
  assert.match(worker.output(), /"msg":"stopped"/);
});

test('a Dockerfile that breaks a promise is caught: unpinned base, root user, downloads, shell-form entrypoint, wrong ports', () => {
  const text = read(IMAGES.edge.dir + '/Dockerfile')
    .replace('FROM node:20-bookworm-slim AS runtime', 'FROM node AS runtime')
    .replace('USER 1000:1000', 'USER root')
    .replace('WORKDIR /app\n', 'WORKDIR /app\nADD https://example.com/app.tgz /app/\n')
    .replace('ENTRYPOINT ["node", "/app/main.js"]', 'ENTRYPOINT node /app/main.js')
    .replace('EXPOSE 2121 2122 2222 9090 30000-30099', 'EXPOSE 21 9090');
  const problems = imageProblems(text, IMAGES.edge).join('\n');
  assert.match(problems, /FROM node: pin the base image/);
  assert.match(problems, /USER root: run as a non-root user/);
  assert.match(problems, /ADD https:\/\/example\.com\/app\.tgz/);
  assert.match(problems, /ENTRYPOINT in exec form/);
  assert.match(problems, /EXPOSE 21 9090: expected 2121 2122 2222 30000-30099 9090/);
  assert.match(lintProblems(text.replace('EXPOSE 21 9090', 'EXPOSE twenty-one')).join('\n'), /Invalid containerPort: twenty-one/);
  assert.match(lintProblems(`${text}\nRUNN echo\n`).join('\n'), /Unknown instruction: RUNN/);
});

test('the build context leaves out dependencies, build output and local state', () => {
  const ignored = read('.dockerignore').split('\n').map((l) => l.trim());
  for (const entry of ['**/node_modules', '**/dist', '.git', 'data', 'users.yaml', 'tls']) assert.ok(ignored.includes(entry), `.dockerignore lacks ${entry}`);
});
