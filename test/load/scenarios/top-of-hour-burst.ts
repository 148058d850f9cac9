import type { Options, Partner } from '../src/scenario';

/**
 * The burst at the top of the hour: partners' cron jobs fire at :00, so new sessions arrive at a fixed rate whatever
 * the server's latency (an arrival-rate executor: a slow server gets more concurrent sessions, not fewer), on top of
 * the steady background. Three minutes: one of background, one of burst (50 sessions/s) over the background, one
 * of background again. `dropped_iterations` counts the sessions the generator could not start in time.
 */

export const options: Options = {
  scenarios: {
    background: { executor: 'constant-vus', vus: 10, duration: '3m', exec: 'steadyPartner' },
    burst: {
      executor: 'constant-arrival-rate',
      rate: 50,
      timeUnit: '1s',
      duration: '1m',
      startTime: '1m',
      preAllocatedVUs: 50,
      maxVUs: 300,
      gracefulStop: '30s',
      exec: 'cronPartner',
    },
  },
  thresholds: {
    ftp_errors: ['rate<0.01'],
    ftp_login_duration: ['p(95)<1000'],
    ftp_session_duration: ['p(95)<2000'],
    dropped_iterations: ['count==0'],
    checks: ['rate>0.99'],
  },
};

/** A cron job: log in, drop one report, log out. */
export const cronPartner: Partner = { protocol: 'ftp', steps: [{ upload: { files: 1, size: { min: '4KiB', max: '256KiB' } } }] };

export const steadyPartner: Partner = {
  protocol: 'sftp',
  steps: [{ list: true }, { upload: { files: 2, size: '32KiB' } }, { download: true }, { delete: true }],
  think: { min: '1s', max: '3s' },
};
