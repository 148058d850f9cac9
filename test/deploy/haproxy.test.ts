import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { loadCompose } from './compose';
import { describeProc, findBinary, freeBlock, makeTempDir, removeTempDir, startProcess, stopProcess, waitFor, type Proc } from '../support/processes';

// deploy/haproxy/haproxy.cfg run for real on 127.0.0.1, with Compose's values except addresses and ports, in front
// of a stand-in replica (all three server lines point at it): an SFTP connection to the balancer reaches the
// replica's SFTP port preceded by a PROXY v2 header with the client's address, bytes pass both ways, and the SFTP
// servers follow the replicas' /readyz like the FTP ones do.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const HAPROXY_CFG = join(ROOT, 'deploy', 'haproxy', 'haproxy.cfg');
const HOST = '127.0.0.1';
const PROXY_V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

interface Arrival {
  header: Buffer;
  payload: Buffer;
}

let dir = '';
let haproxy: Proc | undefined;
let replicaSftp: Server | undefined;
let replicaAdmin: ReturnType<typeof createHttpServer> | undefined;
let ready = true;
const arrivals: Arrival[] = [];
const ports = { lbControl: 0, pasvMin: 0, pasvMax: 0, lbSftp: 0, edgeSftp: 0, edgeAdmin: 0, edgeControl: 0 };
const statsSocket = () => join(dir, 'haproxy.sock');

/** The stand-in's SFTP port: splits off the PROXY v2 header (16 bytes + its length field), answers like an SSH server. */
function onReplicaConnection(socket: Socket) {
  socket.on('error', () => undefined);
  let buffered = Buffer.alloc(0);
  let arrival: Arrival | undefined;
  socket.on('data', (chunk: Buffer) => {
    if (arrival) {
      arrival.payload = Buffer.concat([arrival.payload, chunk]);
      return;
    }
    buffered = Buffer.concat([buffered, chunk]);
    if (buffered.length < 16) return;
    const length = 16 + buffered.readUInt16BE(14);
    if (buffered.length < length) return;
    arrival = { header: buffered.subarray(0, length), payload: buffered.subarray(length) };
    arrivals.push(arrival);
    socket.write('SSH-2.0-standin\r\n');
  });
}

/** `show stat` over the stats socket: the status of each server of `backend`. */
function serverStates(backend: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(statsSocket());
    let text = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('show stat\n'));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const [head, ...rows] = text.split('\n').filter(Boolean);
      const columns = head.replace(/^# /, '').split(',');
      const at = (row: string[], name: string) => row[columns.indexOf(name)];
      resolve(rows.map((r) => r.split(',')).filter((r) => at(r, 'pxname') === backend && !['FRONTEND', 'BACKEND'].includes(at(r, 'svname'))).map((r) => at(r, 'status')));
    });
  });
}

/** Connects to the balancer's SFTP port, sends an SSH version line, returns what came back before `ms` or the close. */
function sshHello(ms = 2000): Promise<{ reply: string; local: AddressInfo }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port: ports.lbSftp });
    let reply = '';
    let local: AddressInfo | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ reply, local: local! });
    };
    const timer = setTimeout(done, ms);
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      local = socket.address() as AddressInfo;
      socket.write('SSH-2.0-deploytest\r\n');
    });
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) done();
    });
    socket.on('close', done);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

before(async () => {
  dir = makeTempDir('deploy-haproxy-');
  const first = await freeBlock(7, [HOST]);
  Object.assign(ports, { lbControl: first, pasvMin: first + 1, pasvMax: first + 2, lbSftp: first + 3, edgeSftp: first + 4, edgeAdmin: first + 5, edgeControl: first + 6 });

  replicaSftp = createServer(onReplicaConnection);
  replicaAdmin = createHttpServer((req, res) => {
    res.statusCode = req.url === '/readyz' && ready ? 200 : 503;
    res.end();
  });
  await new Promise<void>((resolve) => replicaSftp!.listen(ports.edgeSftp, HOST, resolve));
  await new Promise<void>((resolve) => replicaAdmin!.listen(ports.edgeAdmin, HOST, resolve));

  // Compose's values, with local addresses and free ports instead of names and fixed ports.
  const lb = loadCompose(join(ROOT, 'docker-compose.yml')).services.haproxy.environment as Record<string, string>;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('FTP_')) env[k] = v;
  Object.assign(env, lb, {
    FTP_LB_BIND: HOST,
    FTP_LB_CONTROL_PORT: String(ports.lbControl),
    FTP_PASV_MIN: String(ports.pasvMin),
    FTP_PASV_MAX: String(ports.pasvMax),
    FTP_LB_SFTP_PORT: String(ports.lbSftp),
    FTP_EDGE_1: HOST,
    FTP_EDGE_2: HOST,
    FTP_EDGE_3: HOST,
    FTP_EDGE_CONTROL_PORT: String(ports.edgeControl),
    FTP_EDGE_ADMIN_PORT: String(ports.edgeAdmin),
    FTP_EDGE_SFTP_PORT: String(ports.edgeSftp),
    FTP_LB_STATS_SOCKET: statsSocket(),
  });
  assert.ok('FTP_LB_SFTP_PORT' in lb && 'FTP_EDGE_SFTP_PORT' in lb, 'Compose turns the SFTP frontend on');
  haproxy = startProcess('haproxy', findBinary('haproxy', 'apt-get install --no-install-recommends haproxy'), ['-f', HAPROXY_CFG, '-db'], { env });
  await waitFor('SFTP servers UP', haproxy, async () => (await serverStates('sftp')).join() === 'UP,UP,UP', { timeoutMs: 10_000 });
});

after(async () => {
  if (haproxy) await stopProcess(haproxy);
  await new Promise((resolve) => replicaSftp?.close(resolve) ?? resolve(undefined));
  await new Promise((resolve) => replicaAdmin?.close(resolve) ?? resolve(undefined));
  if (dir) removeTempDir(dir);
});

test('an SFTP connection through HAProxy reaches a replica\'s SFTP port behind a PROXY v2 header with the client\'s address', async () => {
  const before = arrivals.length;
  const { reply, local } = await sshHello();
  assert.equal(reply, 'SSH-2.0-standin\r\n', `no answer from the replica through HAProxy; ${describeProc(haproxy!)}`);
  const arrival = arrivals[before];
  assert.ok(arrival, 'the replica saw no connection');
  const { header, payload } = arrival;
  assert.deepEqual(header.subarray(0, 12), PROXY_V2_SIGNATURE, 'PROXY protocol v2 signature');
  assert.equal(header[12], 0x21, 'version 2, command PROXY');
  assert.equal(header[13], 0x11, 'TCP over IPv4');
  // Source: the client's address and port; destination: the balancer's SFTP frontend.
  assert.equal([...header.subarray(16, 20)].join('.'), local.address);
  assert.equal([...header.subarray(20, 24)].join('.'), HOST);
  assert.equal(header.readUInt16BE(24), local.port);
  assert.equal(header.readUInt16BE(26), ports.lbSftp);
  assert.equal(payload.toString('latin1'), 'SSH-2.0-deploytest\r\n', 'the client\'s bytes follow the header unchanged');
});

test('SFTP servers follow the replicas\' /readyz (the FTP health checks): unready replicas get no new SFTP sessions', async () => {
  ready = false;
  try {
    await waitFor('SFTP servers DOWN', haproxy!, async () => (await serverStates('sftp')).every((s) => s.startsWith('DOWN')), { timeoutMs: 10_000 });
    assert.ok((await serverStates('ftp_control')).every((s) => s.startsWith('DOWN')));
    const before = arrivals.length;
    const { reply } = await sshHello(1000);
    assert.equal(reply, '', 'no replica may answer');
    assert.equal(arrivals.length, before, 'no connection may reach an unready replica');
  } finally {
    ready = true;
  }
  await waitFor('SFTP servers UP again', haproxy!, async () => (await serverStates('sftp')).join() === 'UP,UP,UP', { timeoutMs: 10_000 });
  assert.equal((await sshHello()).reply, 'SSH-2.0-standin\r\n');
});
