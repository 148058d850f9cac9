// Builds the native addon with node-gyp (npm's own, which npm puts on PATH for install scripts), and never fails the
// install: without a compiler the server runs on streams. Where the running node's headers are installed beside it
// (Debian/NodeSource: /usr/include/node), they are used, so no download is needed.
//   node tools/build.mjs          build, warn on failure (npm install / npm ci)
//   node tools/build.mjs --strict build, exit 1 on failure
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const strict = process.argv.includes('--strict');

function localHeaders() {
  const prefix = dirname(dirname(process.execPath));
  const versionH = join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(versionH) || !existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return undefined;
  const text = readFileSync(versionH, 'utf8');
  const part = (name) => new RegExp(`#define ${name} (\\d+)`).exec(text)?.[1];
  const version = `v${part('NODE_MAJOR_VERSION')}.${part('NODE_MINOR_VERSION')}.${part('NODE_PATCH_VERSION')}`;
  return version === process.version ? prefix : undefined;
}

const args = ['rebuild'];
const nodedir = process.env.npm_config_nodedir ? undefined : localHeaders();
if (nodedir) args.push(`--nodedir=${nodedir}`);
const gyp = process.env.npm_config_node_gyp;
const result = gyp ? spawnSync(process.execPath, [gyp, ...args], { cwd: here, stdio: 'inherit' }) : spawnSync('node-gyp', args, { cwd: here, stdio: 'inherit', shell: true });
if (result.status === 0) process.exit(0);
const message = '@ftp/zero-copy: the native addon was not built (python3, make and g++ are needed): FTP transfers will use streams';
if (strict) {
  console.error(message);
  process.exit(1);
}
console.warn(message);
