import type { SFTPWrapper } from 'ssh2';
import type { HandleTable } from './handles';
import type { Ssh2Hooks } from './ssh2Hooks';
import type { SftpContext } from './types';

/** One SFTP session's state, shared by the handlers (which never import the dispatcher that calls them). */
export interface Session {
  readonly sftp: SFTPWrapper;
  readonly ctx: SftpContext;
  readonly handles: HandleTable;
  hooks: Ssh2Hooks;
  /** WRITE payload received and not yet written. */
  writeBacklog: number;
  /** Requests received and not yet answered. */
  inflight: number;
  /** The channel closed or close() was called: no new work, handles released. */
  closed: boolean;
}

/** What a handler knows about the request it serves; `path` is filled in once resolved, for the failure log line. */
export interface Request {
  readonly id: number;
  readonly op: string;
  path?: string;
}
