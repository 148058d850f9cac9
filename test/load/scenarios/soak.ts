import type { Options, Partner, Step } from '../src/scenario';

/**
 * Soak: a moderate, steady mix for two hours, to find what only time shows (memory or descriptor growth, leases or
 * session records not released, latency creeping up). Bounded: 20 VUs, 2 h, every uploaded file deleted in its own
 * session, think times between sessions; some sessions stay idle while connected, as real partners' do.
 */

export const options: Options = {
  scenarios: {
    ftp: { executor: 'constant-vus', vus: 10, duration: '2h', gracefulStop: '1m', exec: 'ftpPartner' },
    ftps: { executor: 'constant-vus', vus: 5, duration: '2h', gracefulStop: '1m', exec: 'ftpsPartner' },
    sftp: { executor: 'constant-vus', vus: 5, duration: '2h', gracefulStop: '1m', exec: 'sftpPartner' },
  },
  thresholds: {
    ftp_errors: ['rate<0.001'],
    ftp_login_duration: ['p(95)<200'],
    ftp_transfer_duration: ['p(95)<1000'],
    checks: ['rate==1'],
  },
};

const steps: Step[] = [
  { list: true },
  { upload: { files: 2, size: { min: '1KiB', max: '4MiB' } } },
  { think: { min: '0s', max: '10s' } }, // idle while connected
  { download: true },
  { resume: { size: { min: '64KiB', max: '8MiB' } } },
  { delete: true },
];
const think = { min: '5s', max: '30s' };

export const ftpPartner: Partner = { protocol: 'ftp', steps, think };
export const ftpsPartner: Partner = { protocol: 'ftps', steps, think };
export const sftpPartner: Partner = { protocol: 'sftp', steps, think };
