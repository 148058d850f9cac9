import type { Context } from '@opentelemetry/api';
import type { ClusterState } from '@ftp/cluster-state';
import type { Identity, User } from '@ftp/identity';
import type { EdgeMetrics, Logger, Xferlog } from '@ftp/telemetry';
import type { UploadAbortedEvent, UploadEvent } from '@ftp/upload-events';
import type { DiskSpace } from './limits/space';

/** The front door a session came through: FTP in clear, FTP over TLS, or SFTP over SSH. */
export type Protocol = 'ftp' | 'ftps' | 'sftp';

/**
 * What the shared session core reads and changes of a session. The FTP and the SFTP session each satisfy it; the
 * core never sees a socket, a reply code or an SSH message.
 */
export interface CoreSession {
  readonly id: string;
  readonly protocol: Protocol;
  readonly clientAddress: string;
  log: Logger;
  /** The trace context of what the session does now: cluster-state calls run in it, so their spans join the trace. */
  currentContext: Context;
  user?: User;
}

/** The settings the core needs (a subset of the edge's configuration). */
export interface CoreSettings {
  replicaId: string;
  /** 0 = unlimited, for each of the limits below. */
  maxSessions: number;
  maxSessionsPerUser: number;
  maxSessionsPerIp: number;
  /** Sessions of one address that have not logged in yet (sshd's MaxStartups). */
  maxUnauthenticatedPerIp: number;
  /** New sessions of one address per minute, cluster-wide (FTP_SESSIONS_PER_MINUTE_PER_IP); 0 = unlimited. */
  sessionsPerMinutePerIp: number;
  banAfterFailures: number;
  banSeconds: number;
  /** Host folder of all user roots: upload events name files relative to it (storageKey). */
  dataDir: string;
  /** Hash uploads from offset 0 while receiving them, for the upload event. */
  uploadSha256: boolean;
}

/** Where finished uploads are announced (the post-upload job queue). Neither call throws. */
export interface UploadEvents {
  /** Awaited after the file is published and before the client hears of success: no success for an unannounced upload. */
  publishCompleted(event: UploadEvent): Promise<void>;
  publishAborted(event: UploadAbortedEvent): Promise<void>;
}

/** The parts the core works with; every one is an interface, shared by both front doors. */
export interface CoreDeps {
  settings: CoreSettings;
  identity: Identity;
  cluster: ClusterState;
  metrics: EdgeMetrics;
  /** Absent when upload events are off (no Redis, or FTP_UPLOAD_EVENTS=off). */
  uploads?: UploadEvents;
  /**
   * The room a user sees (FTP AVBL and ALLO, SFTP statvfs): its quota where it has one, else its file system's. Absent:
   * the storage cannot tell (AVBL answers 502, statvfs is not offered).
   */
  diskSpace?(user: User): (path: string) => Promise<DiskSpace>;
  /** The xferlog audit stream (FTP_XFERLOG_FILE); absent when off. */
  xferlog?: Pick<Xferlog, 'write'>;
}
