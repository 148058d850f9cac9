import type { ClusterState, SessionKick } from '@ftp/cluster-state';
import type { Session } from '@ftp/session';
import type { SshSession } from '@ftp/sftp-session';
import type { Logger } from '@ftp/telemetry';

/** This replica's open sessions, of both front doors. */
export interface LocalSessions {
  ftp: Iterable<Session>;
  sftp: Iterable<SshSession>;
}

const matches = (kick: SessionKick, id: string, user: string | undefined) =>
  kick.sessionId !== undefined ? kick.sessionId === id : kick.user !== undefined && kick.user === user;

/**
 * Ends the sessions of this replica that a kick names (one by id, or all of a user), at once. FTP: `421` and the
 * control connection closes; a running transfer is cut like a vanished client's (an upload keeps its partial, so REST
 * + STOR or APPE resumes it). SFTP: an SSH disconnect; open uploads are kept as partials the same way. Returns how
 * many sessions it ended.
 */
export function endSessions(kick: SessionKick, sessions: LocalSessions, log: Logger): number {
  let ended = 0;
  for (const session of sessions.ftp) {
    if (session.closed || !matches(kick, session.id, session.user?.name)) continue;
    session.log.info({ event: 'session-ended', reason: kick.reason, by: kick.by }, 'session ended by an administrator');
    session.reply(421, `Session ended by an administrator (${kick.reason})`);
    session.end(); // before the abort, as for a client that went away: no 426/226 after the 421
    session.transfer?.abort();
    ended++;
  }
  for (const session of sessions.sftp) {
    if (session.closed || !matches(kick, session.id, session.user?.name)) continue;
    session.log.info({ event: 'session-ended', reason: kick.reason, by: kick.by }, 'session ended by an administrator');
    session.disconnect(`ended by an administrator (${kick.reason})`);
    ended++;
  }
  if (ended === 0 && kick.sessionId) log.debug({ session: kick.sessionId }, 'kick for a session not open here');
  return ended;
}

/**
 * Hears the kicks sent to this replica (and to all) through the cluster state: Redis pub/sub between replicas, or the
 * process itself with the in-memory state. Returns the function that stops listening.
 */
export function listenForKicks(cluster: ClusterState, replicaId: string, sessions: () => LocalSessions, log: Logger): Promise<() => Promise<void>> {
  return cluster.kicks.listen(replicaId, (kick) => {
    try {
      endSessions(kick, sessions(), log);
    } catch (err) {
      log.error({ err, kick }, 'ending sessions for a kick failed');
    }
  });
}
