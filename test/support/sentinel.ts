// A real Redis Sentinel group on loopback for failover tests: a primary, a replica and three sentinels, all Debian's
// redis-server (the same binary runs as a sentinel with --sentinel), nothing saved to disk.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findBinary, freeBlock, makeTempDir, removeTempDir, startProcess, stopProcess, waitFor, type Proc } from './processes';

export interface SentinelGroup {
  /** REDIS_URL in the Sentinel form: `redis+sentinel://127.0.0.1:p1,…/<name>`. */
  url: string;
  name: string;
  /** Ports of the two data servers (which one is primary changes with each failover) and of the sentinels. */
  serverPorts: [number, number];
  sentinelPorts: number[];
  /** Port of the server the sentinels call primary now. */
  primaryPort(): Promise<number>;
  /** SIGKILLs the current primary (no shutdown, no save): what a crash or a lost node looks like. Returns its port. */
  killPrimary(): Promise<number>;
  /** SIGKILLs the data server on `port`, whatever its role. */
  kill(port: number): Promise<void>;
  /** Starts a killed server again on its port, as a replica of the current primary (a failed node coming back). */
  restart(port: number): Promise<void>;
  /** Resolves once the sentinels name a primary other than `port` and it answers as master; returns its port. */
  waitForNewPrimary(oldPort: number, timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

export interface SentinelOptions {
  /** Sentinel's down-after-milliseconds: how long a silent primary takes to be declared down. Default 1000. */
  downAfterMs?: number;
  /** Sentinel's failover-timeout. Default 5000. */
  failoverTimeoutMs?: number;
}

const NAME = 'ftpmain';

export async function startSentinelGroup(options: SentinelOptions = {}): Promise<SentinelGroup> {
  const binary = findBinary('redis-server', 'apt-get install redis-server');
  const dir = makeTempDir('ftp-sentinel-');
  const first = await freeBlock(5, ['127.0.0.1']);
  const serverPorts: [number, number] = [first, first + 1];
  const sentinelPorts = [first + 2, first + 3, first + 4];
  const procs = new Map<number, Proc>();
  const ask = async <T>(port: number, use: (redis: Redis) => Promise<T>): Promise<T> => {
    // commandTimeout: a port that some other program took answers nothing Redis understands; never wait on it.
    const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500, commandTimeout: 2000 });
    redis.on('error', () => {}); // a refused connect rejects connect() below
    try {
      await redis.connect();
      return await use(redis);
    } finally {
      redis.disconnect();
    }
  };
  const role = (port: number) => ask(port, async (r) => String(((await r.call('ROLE')) as unknown[])[0]));

  const startServer = async (port: number, replicaOf?: number) => {
    // A folder each: a replica's full sync writes its temporary RDB file there.
    const own = join(dir, `server-${port}`);
    mkdirSync(own, { recursive: true });
    // No 5 s wait before a diskless full sync: a replica is in sync within milliseconds.
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', own, '--repl-diskless-sync-delay', '0'];
    if (replicaOf) args.push('--replicaof', '127.0.0.1', String(replicaOf));
    const proc = startProcess(`redis-server :${port}`, binary, args);
    procs.set(port, proc);
    await waitFor(`redis-server on ${port}`, proc, async () => (await ask(port, (r) => r.ping())) === 'PONG', { timeoutMs: 10_000 });
    if (replicaOf) {
      const linked = async () => /master_link_status:up/.test(await ask(port, (r) => r.info('replication')));
      await waitFor(`redis-server on ${port} in sync with ${replicaOf}`, proc, linked, { timeoutMs: 10_000 });
    }
  };
  const startSentinel = async (port: number) => {
    const conf = join(dir, `sentinel-${port}.conf`);
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${NAME} 127.0.0.1 ${serverPorts[0]} 2`,
        `sentinel down-after-milliseconds ${NAME} ${options.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${NAME} ${options.failoverTimeoutMs ?? 5000}`,
        `sentinel parallel-syncs ${NAME} 1`,
        '',
      ].join('\n'),
    );
    const proc = startProcess(`redis-sentinel :${port}`, binary, [conf, '--sentinel']);
    procs.set(port, proc);
    await waitFor(`sentinel on ${port}`, proc, async () => (await ask(port, (r) => r.ping())) === 'PONG', { timeoutMs: 10_000 });
  };
  const primaryPort = async () => {
    const [, port] = (await ask(sentinelPorts[0], (r) => r.call('SENTINEL', 'get-master-addr-by-name', NAME))) as [string, string];
    return Number(port);
  };

  try {
    await startServer(serverPorts[0]);
    await startServer(serverPorts[1], serverPorts[0]);
    for (const port of sentinelPorts) await startSentinel(port);
    // Ready when every sentinel knows the replica and the other sentinels (a failover needs a quorum that can vote).
    const anyProc = procs.get(sentinelPorts[0])!;
    await waitFor(
      'sentinels that know the replica and each other',
      anyProc,
      async () => {
        for (const port of sentinelPorts) {
          const [replicas, sentinels] = await ask(port, async (r) => [
            (await r.call('SENTINEL', 'replicas', NAME)) as unknown[],
            (await r.call('SENTINEL', 'sentinels', NAME)) as unknown[],
          ]);
          if (replicas.length < 1 || sentinels.length < 2) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, pollMs: 200 },
    );
  } catch (err) {
    await Promise.all([...procs.values()].map((p) => stopProcess(p, 'SIGKILL')));
    removeTempDir(dir);
    throw err;
  }

  const group: SentinelGroup = {
    url: `redis+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${NAME}`,
    name: NAME,
    serverPorts,
    sentinelPorts,
    primaryPort,
    async killPrimary() {
      const port = await primaryPort();
      await group.kill(port);
      return port;
    },
    async kill(port) {
      const proc = procs.get(port);
      if (proc) await stopProcess(proc, 'SIGKILL', 0);
    },
    async restart(port) {
      await startServer(port, await primaryPort());
    },
    async waitForNewPrimary(oldPort, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const port = await primaryPort().catch(() => oldPort);
        if (port !== oldPort && (await role(port).catch(() => '')) === 'master') return port;
        if (Date.now() > deadline) throw new Error(`no new primary within ${timeoutMs} ms (still ${port})`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async close() {
      await Promise.all([...procs.values()].map((p) => stopProcess(p, 'SIGKILL', 0)));
      removeTempDir(dir);
    },
  };
  return group;
}
