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
}

export type Admission = { ok: true } | { ok: false; reason: 'banned' | 'max-sessions' | 'max-per-address' | 'max-unauthenticated' };

export interface SessionRegistry {
  /** Registers a new connection unless its address is banned or a limit is reached, atomically (one round trip). */
  open(record: SessionRecord, limits: AdmissionLimits): Promise<Admission>;
  /**
   * Attaches a logged-in user to a session unless that user already has `maxPerUser` sessions (0 = unlimited). Binding
   * is the login's success, so it also forgives that user's failed logins from the session's address (see BanList).
   */
  bindUser(id: string, user: string, maxPerUser: number): Promise<boolean>;
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

export interface ClusterState {
  kind: 'memory' | 'redis';
  /** Whether the backing store answers right now (readiness): false while Redis is away. */
  available(): boolean;
  sessions: SessionRegistry;
  ports: PassivePortPool;
  bans: BanList;
  kicks: KickChannel;
  close(): Promise<void>;
}
