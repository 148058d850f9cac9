import type { Socket } from 'node:net';
import type { ClusterState, PassiveLease } from '@ftp/cluster-state';
import type { Identity, User } from '@ftp/identity';
import type { Storage } from '@ftp/storage';
import type { EdgeMetrics, Logger, Xferlog } from '@ftp/telemetry';
import type { UploadAbortedEvent, UploadEvent } from '@ftp/upload-events';
import type { PassiveListeners } from './passiveListeners';
import type { Session } from './session';
import type { TlsProvider } from './tls';

/** The server settings a session needs (a subset of FtpConfig, so the session does not depend on config loading). */
export interface SessionSettings {
  replicaId: string;
  /** host:port where peers relay this replica's data connections; '' when the relay is off. */
  relayAddress: string;
  banner: string;
  pasvAddress: string;
  maxSessions: number;
  maxSessionsPerUser: number;
  maxSessionsPerIp: number;
  banAfterFailures: number;
  banSeconds: number;
  idleTimeout: number;
  dataConnectTimeout: number;
  stallTimeout: number;
  allowForeignActive: boolean;
  allowForeignData: boolean;
  tlsRequireControl: boolean;
  tlsRequireData: boolean;
  /** Host folder of all user roots: upload events name files relative to it (storageKey). */
  dataDir: string;
  /** Hash uploads from offset 0 while receiving them, for the upload event. */
  uploadSha256: boolean;
}

/** Where finished uploads are announced (the post-upload job queue). Neither call throws. */
export interface UploadEvents {
  /** Awaited after the file is published and before the 226, so that no reply goes out for an unannounced upload. */
  publishCompleted(event: UploadEvent): Promise<void>;
  publishAborted(event: UploadAbortedEvent): Promise<void>;
}

/** What a session is wired to. Every part is an interface, so tests and later deployments swap implementations. */
export interface SessionDeps {
  settings: SessionSettings;
  identity: Identity;
  storageFor(user: User): Storage;
  cluster: ClusterState;
  passive: PassiveListeners;
  /** Absent when TLS is off: AUTH then answers 502. */
  tls?: TlsProvider;
  metrics: EdgeMetrics;
  log: Logger;
  /** Absent when upload events are off (no Redis, or FTP_UPLOAD_EVENTS=off). */
  uploads?: UploadEvents;
  /** Open sessions of this process, so that a drain can tell idle ones from those mid-transfer. */
  live: Set<Session>;
  /**
   * Passive leases whose release failed (the cluster state was away): the heartbeat retries them, so the port is free
   * for that client again soon after Redis is back instead of at the lease's TTL.
   */
  unreleased: Set<PassiveLease>;
  /** The xferlog audit stream (FTP_XFERLOG_FILE); absent when off. */
  xferlog?: Pick<Xferlog, 'write'>;
}

/** A prepared data channel: a passive lease with its waiter, or an active target. */
export type PendingData =
  | { kind: 'passive'; port: number; connect(timeoutMs: number): Promise<Socket>; dispose(): void; relayed(): boolean }
  | { kind: 'active'; host: string; port: number };

/** How a data connection was made: the client dialled us, we dialled the client, or a peer replica relayed the client. */
export type DataMode = 'passive' | 'active' | 'relayed';
