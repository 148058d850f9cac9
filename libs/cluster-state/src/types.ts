/**
 * Cluster state: everything replicas must share. Each method is one atomic step (one Lua script in the Redis
 * implementation), so no interleaving of replicas can let an (N+1)th session in or hand one port to two sessions.
 * Methods reject when the backing store is unreachable; callers answer 421 and keep running transfers going.
 */

export interface SessionRecord {
  id: string;
  replicaId: string;
  clientAddress: string;
  startedAt: number;
  /** The front door: `ftp`, `ftps` (an FTP session turns ftps once it is protected) or `sftp`. */
  protocol?: SessionProtocol;
  user?: string;
  /** The command in progress (verb only) and the transfer, if any. */
  command?: string;
  transfer?: SessionTransfer;
  /** Bytes of finished transfers (the running one's are in `transfer.bytes`). */
  bytesIn: number;
  bytesOut: number;
}

export type SessionProtocol = 'ftp' | 'ftps' | 'sftp';

/** The transfer a session runs, as its last report says. */
export interface SessionTransfer {
  direction: 'upload' | 'download';
  path: string;
  startedAt: number;
  /** Bytes it has moved so far, as of the report (the replica reports running transfers every second or so). */
  bytes?: number;
}

/** The fields a heartbeat reports (see SessionRegistry.update). */
export type SessionProgress = Partial<Pick<SessionRecord, 'protocol' | 'command' | 'transfer' | 'bytesIn' | 'bytesOut'>>;

export interface AdmissionLimits {
  /** 0 = unlimited. */
  maxSessions: number;
  maxPerAddress: number;
  /**
   * Sessions of one address that have not logged in yet (sshd's MaxStartups, vsftpd's max_per_ip before login): a
   * session counts from `open` until `bindUser`. 0 = unlimited.
   */
  maxUnauthenticatedPerAddress?: number;
  /**
   * New sessions one address may open per minute (a sliding 60 s window; only admitted sessions count): slows a
   * client that reconnects in a loop. 0 or absent = none.
   */
  sessionsPerMinutePerAddress?: number;
}

export type Admission =
  | { ok: true }
  | { ok: false; reason: 'banned' | 'max-sessions' | 'max-per-address' | 'max-unauthenticated' | 'address-rate' };

export interface UserLimits {
  /** Sessions one user may have at once, cluster-wide; 0 = unlimited. */
  maxPerUser: number;
  /** Logins (successful binds) one user may make per minute (a sliding 60 s window); 0 or absent = none. */
  sessionsPerMinute?: number;
}

/** `gone`: the session is no longer registered (closed, or expired). */
export type Binding = { ok: true } | { ok: false; reason: 'max-per-user' | 'user-rate' | 'gone' };

export interface SessionRegistry {
  /** Registers a new connection unless its address is banned or a limit is reached, atomically (one round trip). */
  open(record: SessionRecord, limits: AdmissionLimits): Promise<Admission>;
  /**
   * Attaches a logged-in user to a session unless that user already has `maxPerUser` sessions or made
   * `sessionsPerMinute` logins in the last minute (the session's own earlier binding never counts against it). Binding
   * is the login's success, so it also forgives that user's failed logins from the session's address (see BanList).
   */
  bindUser(id: string, user: string, limits: UserLimits): Promise<Binding>;
  /** Detaches the user (REIN, or a failed login after USER). */
  unbindUser(id: string): Promise<void>;
  /**
   * Heartbeat plus progress (last command, transfer, bytes); called by the replica's heartbeat, never per command or
   * chunk. Resolves false when the record is gone (expired, or Redis lost its data), so the caller can register the
   * session again.
   */
  update(id: string, patch: SessionProgress): Promise<boolean>;
  close(id: string): Promise<void>;
  list(): Promise<SessionRecord[]>;
}

export interface PassiveLease {
  port: number;
  /** The client address the port is reserved for; '*' reserves the port for any address. */
  clientAddress: string;
  sessionId: string;
  replicaId: string;
  /** host:port of the owner's relay listener, where a peer that received the data connection hands it over. */
  relayAddress: string;
  /**
   * The secret a peer relaying the data connection presents to the owner ('' when the request had none: such a lease
   * cannot be relayed). A credential: never log it.
   */
  relayToken: string;
  expiresAt: number;
}

export interface LeaseRequest {
  sessionId: string;
  replicaId: string;
  relayAddress: string;
  /** Random, per lease (see PassiveLease.relayToken); stored with the lease and handed to peers by `find`. */
  relayToken?: string;
  /** '*' when data connections from other addresses are allowed (then the port cannot be shared). */
  clientAddress: string;
  ttlMs: number;
}

/**
 * The passive-port pool. A lease is keyed by (port, client address): one port can serve many clients at once,
 * but two sessions of the same client address never share a port (the data connection could not be told apart).
 */
export interface PassivePortPool {
  lease(request: LeaseRequest): Promise<PassiveLease | null>;
  release(lease: PassiveLease): Promise<void>;
  /** The live lease a data connection from `clientAddress` to `port` belongs to. */
  find(port: number, clientAddress: string): Promise<PassiveLease | null>;
  inUse(): Promise<number>;
  /**
   * A relaying replica records that the client ended relayed connection `relayId` cleanly, before it passes the EOF on
   * to the owner. A relaying replica that dies also ends its side with a FIN (the kernel closes its sockets), which the
   * owner cannot tell from the client's: only a recorded end makes a relayed upload complete. Kept for a few minutes.
   */
  markRelayEnded(relayId: string): Promise<void>;
  /** Whether the relaying replica recorded the client's clean end of `relayId` (asked by the owner at the EOF). */
  relayEnded(relayId: string): Promise<boolean>;
}

export interface BanPolicy {
  /** Failures within the ban window that ban the address; 0 = never ban. */
  threshold: number;
  banSeconds: number;
}

/**
 * Failed logins are counted per address, and within it per target user: the address is banned when the sum reaches
 * the threshold. A successful login (`SessionRegistry.bindUser`) forgives only the failures against the account that
 * logged in, so an attacker cannot reset the count by logging in with an account of their own (SFTPGo's defender,
 * fail2ban's findtime). A new connection from a banned address is refused by `SessionRegistry.open`.
 */
export interface BanList {
  isBanned(address: string): Promise<boolean>;
  /** Counts a failed login of `user` from `address`; returns whether the address is now banned and its failures so far. */
  recordFailure(address: string, user: string, policy: BanPolicy): Promise<{ banned: boolean; failures: number }>;
  /** How many addresses are banned right now, cluster-wide (for the bans-active gauge, read at scrape time). */
  active(): Promise<number>;
  /** The bans in force, cluster-wide, soonest to end first (the admin API's list). */
  list(): Promise<Ban[]>;
  /**
   * Ends the ban of `address` now and forgets its failed logins (else the next failure would ban it again at once).
   * Resolves whether a ban was in force.
   */
  lift(address: string): Promise<boolean>;
}

export interface Ban {
  address: string;
  /** When the ban ends (epoch ms). */
  until: number;
}

/**
 * A request to end sessions, sent by whoever decided it (the admin API) to the replica that holds them. Kicks are
 * messages, not state: a replica that is not listening when one is sent never hears of it (its sessions, if it is
 * gone, expire from the registry by themselves).
 */
export interface SessionKick {
  /** The session to end. */
  sessionId?: string;
  /** Or every session of this user (after the user was disabled or deleted). */
  user?: string;
  /** Why, for the session's log line. */
  reason: string;
  /** Who asked (a token name), for the log line. */
  by?: string;
}

/** Where kicks travel: Redis pub/sub between replicas, or within the process (in-memory state). */
export interface KickChannel {
  /**
   * Delivers `kick` to the replica `replicaId` listens as, or to every replica with '*'. Resolves with how many
   * listeners got it: 0 means no such replica is listening now (gone, or cut off from Redis). Rejects when the backing
   * store is unreachable.
   */
  send(replicaId: string, kick: SessionKick): Promise<number>;
  /**
   * Hears the kicks sent to `replicaId` and to '*' until the returned function is called. With Redis: one subscriber
   * connection per listener, subscribed again after every reconnect; resolves once subscribed (at once while Redis is
   * away: it subscribes in the background when Redis is back).
   */
  listen(replicaId: string, onKick: (kick: SessionKick) => void): Promise<() => Promise<void>>;
}

/** A user's stored bytes and files (published files only; partial uploads are not counted). */
export interface Usage {
  bytes: number;
  files: number;
}

/**
 * Storage usage per user, shared by every replica, for storage quotas. Only users with a quota are tracked; a user
 * without a record (`get` → null) is scanned from storage and `set`. An upload reserves room before it writes
 * (`reserve`), in chunks, so that uploads of one user running on several replicas at once cannot together cross the
 * quota; the commit turns its reservation into usage (`apply`). A reservation not renewed within its TTL (a replica
 * died mid-upload) no longer counts.
 */
export interface UsageLedger {
  get(user: string): Promise<Usage | null>;
  /** Replaces the record (a scan's result); `ifAbsent`: only when there is none (a first scan racing another). */
  set(user: string, usage: Usage, options?: { ifAbsent?: boolean }): Promise<void>;
  /**
   * Grows upload `uploadId`'s reservation by up to `want` bytes so that usage + every live reservation of the user
   * stays within `quota.bytes` (0 = no byte quota), where this upload may count `credit` bytes extra (the size of the
   * file it replaces). Resolves the bytes granted (0..want); renews the reservation's TTL. With no usage record it
   * grants nothing: scan first.
   */
  reserve(user: string, uploadId: string, want: number, quota: { bytes: number; credit?: number }, ttlMs: number): Promise<number>;
  /** Adds `delta` to the usage (a publish, delete, overwrite) and drops `uploadId`'s reservation if given, atomically. No record: no-op. */
  apply(user: string, delta: Usage, uploadId?: string): Promise<void>;
  /** Drops an upload's reservation (it failed or was aborted). */
  release(user: string, uploadId: string): Promise<void>;
}

export type TransferDirection = 'upload' | 'download';

export interface ByteTake {
  user: string;
  direction: TransferDirection;
  replicaId: string;
  /** Bytes wanted now. */
  want: number;
  /** The user's shared cap in bytes/s, 0 = none. The bucket holds at most `burstMs` of it. */
  bytesPerSecond: number;
  burstMs: number;
  /** Bytes the user may move in this direction per UTC day, 0 = none. */
  dailyBytes: number;
}

export interface ByteGrant {
  /** 0..want. */
  granted: number;
  /** When nothing (or less than wanted) was granted: which limit. 'daily' is final for today; 'bandwidth' clears with time. */
  limitedBy?: 'bandwidth' | 'daily';
  /**
   * With 'bandwidth': ms until `want` bytes (at most one burst, and at most what the day's volume leaves) will be in
   * the bucket.
   */
  retryAfterMs?: number;
  /** Replicas that took bytes for this user and direction in the last 2 s, this one included (for the fallback share). */
  replicas: number;
}

/**
 * Byte budgets per user and direction, shared by all replicas: a token bucket for the bandwidth cap and a counter per
 * UTC day for the daily volume. Transfers take bytes in chunks ahead of need (never per data chunk) and give back what
 * they did not use at the end.
 */
export interface ByteBudgets {
  take(request: ByteTake): Promise<ByteGrant>;
  /** Gives back bytes taken but not moved: to the daily counter of `day` (YYYY-MM-DD, UTC) and to the bucket. */
  refund(user: string, direction: TransferDirection, bytes: number, day: string): Promise<void>;
  /** Bytes moved today (UTC) by the user. */
  today(user: string): Promise<{ upload: number; download: number }>;
}

export interface ClusterState {
  kind: 'memory' | 'redis';
  /** Whether the backing store answers right now (readiness): false while Redis is away. */
  available(): boolean;
  sessions: SessionRegistry;
  ports: PassivePortPool;
  bans: BanList;
  kicks: KickChannel;
  usage: UsageLedger;
  budgets: ByteBudgets;
  close(): Promise<void>;
}
