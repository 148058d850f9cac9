/* global __ENV, __VU, __ITER */
// k6 against the admin REST API (services/ftp-edge/src/api/, OpenAPI at GET /api/v1/openapi.json): operators
// listing live sessions while provisioning creates and deletes users. Plain k6, no extension:
//   API_URL=http://127.0.0.1:9181/api/v1 API_TOKEN=ftpat_… k6 run test/load/k6/admin-api.js
// The token needs the scopes sessions:read and users:write (ftpctl token create, see test/load/README.md).
import http from 'k6/http';
import { check, sleep } from 'k6';

const API = __ENV.API_URL || 'http://127.0.0.1:9181/api/v1';
const headers = { Authorization: `Bearer ${__ENV.API_TOKEN}`, 'Content-Type': 'application/json' };

export const options = {
  scenarios: {
    operators: { executor: 'constant-vus', vus: 5, duration: '1m', exec: 'listSessions' },
    provisioning: {
      executor: 'constant-arrival-rate',
      rate: 5,
      timeUnit: '1s',
      duration: '1m',
      preAllocatedVUs: 5,
      maxVUs: 20,
      exec: 'createAndDeleteUser',
    },
  },
  // The Node scenarios' budget: under 1 % failed, p(95) under 500 ms, checks that hold.
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(95)<500'],
    checks: ['rate>0.99'],
  },
};

export function listSessions() {
  const res = http.get(`${API}/sessions`, { headers, tags: { route: 'GET /sessions' } });
  check(res, {
    'sessions listed': (r) => r.status === 200,
    'sessions are a list': (r) => Array.isArray(r.json('items')),
  });
  sleep(1);
}

export function createAndDeleteUser() {
  const name = `k6-load-${__VU}-${__ITER}`;
  const created = http.post(`${API}/users`, JSON.stringify({ name, password: `pw-${name}-0123456789`, home: `k6/${name}` }), {
    headers,
    tags: { route: 'POST /users' },
  });
  check(created, { 'user created': (r) => r.status === 201 });
  const deleted = http.del(`${API}/users/${name}`, null, { headers, tags: { route: 'DELETE /users/{name}' } });
  check(deleted, { 'user deleted': (r) => r.status === 204 });
}
