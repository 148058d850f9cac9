import type { Options, Partner, Step } from '../src/scenario';

/**
 * Many small partners: the everyday load of a file-exchange service. Hundreds of sessions a minute, each a login, a
 * listing, one to five small files up, the same files back, a clean-up, then a pause until the partner's next poll.
 * Mixed over the three front doors roughly as partners use them (FTP in clear still the most).
 * `npm run load -- test/load/scenarios/small-partners.ts` (about 5 minutes; -d 30s for a quick look).
 */

const ramp = (peak: number) => [
  { duration: '30s', target: peak },
  { duration: '4m', target: peak },
  { duration: '30s', target: 0 },
];

export const options: Options = {
  scenarios: {
    ftp: { executor: 'ramping-vus', startVUs: 0, stages: ramp(30), exec: 'ftpPartner' },
    ftps: { executor: 'ramping-vus', startVUs: 0, stages: ramp(10), exec: 'ftpsPartner' },
    sftp: { executor: 'ramping-vus', startVUs: 0, stages: ramp(10), exec: 'sftpPartner' },
  },
  thresholds: {
    ftp_errors: ['rate<0.01'],
    ftp_login_duration: ['p(95)<200'],
    ftp_session_duration: ['p(95)<500'],
    checks: ['rate>0.99'],
  },
};

const steps: Step[] = [
  { list: true },
  { upload: { files: 3, size: { pick: { '2KiB': 50, '16KiB': 30, '128KiB': 15, '1MiB': 5 } } } },
  { download: true },
  { delete: true },
];
const think = { min: '1s', max: '5s' };

export const ftpPartner: Partner = { protocol: 'ftp', steps, think };
export const ftpsPartner: Partner = { protocol: 'ftps', steps, think };
export const sftpPartner: Partner = { protocol: 'sftp', steps, think };
