import type { Options, Partner, Step } from '../load/src/scenario';
import { INBOX, USERS } from './users';

/**
 * The chaos run's traffic (`npm run load` with `--ledger`, started by run.ts): partners over FTP, FTPS and SFTP
 * through HAProxy, 9 VUs in all. Every upload has a name of its own and stays on the server (no delete step), so the
 * verdict can check each one afterwards; downloads fetch what the same partner just uploaded and the ledger compares
 * the bytes. FTP and SFTP partners also resume a broken upload in every iteration. The inbox partner's files are
 * moved to /archive/ by the worker. Durations are set with -d; CHAOS_PASSWORD is the users' password.
 */

const password = process.env.CHAOS_PASSWORD;
const duration = '60s'; // scaled by -d
const gracefulStop = '5s';

export const options: Options = {
  scenarios: {
    ftp: { executor: 'constant-vus', vus: 3, duration, gracefulStop, exec: 'ftpPartner' },
    ftps: { executor: 'constant-vus', vus: 2, duration, gracefulStop, exec: 'ftpsPartner' },
    sftp: { executor: 'constant-vus', vus: 3, duration, gracefulStop, exec: 'sftpPartner' },
    inbox: { executor: 'constant-vus', vus: 1, duration, gracefulStop, exec: 'inboxPartner' },
  },
  // A login may wait out a Redis failover (up to 10 s); a transfer on a replica that was stopped fails after 15 s.
  timeouts: { connect: '15s', operation: '15s', stall: '15s' },
  retryDelay: '500ms',
};

const size = { pick: { '2KiB': 40, '32KiB': 30, '256KiB': 25, '1MiB': 5 } };
const think = { min: '100ms', max: '600ms' };
const upload: Step = { upload: { files: 2, size } };
const resume: Step = { resume: { size: '256KiB', cutAt: 0.5 } };

export const ftpPartner: Partner = { protocol: 'ftp', login: { user: USERS.ftp, password }, dir: 'out', steps: [upload, resume, { download: true }], think };
export const ftpsPartner: Partner = { protocol: 'ftps', login: { user: USERS.ftps, password }, dir: 'out', steps: [upload, { download: true }], think };
export const sftpPartner: Partner = { protocol: 'sftp', login: { user: USERS.sftp, password }, dir: 'out', steps: [upload, resume, { download: true }], think };
export const inboxPartner: Partner = { protocol: 'ftp', login: { user: USERS.ftp, password }, dir: INBOX, steps: [{ upload: { files: 3, size } }], think };
