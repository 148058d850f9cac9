import { networkInterfaces } from 'node:os';
import { createMemoryClusterState, createRedisClusterState, parseRedisUrl, type ClusterState } from '@ftp/cluster-state';
import type { FtpConfig } from '@ftp/config';
import type { Logger } from '@ftp/telemetry';

/** How often Redis connection errors are logged while it stays away (ioredis reports every reconnect attempt). */
const ERROR_LOG_INTERVAL_MS = 10_000;

/** Redis-backed cluster state when REDIS_URL is set, else the in-memory one of a single node. */
export async function createClusterState(config: FtpConfig, log: Logger): Promise<ClusterState> {
  if (!config.redisUrl) return createMemoryClusterState({ pasvRange: config.pasvRange });
  const target = parseRedisUrl(config.redisUrl);
  const url = target.shown;
  const consequence =
    target.kind === 'sentinel'
      ? 'Redis primary unreachable: logins wait up to 10 s for the sentinels to promote a replica, then get 421'
      : 'Redis unreachable: new logins get 421 and /readyz fails until it is back';
  let lastLogged = 0;
  const cluster = await createRedisClusterState({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    pasvRange: config.pasvRange,
    onError: (err) => {
      if (Date.now() - lastLogged < ERROR_LOG_INTERVAL_MS) return;
      lastLogged = Date.now();
      log.error({ url, err: err.message }, consequence);
    },
  });
  if (!cluster.available()) log.error({ url }, 'Redis not reachable at start: retrying in the background');
  return cluster;
}

/** host:port where peers relay data connections to this replica; '' when there are no peers (in-memory state) or no relay port. */
export function relayAddress(config: FtpConfig, cluster: ClusterState): string {
  if (cluster.kind !== 'redis' || config.relayPort === 0) return '';
  const host = relayHost(config);
  return `${host.includes(':') ? `[${host}]` : host}:${config.relayPort}`;
}

/**
 * The address peers dial for the relay, which is also the only one the relay listener binds to: FTP_ADVERTISE_HOST
 * (a pod IP), never the wildcard FTP_HOST of a container, so the relay is not reachable on other interfaces.
 */
export function relayHost(config: FtpConfig): string {
  return config.advertiseHost || (isWildcard(config.host) ? firstExternalAddress() : config.host);
}

const isWildcard = (host: string) => host === '' || host === '0.0.0.0' || host === '::';

/** A wildcard bind says nothing peers can dial: take this machine's first non-loopback address (a pod's IP). */
function firstExternalAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (!address.internal && address.family === 'IPv4') return address.address;
  }
  return '127.0.0.1';
}
