/* global __ENV, __VU, __ITER */
// k6 with the xk6-sftp extension: small SFTP partners, measured with the Node load generator's metric names and
// thresholds (test/load/src/vocabulary.ts), so both land on the same Grafana panels. Build k6 with it first:
//   xk6 build --with github.com/grafana/xk6-sftp
//   SFTP_HOST=127.0.0.1 SFTP_PORT=22 FTP_USER=demo FTP_PASSWORD=… ./k6 run test/load/k6/sftp.js
// (FTP_KEY_FILE=path instead of FTP_PASSWORD logs in with a key.) Run it from the repository root: the file it
// uploads is test/load/k6/data/partner-file.csv.
import sftp from 'k6/x/sftp';
import { check, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const sessionDuration = new Trend('ftp_session_duration', true);
const loginDuration = new Trend('ftp_login_duration', true);
const transferDuration = new Trend('ftp_transfer_duration', true);
const filesUploaded = new Counter('ftp_files_uploaded');
const filesDownloaded = new Counter('ftp_files_downloaded');
const errors = new Rate('ftp_errors');

const HOST = __ENV.SFTP_HOST || '127.0.0.1';
const PORT = Number(__ENV.SFTP_PORT || 22);
const USER = __ENV.FTP_USER || 'demo';
const LOCAL_FILE = __ENV.LOAD_FILE || 'test/load/k6/data/partner-file.csv';

export const options = {
  scenarios: {
    small_partners: { executor: 'ramping-vus', startVUs: 0, stages: [{ duration: '30s', target: 10 }, { duration: '1m', target: 10 }, { duration: '15s', target: 0 }] },
  },
  // The same thresholds as test/load/scenarios/small-partners.ts.
  thresholds: {
    ftp_errors: ['rate<0.01'],
    ftp_login_duration: ['p(95)<200'],
    ftp_session_duration: ['p(95)<500'],
    checks: ['rate>0.99'],
  },
};

/** One operation's result ({success, message}) into ftp_errors and a check; true when it worked. */
function recorded(name, result, started) {
  transferDuration.add(Date.now() - started);
  errors.add(!result.success);
  return check(result, { [name]: (r) => r.success === true });
}

export default function () {
  const start = Date.now();
  const client = __ENV.FTP_KEY_FILE ? sftp.newClientWithRSAKey(USER, HOST, PORT, __ENV.FTP_KEY_FILE) : sftp.newClient(USER, __ENV.FTP_PASSWORD, HOST, PORT);
  errors.add(client === null);
  if (!check(client, { 'logged in': (c) => c !== null })) {
    sleep(1);
    return;
  }
  loginDuration.add(Date.now() - start);
  const remote = `load/k6-${__VU}-${__ITER}.csv`;
  let t = Date.now();
  if (recorded('uploaded', client.uploadFile(LOCAL_FILE, remote), t)) filesUploaded.add(1);
  t = Date.now();
  if (recorded('downloaded', client.downloadFile(remote, `/tmp/k6-sftp-${__VU}.csv`), t)) filesDownloaded.add(1);
  errors.add(!check(client.deleteFile(remote), { deleted: (r) => r.success === true }));
  client.close();
  sessionDuration.add(Date.now() - start);
  sleep(1 + Math.random() * 4);
}
