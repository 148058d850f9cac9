import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { Cluster } from './cluster';
import { RawClient } from './rawClient';
import { readAll } from './rawData';

/** Test clients of a cluster, each from its own loopback source address (HAProxy tells the replicas by PROXY protocol). */

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** How long a reply may take under load: 200 logins at once mean 200 scrypt checks on this machine's 2 cores. */
const LOADED_REPLY_MS = 60_000;

export async function loginFrom(cluster: Cluster, source: string, user = cluster.user): Promise<RawClient> {
  const client = await RawClient.connect(cluster.port, cluster.host, source);
  const expect = async (line: string | undefined, code: number) => {
    const reply = line === undefined ? await client.reply(LOADED_REPLY_MS) : await client.command(line, LOADED_REPLY_MS);
    if (reply.code !== code) throw new Error(`${line ?? 'greeting'} → ${reply.code} ${reply.text}`);
  };
  await expect(undefined, 220);
  await expect(`USER ${user}`, 331);
  await expect(`PASS ${cluster.password}`, 230);
  return client;
}

/** PASV, then the data connection from the same source address to the host and port the reply names. */
export async function passiveFrom(client: RawClient, source: string): Promise<Socket> {
  const reply = await client.command('PASV', LOADED_REPLY_MS);
  if (reply.code !== 227) throw new Error(`PASV → ${reply.code} ${reply.text}`);
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.text)!;
  const socket = connect({ host: m.slice(1, 5).join('.'), port: Number(m[5]) * 256 + Number(m[6]), localAddress: source });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

export async function uploadFrom(client: RawClient, source: string, command: string, payload: Buffer) {
  const data = await passiveFrom(client, source);
  const first = await client.command(command, LOADED_REPLY_MS);
  if (first.code !== 150) throw new Error(`${command} → ${first.code} ${first.text}`);
  data.end(payload);
  const final = await client.reply(60_000);
  if (final.code !== 226) throw new Error(`${command} → ${final.code} ${final.text}`);
}

export async function downloadFrom(client: RawClient, source: string, command: string): Promise<Buffer> {
  const data = await passiveFrom(client, source);
  const body = readAll(data);
  const first = await client.command(command, LOADED_REPLY_MS);
  if (first.code !== 150) throw new Error(`${command} → ${first.code} ${first.text}`);
  const final = await client.reply(60_000);
  if (final.code !== 226) throw new Error(`${command} → ${final.code} ${final.text}`);
  return body;
}

/**
 * `clients` sessions at once, `perAddress` from each source address 127.0.0.<firstHost>…, each uploading a file
 * of its own and downloading it back. Returns the sha256 pairs (sent, received) per file name.
 */
export async function uploadAndDownloadConcurrently(cluster: Cluster, options: { clients: number; perAddress: number; firstHost: number; prefix: string }) {
  const results = await Promise.all(
    Array.from({ length: options.clients }, async (_, i) => {
      const source = `127.0.0.${options.firstHost + Math.floor(i / options.perAddress)}`;
      const name = `${options.prefix}-${i}.bin`;
      const payload = randomBytes(16 * 1024 + ((i * 7919) % (256 * 1024)));
      const client = await loginFrom(cluster, source);
      try {
        await uploadFrom(client, source, `STOR ${name}`, payload);
        const back = await downloadFrom(client, source, `RETR ${name}`);
        await client.command('QUIT', LOADED_REPLY_MS);
        return { name, sent: sha256(payload), received: sha256(back) };
      } finally {
        client.close();
      }
    }),
  );
  return results;
}

/** Sum of one Prometheus counter (all label sets matching `labels`) over every replica's /metrics. */
export async function clusterCounter(cluster: Cluster, name: string, labels = ''): Promise<number> {
  let total = 0;
  for (const replica of cluster.replicas.filter((r) => r.running)) total += metricValue(await replica.metrics(), name, labels);
  return total;
}

export function metricValue(text: string, name: string, labels = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (match && match[1] === name && (match[2] ?? '').includes(labels)) total += Number(match[3]);
  }
  return total;
}
