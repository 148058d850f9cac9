import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import type { Options } from './scenario';

/**
 * Where the generator connects, and the guard that keeps a load tool off the wrong host: only loopback and the test
 * network namespaces' range (10.200.0.0/16) unless `--allow-remote HOST` names the host.
 */

export interface Target {
  host: string;
  port: number;
  sftpPort: number;
  user?: string;
  password?: string;
  keyFile?: string;
}

/** The environment wins over the scenario file, which wins over the defaults (`npm start`'s ports). */
export function resolveTarget(fromFile: Options['target'], env: NodeJS.ProcessEnv): Target {
  const port = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined || value === '') return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}: "${value}" is not a port`);
    return n;
  };
  const f = fromFile ?? {};
  return {
    host: env.FTP_HOST || f.host || '127.0.0.1',
    port: port('FTP_PORT', env.FTP_PORT, f.port ?? 2121),
    sftpPort: port('SFTP_PORT', env.SFTP_PORT, f.sftpPort ?? 2222),
    user: env.FTP_USER || f.user,
    password: env.FTP_PASSWORD || f.password,
    keyFile: env.FTP_KEY_FILE || f.keyFile,
  };
}

const SAFE = new BlockList();
SAFE.addSubnet('127.0.0.0', 8, 'ipv4');
SAFE.addSubnet('10.200.0.0', 16, 'ipv4');
SAFE.addAddress('::1', 'ipv6');

export function isSafeAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped ? mapped[1] : address;
  const family = isIP(plain);
  return family !== 0 && SAFE.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Resolves `host` and refuses it unless every address is loopback or in 10.200.0.0/16, or `allowed` names the host
 * (or one of its addresses). Returns the addresses it resolved to.
 */
export async function checkTarget(host: string, allowed: string[], resolve = (h: string) => lookup(h, { all: true })): Promise<string[]> {
  const addresses = isIP(host) ? [host] : (await resolve(host)).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`target ${host}: resolves to no address`);
  const named = new Set(allowed.map((a) => a.toLowerCase()));
  if (named.has(host.toLowerCase()) || addresses.every((a) => isSafeAddress(a) || named.has(a.toLowerCase()))) return addresses;
  const remote = addresses.filter((a) => !isSafeAddress(a));
  throw new Error(
    `target ${host} (${remote.join(', ')}) is neither loopback nor in the test networks (10.200.0.0/16): ` +
      `refusing to load it; pass --allow-remote ${host} if you mean it`,
  );
}
