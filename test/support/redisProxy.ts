import { startTcpProxy } from './tcpProxy';

/**
 * A TCP proxy in front of a real Redis, for outage tests (see startTcpProxy): `cut()` makes Redis vanish for the
 * client under test, `reopen()` brings it back on the same port. `url` is what that client uses.
 */
export async function startRedisProxy(redisUrl: string) {
  const target = new URL(redisUrl);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  return { ...proxy, url: `redis://127.0.0.1:${proxy.port}` };
}
