import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ROOT_CONTEXT, SpanKind, trace, type Context, type Span } from '@opentelemetry/api';
import type { User } from '@ftp/identity';
import { admitSession, type CoreDeps, type LiveSession, type Peer } from '@ftp/session-core';
import type { Storage } from '@ftp/storage';
import { bindTraceContext, tracer, type Logger } from '@ftp/telemetry';
import ssh2, { type Algorithms, type Connection, type ParsedKey, type SFTPWrapper } from 'ssh2';
import { handleAuthentication, type AuthState } from './sshAuth';
import { DISCONNECT, sendDisconnect } from './ssh2Hooks';
import { transferHooks } from './transferEvents';
import { serveSftp } from './session';
import type { SftpSession } from './types';

const { Server } = ssh2;

/** The settings the SSH front door needs (a subset of the edge's configuration). */
export interface SshSettings {
  /** Seconds from connect to a successful login (sshd's LoginGraceTime). */
  loginGraceTime: number;
  /** Seconds without a byte either way before the connection is closed. */
  idleTimeout: number;
  /** Authentication attempts per connection (sshd's MaxAuthTries). */
  maxAuthTries: number;
}

/** What an SSH connection is wired to: the shared core's parts plus storage and the host keys. */
export interface SshDeps extends CoreDeps {
  settings: CoreDeps['settings'] & SshSettings;
  storageFor(user: User): Storage;
  log: Logger;
  /** Parsed once at start-up, as ssh2's Server takes them (`hostKeyEntries`); every replica must present the same. */
  hostKeys: { key: ParsedKey }[];
  /** Open SFTP sessions of this process (heartbeat, drain). */
  live: Set<SshSession>;
}

/** Who is at the other end (after any PROXY header, read by the core) and which server address they reached. */
export type SshPeer = Peer;

/** One SSH connection as the shared core sees it: a sibling of the FTP session on the same seams. */
export interface SshSession extends LiveSession {
  readonly protocol: 'sftp';
  closed: boolean;
  bytesIn: number;
  bytesOut: number;
  span: Span;
  /** The SFTP subsystem once it runs (one per connection). */
  sftp?: SftpSession;
  /** Ends the connection with an SSH disconnect (drain, limits) that tells the client `reason` (code: BY_APPLICATION). */
  disconnect(reason: string, code?: number): void;
}

/** After our SSH disconnect, how long the client gets to close its side before the socket is destroyed. */
const END_GRACE_MS = 5000;

// Modern algorithms only. ssh2 implements OpenSSH's strict key exchange (kex-strict-s-v00@openssh.com, the Terrapin
// fix), so ChaCha20-Poly1305 and the ETM MACs stay. No SHA-1 anywhere, no CBC. The encrypt-and-MAC SHA-2 MACs come
// last, for libssh2 before 1.11 (Debian 12's curl, PHP's ssh2), which has no ETM MAC and no GCM: with AES-CTR they are
// not what Terrapin attacks (CBC-ETM, ChaCha20), and ssh-audit only warns about them.
export const SSH_ALGORITHMS: Algorithms = {
  kex: [
    'curve25519-sha256',
    'curve25519-sha256@libssh.org',
    'ecdh-sha2-nistp256',
    'ecdh-sha2-nistp384',
    'ecdh-sha2-nistp521',
    'diffie-hellman-group16-sha512',
    'diffie-hellman-group18-sha512',
  ],
  serverHostKey: ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'],
  cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'],
  hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'],
  compress: ['none'],
};

/**
 * Serves one TCP connection on the SFTP port from admission to close. Admission (bans, limits, the pre-login cap)
 * happens before a byte of SSH is exchanged; then authentication against identity with the shared login bookkeeping,
 * then only the `sftp` subsystem on a `session` channel. Never throws.
 */
export async function runSshConnection(socket: Socket, peer: SshPeer, deps: SshDeps): Promise<void> {
  const id = randomUUID();
  const span = tracer.startSpan('sftp session', {
    kind: SpanKind.SERVER,
    root: true,
    attributes: {
      'sftp.session.id': id,
      'client.address': peer.address,
      'client.port': peer.port,
      'server.address': peer.serverAddress,
      'server.port': peer.serverPort,
      'network.transport': 'tcp',
    },
  });
  const traceContext: Context = trace.setSpan(ROOT_CONTEXT, span);
  const log = deps.log.child({ session: id, client: peer.address, protocol: 'sftp' });
  bindTraceContext(log, () => traceContext);
  let connection: Connection | undefined;
  const session: SshSession = {
    id,
    protocol: 'sftp',
    clientAddress: peer.address,
    log,
    currentContext: traceContext,
    startedAt: Date.now(),
    closed: false,
    bytesIn: 0,
    bytesOut: 0,
    span,
    progress() {
      // The newest open file is what the client works on now (sftp's get/put move one file at a time).
      const running = session.sftp?.transfers().at(-1);
      const transfer = running && { direction: running.direction, path: running.path, startedAt: running.startedAt.getTime(), bytes: running.bytes };
      return { protocol: 'sftp', transfer, bytesIn: session.bytesIn, bytesOut: session.bytesOut };
    },
    disconnect(reason, code = DISCONNECT.BY_APPLICATION) {
      if (session.closed) return;
      session.log.info({ reason }, 'closing SSH connection');
      if (!connection) return void socket.destroy();
      sendDisconnect(connection, code, reason);
      // A client that never closes its side must not keep the connection (and its slot) alive.
      setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
    },
  };
  const finished = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', (err) => log.debug({ err: err.message }, 'SSH connection error'));

  const admission = await admitSession(session, deps, session.startedAt);
  if (!admission.ok) {
    // Like sshd over MaxStartups: the connection is dropped before the SSH handshake (logged by the core).
    span.setAttribute('sftp.session.refused', admission.reason);
    socket.destroy();
    await finished;
    span.end();
    return;
  }
  deps.live.add(session);
  deps.metrics.sessionsActive.inc({ protocol: 'sftp' });

  // Login grace: from connect to a successful login, whatever the client sends meanwhile.
  const grace = setTimeout(() => {
    if (session.user || session.closed) return;
    log.info({ seconds: deps.settings.loginGraceTime }, 'login grace time over: closing');
    session.disconnect('login grace time over');
  }, deps.settings.loginGraceTime * 1000);
  socket.setTimeout(deps.settings.idleTimeout * 1000, () => {
    log.info('idle timeout: closing SSH connection');
    session.disconnect('idle timeout');
  });

  const server = new Server({ hostKeys: deps.hostKeys, algorithms: SSH_ALGORITHMS, ident: 'ftp-cluster' }, (client) => {
    connection = client;
    serveConnection(client, session, deps);
  });
  server.on('error', (err: Error) => log.warn({ err: err.message }, 'SSH protocol error: closing'));
  coalesceWrites(socket);
  server.injectSocket(socket);

  await finished;
  session.closed = true;
  clearTimeout(grace);
  await session.sftp?.close();
  deps.live.delete(session);
  deps.metrics.sessionsActive.dec({ protocol: 'sftp' });
  await deps.cluster.sessions.close(id).catch(() => deps.metrics.clusterStateErrors.inc());
  span.setAttributes({ 'sftp.session.bytes_in': session.bytesIn, 'sftp.session.bytes_out': session.bytesOut });
  span.end();
  log.debug('session closed');
}

function serveConnection(client: Connection, session: SshSession, deps: SshDeps) {
  const auth: AuthState = { attempts: 0, done: new Set() };
  client.on('error', (err: Error) => session.log.info({ err: err.message }, 'SSH connection failed'));
  client.on('authentication', (ctx) => void handleAuthentication(ctx, session, deps, auth));
  // Port forwarding, agent forwarding and X11 ask through global requests and channels of their own: all refused.
  client.on('request', (accept, reject, name) => {
    session.log.info({ request: name }, 'SSH global request refused');
    reject?.();
  });
  client.on('tcpip', (_accept, reject, info) => {
    session.log.info({ destination: `${info.destIP}:${info.destPort}` }, 'SSH port forwarding refused');
    reject();
  });
  client.on('openssh.streamlocal', (_accept, reject) => {
    session.log.info('SSH unix-socket forwarding refused');
    reject();
  });
  client.on('ready', () => {
    client.on('session', (accept) => {
      const channel = accept();
      channel.on('sftp', (acceptSftp, reject) => {
        if (session.sftp || !session.user) return reject();
        const sftp = acceptSftp();
        exitStatusOnEnd(sftp);
        const user = session.user;
        const storage = deps.storageFor(user);
        session.sftp = serveSftp(sftp, {
          user,
          storage,
          log: session.log,
          traceContext: session.currentContext,
          diskSpace: deps.diskSpace?.(user),
          ...transferHooks(session, deps, storage),
        });
      });
      const refuse = (what: string) => (_accept: unknown, reject: (() => void) | undefined, info?: { name?: string; command?: string }) => {
        session.log.info({ request: what, name: info?.name, command: info?.command }, 'SSH channel request refused: only the sftp subsystem is served');
        reject?.();
      };
      channel.on('exec', refuse('exec'));
      channel.on('shell', refuse('shell'));
      channel.on('pty', refuse('pty'));
      channel.on('x11', refuse('x11'));
      channel.on('auth-agent', refuse('auth-agent'));
      channel.on('subsystem', refuse('subsystem'));
      channel.on('env', refuse('env'));
    });
  });
}

/**
 * The host keys as ssh2's Server takes them. ssh2 (1.17) offers an RSA key as 'ssh-rsa' (SHA-1 signatures) too, at the
 * end of the list, whatever `serverHostKey` says. Given the RSA key once per SHA-2 algorithm, under that algorithm's
 * name, it offers exactly rsa-sha2-512 and rsa-sha2-256: it signs with the hash the negotiated name asks for, and the
 * public key blob stays 'ssh-rsa' (RFC 8332).
 */
export function hostKeyEntries(keys: ParsedKey[]): { key: ParsedKey }[] {
  return keys.flatMap((key) =>
    key.type === 'ssh-rsa' ? (['rsa-sha2-512', 'rsa-sha2-256'] as const).map((type) => ({ key: Object.create(key, { type: { value: type } }) as ParsedKey })) : [{ key }],
  );
}

interface SftpChannelInternals {
  end(): void;
  outgoing?: { id: number; state: string };
  _protocol?: { exitStatus?(channel: number, status: number): void };
}

/**
 * When the SFTP session ends, send exit-status 0 before closing the channel, as sshd's sftp-server does. ssh exits with
 * the channel's exit status (255 without one), and OpenSSH's scp, which runs SFTP through ssh, fails on that.
 */
function exitStatusOnEnd(sftp: SFTPWrapper) {
  const channel = sftp as unknown as SftpChannelInternals;
  const end = channel.end.bind(sftp);
  let sent = false;
  channel.end = () => {
    if (!sent && channel.outgoing?.state === 'open' && typeof channel._protocol?.exitStatus === 'function') {
      sent = true;
      channel._protocol.exitStatus(channel.outgoing.id, 0);
    }
    end();
  };
}

/**
 * ssh2 writes every SSH packet with its own socket.write (a 255 KiB READ reply is 8 packets of the client's 32 KiB):
 * corking the socket for the rest of the tick turns them into one writev system call.
 */
function coalesceWrites(socket: Socket) {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Socket['write'];
}
