import type { Options, Partner, Step } from '../src/scenario';

/**
 * A few bulk partners: one per front door, each moving large files (256 MiB to 1 GiB) end to end, and resuming a
 * broken upload as a partner on a flaky link does. Bounded: three VUs, ten minutes, every file deleted after its
 * round trip, so the server holds at most about 3.75 GiB of this test at a time. File contents are generated in
 * memory; the generator needs no disk.
 */

export const options: Options = {
  scenarios: {
    ftp: { executor: 'constant-vus', vus: 1, duration: '10m', gracefulStop: '2m', exec: 'ftpPartner' },
    ftps: { executor: 'constant-vus', vus: 1, duration: '10m', gracefulStop: '2m', exec: 'ftpsPartner' },
    sftp: { executor: 'constant-vus', vus: 1, duration: '10m', gracefulStop: '2m', exec: 'sftpPartner' },
  },
  thresholds: {
    ftp_errors: ['rate<0.01'],
    ftp_transfer_duration: ['p(95)<60000'], // 1 GiB in a minute: at least ~18 MB/s per transfer
    checks: ['rate==1'],
  },
  // Big transfers: an operation may take minutes as long as its bytes keep moving.
  timeouts: { connect: '10s', operation: '30s', stall: '30s' },
};

const steps: Step[] = [
  { upload: { files: 1, size: { pick: { '256MiB': 3, '1GiB': 1 } } } },
  { download: true },
  { delete: true },
  { resume: { size: '256MiB', cutAt: 0.4 } },
  { delete: true },
];

export const ftpPartner: Partner = { protocol: 'ftp', steps, think: '5s' };
export const ftpsPartner: Partner = { protocol: 'ftps', steps, think: '5s' };
export const sftpPartner: Partner = { protocol: 'sftp', steps, think: '5s' };
