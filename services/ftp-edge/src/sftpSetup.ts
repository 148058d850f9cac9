import { createServer, type AddressInfo, type Server } from 'node:net';
import type { FtpConfig } from '@ftp/config';
import type { User } from '@ftp/identity';
import { resolvePeer, type createProxyTrust, type CoreDeps } from '@ftp/session-core';
import { hostKeyEntries, loadHostKeys, runSshConnection, type SshSession } from '@ftp/sftp-session';
import type { Storage } from '@ftp/storage';
import type { Logger } from '@ftp/telemetry';

export interface SftpListener {
  port: number;
  live: Set<SshSession>;
  /** Stops accepting; idle sessions are disconnected now, busy ones when their transfers end or at the deadline. */
  close(deadlineMs: number): Promise<void>;
}

/**
 * The SFTP front door of this edge: host keys (the same on every replica, or clients that round-robin see "host key
 * changed"), the SSH listener on FTP_SFTP_PORT behind the same PROXY-protocol trust as FTP, and its drain.
 */
export async function startSftpListener(
  config: FtpConfig,
  core: CoreDeps,
  storageFor: (user: User) => Storage,
  trustsProxy: ReturnType<typeof createProxyTrust>,
  log: Logger,
): Promise<SftpListener> {
  const hostKeys = await loadHostKeys(config.sftpHostKeys, config.tlsDir);
  for (const hostKey of hostKeys) {
    // What `ssh-keygen -lf` prints and what a client shows at first contact.
    log.info({ type: hostKey.key.type, fingerprint: hostKey.fingerprint, file: hostKey.file }, 'SSH host key fingerprint');
  }
  const live = new Set<SshSession>();
  const deps = {
    ...core,
    settings: { ...core.settings, loginGraceTime: config.loginGraceTime, idleTimeout: config.idleTimeout, maxAuthTries: config.sftpMaxAuthTries },
    storageFor,
    log,
    hostKeys: hostKeyEntries(hostKeys.map((h) => h.key)),
    live,
  };
  const server: Server = createServer({ noDelay: true }, async (socket) => {
    socket.on('error', () => {}); // a client gone before its session starts is nothing to report
    const peer = await resolvePeer(socket, trustsProxy, log);
    if (!peer) return;
    trustsProxy.headerReceived(socket, peer);
    runSshConnection(socket, peer, deps).catch((err) => log.error({ err }, 'SFTP session crashed'));
  });
  server.on('error', (err) => log.error({ err }, 'SFTP listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: config.sftpHost || config.host, port: config.sftpPort, backlog: 1024 }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    live,
    async close(deadlineMs) {
      server.close();
      const deadline = Date.now() + deadlineMs;
      while (live.size > 0 && Date.now() < deadline) {
        for (const session of live) if (!session.sftp || session.sftp.openTransfers() === 0) session.disconnect('server shutting down');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      for (const session of live) {
        log.warn({ session: session.id }, 'drain deadline passed: closing SFTP session mid-transfer');
        session.disconnect('server shutting down');
      }
    },
  };
}
