/**
 * The partners' users, one per front door, each with a home of its own (loaded by the load generator's process
 * through scenario.ts too, so this module imports nothing at run time).
 */
export const USERS = { ftp: 'pftp', ftps: 'pftps', sftp: 'psftp' } as const;

/**
 * Each partner user's `max_sessions` in the users file: its VUs in scenario.ts (a VU holds one session at a time) plus
 * this margin. The margin is small on purpose: a SIGKILLed replica's sessions stay in the cluster state until their
 * 60 s TTL, and a partner's broken session may still be there when it logs in again, so logins are refused for the
 * limit now and then (the report counts them); the check is that no sample ever saw more than the limit.
 */
export const SESSION_MARGIN = 2;

/** The VUs of each user (a scenario's `exec` names the partner, whose login names the user), plus `margin`. */
export function sessionLimits(
  scenarios: Record<string, { executor: string; vus?: number; exec?: string }>,
  partners: Record<string, unknown>,
  margin = SESSION_MARGIN,
): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const [name, s] of Object.entries(scenarios)) {
    // Only a constant number of VUs gives a fixed number of sessions to size a limit by.
    if (s.executor !== 'constant-vus') throw new Error(`scenario ${name}: a session limit needs constant-vus, not ${s.executor}`);
    const user = (partners[s.exec ?? 'default'] as { login?: { user?: string } } | undefined)?.login?.user;
    if (!user) throw new Error(`scenario ${name}: no partner "${s.exec ?? 'default'}" with a login user`);
    limits[user] = (limits[user] ?? margin) + (s.vus ?? 1);
  }
  return limits;
}

/** Uploads to /inbox/ of any user are moved to /archive/ by the worker's pipeline; the rest stay where they are. */
export const INBOX = 'inbox';
export const ARCHIVE = 'archive';
