import type { Socket } from 'node:net';
import { context, type Context, type Span } from '@opentelemetry/api';
import type { User } from '@ftp/identity';
import type { LiveSession } from '@ftp/session-core';
import type { Storage } from '@ftp/storage';
import type { Logger } from '@ftp/telemetry';
import type { PendingData, SessionDeps } from './types';

/** A running transfer: the control loop calls abort() when ABOR arrives while the transfer handler awaits. */
export interface ActiveTransfer {
  abort(): void;
  aborted: boolean;
  direction: 'upload' | 'download' | 'listing';
  path: string;
  startedAt: number;
  /** Bytes the client moved on the data connection so far (socket counters plus bytes moved natively). */
  bytes(): number;
}

/** Per-connection state. Plain data plus the reply function; handlers read and change it. */
export interface Session extends LiveSession {
  id: string;
  /** ftps once the control connection is TLS or data connections are protected. */
  readonly protocol: 'ftp' | 'ftps';
  deps: SessionDeps;
  log: Logger;
  /** The `ftp session` span (the no-op span with tracing off): the parent of every command's span. */
  span: Span;
  /** The context holding `span`, for spans started outside a command (data connections, the session's end). */
  traceContext: Context;
  /**
   * The context of what the session does now: the session's, a command's, or a transfer's within it. Spans started
   * by handlers take it as parent, log lines carry its ids, and cluster-state calls made after an await run in it
   * (withContext), so no AsyncLocalStorage is needed to follow a session across awaits.
   */
  currentContext: Context;
  socket: Socket;
  clientAddress: string;
  startedAt: number;
  /** Bytes moved on data connections so far, for the cluster-wide session record. */
  bytesIn: number;
  bytesOut: number;
  /** The verb of the command being run or run last, for the session record (the heartbeat carries it). */
  lastCommand?: string;
  /**
   * The server address the client reached (the balancer's, behind PROXY protocol); PASV advertises it unless
   * FTP_PASV_ADDRESS is set.
   */
  localAddress: string;
  pendingUser?: string;
  user?: User;
  storage?: Storage;
  cwd: string;
  type: 'A' | 'I';
  restOffset: number;
  /** ALLO's size, for the upload that follows (a limit may refuse it before any byte moves). */
  allocated?: number;
  renameFrom?: string;
  epsvAll: boolean;
  hashAlgorithm: 'SHA-256' | 'SHA-1' | 'MD5';
  mlstFacts: string[];
  data?: PendingData;
  transfer?: ActiveTransfer;
  /** The control connection is TLS (after AUTH TLS, or from the start on the implicit port). */
  secure: boolean;
  pbszDone: boolean;
  /** PROT level for data connections: Clear or Private (TLS). */
  protection: 'C' | 'P';
  /** Switches the control connection to TLS right after the 234 reply; pipelined plaintext is dropped. */
  upgradeControl(): Promise<void>;
  closed: boolean;
  reply(code: number, text: string | string[]): void;
  /** Ends the session after the replies already written have been sent. */
  end(): void;
  /** Gives the session the login grace time to log in (from now), or it is closed; at the start and after REIN. */
  startLoginGrace(): void;
}

export type Handler = (session: Session, arg: string) => Promise<void> | void;

/** The state a session starts with, and returns to after REIN. */
export function freshSessionState() {
  return {
    pendingUser: undefined,
    user: undefined,
    storage: undefined,
    cwd: '/',
    type: 'I' as const,
    restOffset: 0,
    renameFrom: undefined,
    epsvAll: false,
    hashAlgorithm: 'SHA-256' as const,
    mlstFacts: ['type', 'size', 'modify', 'perm', 'unique'],
  };
}

/** Runs `call` (a cluster-state call made after an await) in the session's current context: its Redis spans join the trace. */
export function withContext<T>(session: Session, call: () => T): T {
  return context.with(session.currentContext, call);
}
