import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { RawClient } from './rawClient';
import type { TestServer } from './server';

/** Open file descriptors of this process (Linux /proc), to prove sessions leave nothing behind. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Live timers of this process: a closed session must not leave one behind (it would hold the session and the process). */
export function activeTimerCount(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Waits (up to 3 s: cleanup after a close is asynchronous) until this process is back to at most `fds + slack`
 * open descriptors and `timers` live timers; throws with the counts otherwise.
 */
export async function expectNothingLeaked(before: { fds: number; timers: number }, slack = 2) {
  const ok = () => openFdCount() <= before.fds + slack && activeTimerCount() <= before.timers;
  await waitFor('fds and timers to be released', ok, 3000).catch(() => {
    throw new Error(`leak: fds ${before.fds} → ${openFdCount()}, timers ${before.timers} → ${activeTimerCount()}`);
  });
}

/** What expectNothingLeaked compares against. */
export const resourceSnapshot = () => ({ fds: openFdCount(), timers: activeTimerCount() });

/** Polls `check` until it returns true; throws `what` after timeoutMs. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A raw control connection logged in as the test user. */
export async function rawLogin(server: TestServer, localAddress?: string): Promise<RawClient> {
  const client = await RawClient.connect(server.port, server.host, localAddress);
  await client.login(server.user, server.password);
  return client;
}

/** Sends PASV, checks the 227 and connects the data socket to the port it names. */
export async function openPassive(client: RawClient): Promise<Socket> {
  const reply = await client.command('PASV');
  if (reply.code !== 227) throw new Error(`PASV → ${reply.code} ${reply.text}`);
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.text);
  if (!m) throw new Error(`unparsable 227: ${reply.text}`);
  const host = m.slice(1, 5).join('.');
  const port = Number(m[5]) * 256 + Number(m[6]);
  const socket = connect({ host, port });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Sends EPSV, checks the 229 and connects the data socket to the port it names (on the control connection's host). */
export async function openEpsv(client: RawClient, host = '127.0.0.1'): Promise<Socket> {
  const reply = await client.command('EPSV');
  if (reply.code !== 229) throw new Error(`EPSV → ${reply.code} ${reply.text}`);
  const m = /\(\|\|\|(\d+)\|\)/.exec(reply.text);
  if (!m) throw new Error(`unparsable 229: ${reply.text}`);
  const socket = connect({ host, port: Number(m[1]) });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Everything the peer sends until it closes the socket. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Writes `data` and waits until the kernel has taken it. */
export function writeData(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
}

/** A data command over a fresh passive connection: returns the 1xx, the final reply and the bytes received. */
export async function passiveDownload(client: RawClient, command: string) {
  const data = await openPassive(client);
  const body = readAll(data);
  const first = await client.command(command);
  if (first.code !== 150) {
    data.destroy();
    return { first, final: first, body: Buffer.alloc(0) };
  }
  const final = await client.reply(15_000);
  return { first, final, body: await body };
}

/** STOR/APPE over a fresh passive connection. */
export async function passiveUpload(client: RawClient, command: string, payload: Buffer) {
  const data = await openPassive(client);
  const first = await client.command(command);
  if (first.code !== 150) {
    data.destroy();
    return { first, final: first };
  }
  data.end(payload);
  return { first, final: await client.reply(15_000) };
}
