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
// replica's SFTP port preceded by a PROXY v2 header with the client's address, bytes pass both ways; a replica whose
// agent says `drain` gets no new connections in any backend but keeps its sessions, and one that stops answering its
// /healthz is taken out with its sessions cut.

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
let replicaAgent: Server | undefined;
/** What the stand-in's agent says (ready or drain), and whether its /healthz answers at all (a frozen replica). */
let ready = true;
let frozen = false;
const arrivals: Arrival[] = [];
const ports = { lbControl: 0, pasvMin: 0, pasvMax: 0, lbSftp: 0, edgeSftp: 0, edgeAdmin: 0, edgeControl: 0, edgeAgent: 0 };
const statsSocket = () => join(dir, 'haproxy.sock');

/** The stand-in's SFTP port: splits off the PROXY v2 header (16 bytes + its length field), answers like an SSH server. */
function onReplicaConnection(socket: Socket) {
  socket.on('error', () => undefined);
  let buffered = Buffer.alloc(0);
  let arrival: Arrival | undefined;
  socket.on('data', (chunk: Buffer) => {
    if (arrival) {
      arrival.payload = Buffer.concat([arrival.payload, chunk]);
      socket.write(chunk); // after the greeting, an echo: a session that still carries bytes
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
      // The greeting only: the stand-in echoes what follows it (our own version line, when it arrives apart).
      if (reply.includes('\r\n')) {
        reply = reply.slice(0, reply.indexOf('\r\n') + 2);
        done();
      }
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
  const first = await freeBlock(8, [HOST]);
  Object.assign(ports, { lbControl: first, pasvMin: first + 1, pasvMax: first + 2, lbSftp: first + 3, edgeSftp: first + 4, edgeAdmin: first + 5, edgeControl: first + 6, edgeAgent: first + 7 });

  replicaSftp = createServer(onReplicaConnection);
  replicaAdmin = createHttpServer((req, res) => {
    if (frozen) return; // no answer: HAProxy's check times out
    res.statusCode = req.url === '/healthz' ? 200 : 404;
    res.end();
  });
  replicaAgent = createServer((socket) => {
    socket.on('error', () => undefined);
    if (!frozen) socket.end(ready ? 'ready\n' : 'drain\n');
  });
  await new Promise<void>((resolve) => replicaSftp!.listen(ports.edgeSftp, HOST, resolve));
  await new Promise<void>((resolve) => replicaAdmin!.listen(ports.edgeAdmin, HOST, resolve));
  await new Promise<void>((resolve) => replicaAgent!.listen(ports.edgeAgent, HOST, resolve));

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
    FTP_EDGE_AGENT_PORT: String(ports.edgeAgent),
    FTP_EDGE_SFTP_PORT: String(ports.edgeSftp),
    FTP_LB_STATS_SOCKET: statsSocket(),
  });
  assert.ok('FTP_LB_SFTP_PORT' in lb && 'FTP_EDGE_SFTP_PORT' in lb, 'Compose turns the SFTP frontend on');
  assert.ok('FTP_EDGE_AGENT_PORT' in lb, 'Compose gives HAProxy the replicas\' agent port');
  haproxy = startProcess('haproxy', findBinary('haproxy', 'apt-get install --no-install-recommends haproxy'), ['-f', HAPROXY_CFG, '-db'], { env });
  await waitFor('SFTP servers UP', haproxy, async () => (await serverStates('sftp')).join() === 'UP,UP,UP', { timeoutMs: 10_000 });
});

after(async () => {
  if (haproxy) await stopProcess(haproxy);
  await new Promise((resolve) => replicaSftp?.close(resolve) ?? resolve(undefined));
  replicaAdmin?.closeAllConnections();
  await new Promise((resolve) => replicaAdmin?.close(resolve) ?? resolve(undefined));
  await new Promise((resolve) => replicaAgent?.close(resolve) ?? resolve(undefined));
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

test('a replica whose agent says drain gets no new connection in any backend, and keeps the ones it has', async () => {
  const { socket: kept } = await openSession();
  ready = false;
  try {
    for (const backend of ['ftp_control', 'ftp_passive', 'sftp']) {
      let seen: string[] = [];
      await waitFor(`${backend} servers DRAIN`, haproxy!, async () => (seen = await serverStates(backend)).every((s) => s.startsWith('DRAIN')), { timeoutMs: 10_000, detail: () => seen.join() });
    }
    const before = arrivals.length;
    const { reply } = await sshHello(1000);
    assert.equal(reply, '', 'no replica may answer');
    assert.equal(arrivals.length, before, 'no connection may reach a draining replica');
    assert.equal(kept.destroyed, false, 'an established session stays (a draining replica finishes its transfers)');
    assert.equal(await echo(kept, 'still here'), 'still here');
  } finally {
    ready = true;
    kept.destroy();
  }
  await waitFor('SFTP servers UP again', haproxy!, async () => (await serverStates('sftp')).join() === 'UP,UP,UP', { timeoutMs: 10_000 });
  assert.equal((await sshHello()).reply, 'SSH-2.0-standin\r\n');
});

test('a replica that stops answering its health check (frozen) is DOWN within seconds and its sessions are cut', async () => {
  const { socket: stuck, closed } = await openSession();
  const frozenAt = Date.now();
  frozen = true;
  try {
    await waitFor('ftp_control servers DOWN', haproxy!, async () => (await serverStates('ftp_control')).every((s) => s.startsWith('DOWN')), { timeoutMs: 10_000 });
    const downMs = Date.now() - frozenAt;
    assert.ok(downMs < 5000, `marked DOWN after ${downMs} ms (timeout check 1 s, inter 500 ms, fall 2)`);
    assert.ok((await serverStates('sftp')).every((s) => s.startsWith('DOWN')), 'the SFTP servers follow');
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the session on the frozen replica was not cut')), 3000))]);
  } finally {
    frozen = false;
    stuck.destroy();
  }
  await waitFor('SFTP servers UP again', haproxy!, async () => (await serverStates('sftp')).join() === 'UP,UP,UP', { timeoutMs: 10_000 });
});

/** An SFTP-port session through the balancer, past the stand-in's greeting; `closed` settles when the balancer ends it. */
async function openSession(): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect({ host: HOST, port: ports.lbSftp });
  socket.setEncoding('latin1');
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => socket.write('SSH-2.0-deploytest\r\n'));
    socket.once('data', () => resolve());
    socket.once('close', () => reject(new Error('closed before the greeting')));
  });
  return { socket, closed };
}

/** Sends `text` on a session and resolves with what the stand-in echoes back (it echoes after its greeting). */
function echo(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no echo')), 2000);
    socket.once('data', (chunk: string) => {
      clearTimeout(timer);
      resolve(chunk);
    });
    socket.write(text);
  });
}
