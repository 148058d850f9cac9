import { mkdir } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { ClusterState } from '@ftp/cluster-state';
import type { FtpConfig } from '@ftp/config';
import { limitsOf, type User, type UserStore } from '@ftp/identity';
import {
  createPassiveListeners,
  relayToOwner,
  retryReleases,
  runSession,
  startTls,
  type Session,
  type SessionDeps,
} from '@ftp/session';
import { createProxyTrust, localShares, quotaDiskSpace, resolvePeer, startHeartbeat, withLimits } from '@ftp/session-core';
import type { Storage } from '@ftp/storage';
import { createEdgeMetrics, createXferlog, type EdgeMetrics, type Logger } from '@ftp/telemetry';
import { createUploadPublisher } from '@ftp/upload-events';
import { loadZeroCopy, type ZeroCopy } from '@ftp/zero-copy';
import { startAdminServer, startHaproxyAgent } from './admin';
import type { ApiServer } from './api/server';
import { startAdminApi } from './apiSetup';
import { createClusterState, relayAddress, relayHost } from './clusterSetup';
import { startSftpListener } from './sftpSetup';
import { createStorageSetup } from './storageSetup';
import { endSessions, listenForKicks, type LocalSessions } from './kicks';
import { createTlsProvider } from './tlsSetup';
import { createUserStore } from './userStoreSetup';

export interface Edge {
  /** Bound control port (useful when FTP_PORT was 0 in tests). */
  port: number;
  /** Bound implicit FTPS port, 0 when off. */
  implicitPort: number;
  /** Bound SFTP port, 0 when off. */
  sftpPort: number;
  adminPort: number;
  /** Bound admin REST API port, 0 when off (FTP_API_PORT). */
  apiPort: number;
  metrics: EdgeMetrics;
  cluster: ClusterState;
  /** Where users come from (FTP_USER_STORE); the admin API reads and writes users through it. */
  userStore: UserStore;
  /** Set when this start created the users file: the one-time password of `demo`. */
  createdUser?: { name: string; password: string };
  /** Stop accepting, let transfers run until the deadline, 421 to idle sessions, then release everything. */
  close(deadlineMs?: number): Promise<void>;
  /** Reopens the xferlog file (SIGHUP, after log rotation). */
  reopenLogs(): void;
}

export interface EdgeOptions {
  config: FtpConfig;
  log: Logger;
  /** Replaces the storage backend (tests use it to inject faults such as a full disk). */
  storageFor?: (user: User) => Storage;
  /** Replaces the zero-copy addon FTP_ZERO_COPY=auto loads (tests: null runs as if it had not been built). */
  zeroCopy?: ZeroCopy | null;
}

/** Wires the parts into one running edge process. Each resource registers how it closes; close() runs them in reverse. */
export async function startEdge({ config, log, storageFor, zeroCopy: givenZeroCopy }: EdgeOptions): Promise<Edge> {
  const closers: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch((err) => log.error({ err }, 'close failed'));
  };
  try {
    await mkdir(config.dataDir, { recursive: true });
    const { store: identity, createdUser } = await createUserStore(config, log);
    closers.push(() => identity.close());

    const cluster = await createClusterState(config, log);
    closers.push(() => cluster.close());
    const metrics = createEdgeMetrics({
      bansActive: () => cluster.bans.active(),
      clusterStateUp: () => cluster.available(),
      userStore: () => identity.health(),
      perUser: config.metricsUserLabels,
    });
    const xferlog = config.xferlogFile
      ? createXferlog(config.xferlogFile, {
          onDrop: (reason) => {
            metrics.xferlogDropped.inc();
            dropLog(reason);
          },
        })
      : undefined;
    // After the drain (every closer runs after it): the last transfers' lines are in.
    if (xferlog) closers.push(() => xferlog.close());
    let lastDropLogged = 0;
    const dropLog = (reason: string) => {
      if (Date.now() - lastDropLogged < 10_000) return; // one line per 10 s while the file stays unwritable
      lastDropLogged = Date.now();
      log.error({ file: config.xferlogFile, reason }, 'xferlog line dropped');
    };
    // Upload events go through a BullMQ queue, so only with Redis: the embedded default stays Redis-free.
    const uploads =
      config.redisUrl && config.uploadEvents !== 'off'
        ? createUploadPublisher({
            redisUrl: config.redisUrl,
            redisPrefix: config.redisPrefix,
            log,
            events: config.uploadEvents,
            journalDir: config.outboxDir || undefined,
            onOutcome: (result, pending) => {
              metrics.uploadEventsTotal.inc({ result });
              metrics.uploadEventsPending.set(pending);
            },
          })
        : undefined;
    // Closed after the drain (every closer runs after it): the last uploads' events are out, the outbox gets flushed.
    if (uploads) closers.push(() => uploads.close());
    const trustsProxy = createProxyTrust(config.proxyProtocolFrom, { log });
    const relay = relayAddress(config, cluster);
    const zeroCopy = config.zeroCopy === 'off' ? null : givenZeroCopy !== undefined ? givenZeroCopy : loadZeroCopy({
      onUnavailable: (reason) => log.warn({ reason }, 'zero-copy transfers unavailable (FTP_ZERO_COPY=auto): FTP data moves through streams'),
    });

    const passive = createPassiveListeners({
      host: config.host,
      range: config.pasvRange,
      log,
      trustsProxy,
      relay: relay ? (socket, port, peer) => relayToOwner(socket, port, peer, { cluster, replicaId: config.replicaId, metrics, log, zeroCopy }) : undefined,
      relayPort: relay ? config.relayPort : 0,
      relayHost: relay ? relayHost(config) : undefined,
      onRelayReceived: () => metrics.relayedConnections.inc({ side: 'received' }),
      onPeer: trustsProxy.headerReceived,
    });
    // Data connections relayed for other replicas' sessions may run until the drain's deadline, not past it.
    let drainEndsAt = 0;
    closers.push(() => passive.close(drainEndsAt ? Math.max(0, drainEndsAt - Date.now()) : undefined));
    await passive.start();

    const tls = config.tlsEnabled ? await createTlsProvider(config, log) : undefined;
    if (tls) closers.push(() => tls.close());

    const storage = await createStorageSetup(config, log);
    closers.push(() => storage.close());
    const baseStorageFor = storageFor ?? ((user: User) => storage.storageAt(user.root));
    // A session's limits as the user store holds them now, so a change holds for the session's next transfer.
    const limitsNow = (user: User) => () => identity.limitsNow?.(user.name) ?? limitsOf(user);
    const limitsContext = { budgets: cluster.budgets, usage: cluster.usage, replicaId: config.replicaId, metrics, localShares: localShares() };
    const live = new Set<Session>();
    const deps: SessionDeps = {
      settings: { ...config, relayAddress: relay },
      identity,
      storageFor: (user) => withLimits(baseStorageFor(user), user, { ...limitsContext, log: log.child({ user: user.name }) }, limitsNow(user)),
      diskSpace: (user) => quotaDiskSpace(storage.diskAt(user.root), user.name, limitsNow(user), cluster.usage),
      cluster,
      passive,
      tls,
      metrics,
      log,
      live,
      unreleased: new Set(),
      uploads,
      xferlog,
      zeroCopy,
    };

    const sftp = config.sftpPort > 0 ? await startSftpListener(config, deps, deps.storageFor, trustsProxy, log) : undefined;
    const everySession = () => (sftp ? [...live, ...sftp.live] : live);
    closers.push(
      startHeartbeat(everySession, deps, {
        intervalMs: SESSION_HEARTBEAT_MS,
        progressMs: config.transferProgressSeconds * 1000,
        alsoEachTick: () => void retryReleases(deps),
      }),
    );
    // Kicks (the admin API ending sessions) for this replica's sessions, from any replica's API or this one's.
    const localSessions = (): LocalSessions => ({ ftp: live, sftp: sftp?.live ?? [] });
    closers.push(await listenForKicks(cluster, config.replicaId, localSessions, log));

    let accepting = true;
    const control: Server = createServer({ noDelay: true }, async (socket) => {
      socket.on('error', () => {}); // a client gone before its session starts is nothing to report
      const peer = await resolvePeer(socket, trustsProxy, log);
      if (!peer) return;
      trustsProxy.headerReceived(socket, peer);
      runSession(socket, deps, { peer }).catch((err) => log.error({ err }, 'session crashed'));
    });
    control.on('error', (err) => log.error({ err }, 'control listener error'));
    await listen(control, config.host, config.port);
    closers.push(() => new Promise<void>((resolve) => control.close(() => resolve())));

    let implicit: Server | undefined;
    if (tls && config.implicitTlsPort > 0) {
      implicit = createServer({ noDelay: true }, async (raw) => {
        raw.on('error', () => {});
        const peer = await resolvePeer(raw, trustsProxy, log);
        if (!peer) return;
        trustsProxy.headerReceived(raw, peer);
        startTls(raw, tls).then(
          (secure) => runSession(secure, deps, { implicitTls: true, peer }).catch((err) => log.error({ err }, 'session crashed')),
          (err: Error) => log.warn({ client: raw.remoteAddress, err: err.message }, 'implicit TLS handshake failed: closing'),
        );
      });
      implicit.on('error', (err) => log.error({ err }, 'implicit TLS listener error'));
      await listen(implicit, config.host, config.implicitTlsPort);
      closers.push(() => new Promise<void>((resolve) => implicit!.close(() => resolve())));
    }

    let api: ApiServer | undefined;
    if (config.apiPort > 0) {
      api = await startAdminApi(
        config,
        {
          store: identity,
          cluster,
          storageAt: (root: string) => storage.storageAt(root),
          endLocal: (kick) => endSessions(kick, localSessions(), log),
          banPolicy: { threshold: config.banAfterFailures, banSeconds: config.banSeconds },
        },
        log,
      );
      closers.push(() => api!.close());
    }

    // A user store that is away does not make the replica unready: logins go on from what it last loaded.
    // Object storage that refuses our credentials does (storage.healthy()): no transfer could work.
    const ready = () => accepting && cluster.available() && storage.healthy();
    let admin: HttpServer | undefined;
    if (config.adminPort > 0) {
      admin = await startAdminServer({
        host: config.adminHost,
        port: config.adminPort,
        registry: metrics.registry,
        ready,
        details: () => [`user store: ${identity.health().detail}`, ...(storage.s3 ? [`object storage: ${storage.healthDetail()}`] : [])],
      });
      closers.push(() => new Promise<void>((resolve) => admin!.close(() => resolve())));
    }
    if (config.agentPort > 0) {
      const agent = await startHaproxyAgent({ host: config.adminHost, port: config.agentPort, ready });
      closers.push(() => new Promise<void>((resolve) => agent.close(() => resolve())));
    }

    const port = (control.address() as AddressInfo).port;
    log.info(
      {
        host: config.host,
        port,
        pasv: config.pasvRange,
        dataDir: config.dataDir,
        cluster: cluster.kind,
        userStore: identity.backend,
        relay: relay || 'off',
        replica: config.replicaId,
        sftp: sftp ? `${config.sftpHost || config.host}:${sftp.port}` : 'off',
        uploadEvents: uploads ? config.uploadEvents : 'off',
        xferlog: config.xferlogFile || 'off',
        zeroCopy: zeroCopy ? 'sendfile/splice' : 'off',
        api: api ? `${config.apiHost}:${api.port}` : 'off',
      },
      'FTP edge listening',
    );
    return {
      port,
      adminPort: admin ? (admin.address() as AddressInfo).port : 0,
      apiPort: api?.port ?? 0,
      implicitPort: implicit ? (implicit.address() as AddressInfo).port : 0,
      sftpPort: sftp?.port ?? 0,
      metrics,
      cluster,
      userStore: identity,
      createdUser,
      reopenLogs() {
        xferlog?.reopen();
      },
      async close(deadlineMs = 30_000) {
        accepting = false;
        drainEndsAt = Date.now() + deadlineMs;
        control.close();
        implicit?.close();
        await Promise.all([drain(live, deadlineMs, log), sftp?.close(deadlineMs)]);
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Well inside the Redis session records' 60 s TTL, so two lost heartbeats do not drop a live session. */
const SESSION_HEARTBEAT_MS = 15_000;

function listen(server: Server, host: string, port: number) {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 1024 }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}

/** Idle sessions get 421 now; sessions mid-transfer get it when their transfer ends, or at the deadline. */
async function drain(live: Set<Session>, deadlineMs: number, log: Logger) {
  const deadline = Date.now() + deadlineMs;
  if (live.size > 0) log.info({ sessions: live.size, deadlineMs }, 'draining sessions');
  while (live.size > 0 && Date.now() < deadline) {
    for (const session of live) {
      if (!session.transfer && !session.closed) {
        session.reply(421, 'Server shutting down, please reconnect');
        session.end();
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const session of live) {
    log.warn({ session: session.id }, 'drain deadline passed: closing session mid-transfer');
    session.socket.destroy();
  }
}
