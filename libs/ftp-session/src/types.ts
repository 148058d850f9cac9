import type { Socket } from 'node:net';
import type { PassiveLease } from '@ftp/cluster-state';
import type { User } from '@ftp/identity';
import type { CoreDeps, CoreSettings } from '@ftp/session-core';
import type { Storage } from '@ftp/storage';
import type { Logger } from '@ftp/telemetry';
import type { ZeroCopy } from '@ftp/zero-copy';
import type { PassiveListeners } from './passiveListeners';
import type { Session } from './state';
import type { TlsProvider } from './tls';

/** The server settings a session needs (a subset of FtpConfig, so the session does not depend on config loading). */
export interface SessionSettings extends CoreSettings {
  /** Seconds from connect to a successful login (traffic does not extend it). */
  loginGraceTime: number;
  /** host:port where peers relay this replica's data connections; '' when the relay is off. */
  relayAddress: string;
  banner: string;
  pasvAddress: string;
  idleTimeout: number;
  dataConnectTimeout: number;
  stallTimeout: number;
  allowForeignActive: boolean;
  allowForeignData: boolean;
  tlsRequireControl: boolean;
  tlsRequireData: boolean;
}

/** What a session is wired to. Every part is an interface, so tests and later deployments swap implementations. */
export interface SessionDeps extends CoreDeps {
  settings: SessionSettings;
  storageFor(user: User): Storage;
  passive: PassiveListeners;
  /** Absent when TLS is off: AUTH then answers 502. */
  tls?: TlsProvider;
  log: Logger;
  /** Open sessions of this process, so that a drain can tell idle ones from those mid-transfer. */
  live: Set<Session>;
  /**
   * Passive leases whose release failed (the cluster state was away): the heartbeat retries them, so the port is free
   * for that client again soon after Redis is back instead of at the lease's TTL.
   */
  unreleased: Set<PassiveLease>;
  /**
   * The zero-copy addon (FTP_ZERO_COPY=auto and built): clear-text binary transfers of the local storage move their
   * bytes with sendfile/splice off the event loop. Absent: everything moves through streams.
   */
  zeroCopy?: ZeroCopy | null;
}

/** A prepared data channel: a passive lease with its waiter, or an active target. */
export type PendingData =
  | { kind: 'passive'; port: number; connect(timeoutMs: number): Promise<Socket>; dispose(): void; relayed(): boolean; relayEnd(): string | undefined }
  | { kind: 'active'; host: string; port: number };

/** How a data connection was made: the client dialled us, we dialled the client, or a peer replica relayed the client. */
export type DataMode = 'passive' | 'active' | 'relayed';
