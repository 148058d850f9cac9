/**
 * The partners' users, one per front door, each with a home of its own (loaded by the load generator's process
 * through scenario.ts too, so this module imports nothing).
 */
export const USERS = { ftp: 'pftp', ftps: 'pftps', sftp: 'psftp' } as const;

/** Uploads to /inbox/ of any user are moved to /archive/ by the worker's pipeline; the rest stay where they are. */
export const INBOX = 'inbox';
export const ARCHIVE = 'archive';
