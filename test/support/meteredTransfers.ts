import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Socket } from 'node:net';
import { isPartialName } from '@ftp/storage';
import { passiveFrom } from './clusterClient';
import type { RawClient } from './rawClient';

/**
 * FTP transfers whose bytes are counted while they run, for tests that measure a rate between two instants (a cap
 * holds over a window, not over a transfer's first burst), and that stop a transfer on purpose (ABOR) once measured.
 */

export type Reply = { code: number; text: string };

/** How long a final reply may take on a loaded machine once the data has moved. */
const FINAL_REPLY_MS = 60_000;

export interface MeteredTransfer {
  /** Bytes moved so far: received (download) or taken by the kernel (upload). */
  bytes(): number;
  /** When the first byte moved (ms since epoch), 0 before. */
  firstByteAt(): number;
  /** When the final reply came (ms since epoch), 0 before. */
  endedAt(): number;
  /** The 1xx and the final reply; for a download also the received bytes' SHA-256. Never rejects. */
  done: Promise<{ first: Reply; final?: Reply; sha256?: string; error?: string }>;
  /** ABOR on the control connection, then waits for the transfer's replies; the data connection is closed. */
  abort(): Promise<Reply[]>;
}

/** RETR `name` on a logged-in session through the balancer, from `source`. */
export async function meteredDownload(client: RawClient, source: string, name: string): Promise<MeteredTransfer> {
  const data = await passiveFrom(client, source);
  const hash = createHash('sha256');
  let bytes = 0;
  let firstAt = 0;
  data.on('data', (chunk: Buffer) => {
    if (firstAt === 0) firstAt = Date.now();
    bytes += chunk.length;
    hash.update(chunk);
  });
  const closed = new Promise<void>((resolve) => data.once('close', () => resolve()));
  const first = await client.command(`RETR ${name}`, FINAL_REPLY_MS);
  let endedAt = 0;
  const done = (async () => {
    if (first.code !== 150) {
      data.destroy();
      return { first };
    }
    try {
      const final = await client.reply(FINAL_REPLY_MS * 2);
      endedAt = Date.now();
      await closed;
      return { first, final, sha256: hash.digest('hex') };
    } catch (err) {
      return { first, error: (err as Error).message };
    }
  })();
  return {
    bytes: () => bytes,
    firstByteAt: () => firstAt,
    endedAt: () => endedAt,
    done,
    abort: () => abortTransfer(client, data, () => undefined),
  };
}

/**
 * STOR `name` on a logged-in session, sending `payload` in 256 KiB writes, each after the kernel took the one before
 * (so `bytes()` follows what the server reads, not a user-space queue). Stops writing on abort or when the server
 * closes the data connection.
 */
export async function meteredUpload(client: RawClient, source: string, name: string, payload: Buffer): Promise<MeteredTransfer> {
  const data = await passiveFrom(client, source);
  let bytes = 0;
  let firstAt = 0;
  let stopped = false;
  data.once('close', () => (stopped = true));
  const first = await client.command(`STOR ${name}`, FINAL_REPLY_MS);
  let endedAt = 0;
  const pump = async () => {
    const chunk = 256 * 1024;
    for (let at = 0; at < payload.length && !stopped; at += chunk) {
      const part = payload.subarray(at, at + chunk);
      const ok = await new Promise<boolean>((resolve) => data.write(part, (err) => resolve(!err)));
      if (!ok) return;
      if (firstAt === 0) firstAt = Date.now();
      bytes += part.length;
    }
    if (!stopped) data.end();
  };
  const done = (async () => {
    if (first.code !== 150) {
      data.destroy();
      return { first };
    }
    void pump();
    try {
      const final = await client.reply(FINAL_REPLY_MS * 2);
      endedAt = Date.now();
      return { first, final };
    } catch (err) {
      return { first, error: (err as Error).message };
    }
  })();
  return {
    bytes: () => bytes,
    firstByteAt: () => firstAt,
    endedAt: () => endedAt,
    done,
    abort: () => abortTransfer(client, data, () => (stopped = true)),
  };
}

async function abortTransfer(client: RawClient, data: Socket, stop: () => void): Promise<Reply[]> {
  stop();
  client.send('ABOR');
  const replies: Reply[] = [];
  // 426 + 226 for a running transfer (or one final reply if it ended meanwhile, then ABOR's own 226).
  try {
    while (!replies.some((r) => r.code === 226 || r.code >= 500)) replies.push(await client.reply(15_000));
  } finally {
    data.destroy();
  }
  return replies;
}

/** Resolves at `at` (ms since epoch), at once if that is past. */
export const until = (at: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** Bytes per second moved by `count` between `from` and `to` (ms since epoch): sampled at both instants. */
export async function rateBetween(count: () => number, from: number, to: number): Promise<number> {
  await until(from);
  const start = { at: Date.now(), bytes: count() };
  await until(to);
  return ((count() - start.bytes) * 1000) / (Date.now() - start.at);
}

export interface HomeContents {
  /** Published files: path relative to the home, and size. */
  files: { name: string; size: number }[];
  /** Partial uploads (`.name.ftp-partial`) left in the home. */
  partials: string[];
  /** Total bytes of the published files. */
  bytes: number;
}

/** What a user's home holds on disk, partial uploads apart. */
export function homeContents(home: string): HomeContents {
  const out: HomeContents = { files: [], partials: [], bytes: 0 };
  let entries;
  try {
    entries = readdirSync(home, { recursive: true, withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isFile()) continue;
    const name = path.relative(home, path.join(e.parentPath, e.name));
    if (isPartialName(e.name)) out.partials.push(name);
    else {
      const size = statSync(path.join(home, name)).size;
      out.files.push({ name, size });
      out.bytes += size;
    }
  }
  out.files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}
