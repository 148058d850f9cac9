import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

/**
 * One finished transfer as the wu-ftpd xferlog(5) format records it. vsftpd writes the same format with
 * `xferlog_std_format=YES`, and log analysers of both (webalizer, xferstats, awstats, fail2ban filters) read it.
 */
export interface XferlogEntry {
  /** When the transfer ended. */
  at: Date;
  durationMs: number;
  /** The client's address (the real one behind a PROXY-protocol balancer). */
  remoteHost: string;
  /** Bytes moved on the data connection. */
  bytes: number;
  /** The file as the client sees it, from the user's root. */
  path: string;
  /** TYPE of the transfer: A (ASCII) or I (binary). */
  type: 'A' | 'I';
  direction: 'upload' | 'download';
  anonymous: boolean;
  user: string;
  completed: boolean;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** ctime(3) form in local time, as wu-ftpd and vsftpd write it: `Tue Mar  4 09:05:07 2025` (day padded with a space). */
export function xferlogDate(at: Date): string {
  const day = String(at.getDate()).padStart(2, ' ');
  return `${DAYS[at.getDay()]} ${MONTHS[at.getMonth()]} ${day} ${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())} ${at.getFullYear()}`;
}

/**
 * Control characters (C0, DEL, C1) become `?`, as vsftpd's str_replace_unprintable does to the whole line, so a file
 * name cannot break the line or inject a terminal sequence. Printable non-ASCII (UTF-8 names) is kept.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f]/g;

/** A field without spaces: vsftpd replaces each space of the file name with `_` (the format is space-separated). */
const field = (value: string) => value.replace(/ /g, '_');

/**
 * One xferlog line, without its newline:
 * `current-time transfer-time remote-host file-size filename transfer-type special-action-flag direction access-mode
 * username service-name authentication-method authenticated-user-id completion-status`.
 * As vsftpd writes it: transfer time in whole seconds, at least 1; special action `_` (none); direction `i`/`o`;
 * access mode `a` (anonymous) or `r` (real user); service `ftp`, authentication method `0`, user id `*`; status
 * `c` (complete) or `i` (incomplete). vsftpd logs an anonymous user's e-mail (the password); we log the login name
 * instead, so no password-field text is ever written.
 */
export function formatXferlogLine(entry: XferlogEntry): string {
  const seconds = Math.max(1, Math.round(entry.durationMs / 1000));
  const line = [
    xferlogDate(entry.at),
    seconds,
    entry.remoteHost,
    entry.bytes,
    field(entry.path),
    entry.type === 'A' ? 'a' : 'b',
    '_',
    entry.direction === 'upload' ? 'i' : 'o',
    entry.anonymous ? 'a' : 'r',
    field(entry.user),
    'ftp',
    '0',
    '*',
    entry.completed ? 'c' : 'i',
  ].join(' ');
  return line.replace(UNPRINTABLE, '?');
}

export interface Xferlog {
  /** Queues one line; never blocks and never throws. */
  write(entry: XferlogEntry): void;
  /** Reopens the file (after logrotate moved it: SIGHUP). */
  reopen(): void;
  /** Writes what is queued and closes the file. */
  close(): Promise<void>;
}

/** Bytes waiting for the disk beyond which lines are dropped (and counted) rather than held: a stuck disk must not grow the heap. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/**
 * Appends xferlog lines to `file` asynchronously: a session hands its line to a file stream and goes on (lines written
 * while one write is in flight go out together in one writev). `onDrop` is called for every line that is not written.
 */
export function createXferlog(file: string, options: { onDrop?: (reason: string) => void } = {}): Xferlog {
  let broken: string | undefined;
  let closed = false;
  const open = (): WriteStream | undefined => {
    try {
      mkdirSync(dirname(file), { recursive: true });
    } catch (err) {
      broken = (err as Error).message;
      return undefined;
    }
    const stream = createWriteStream(file, { flags: 'a' });
    // A file that cannot be opened or written: lines are dropped (and counted) until a reopen succeeds.
    stream.on('error', (err: Error) => {
      if (current === stream) broken = err.message;
    });
    return stream;
  };
  let current = open();
  const finish = (stream: WriteStream | undefined) =>
    new Promise<void>((resolve) => {
      if (!stream || stream.closed) return resolve();
      stream.once('close', () => resolve());
      if (stream.errored) stream.destroy();
      else stream.end();
    });
  return {
    write(entry) {
      if (closed) return;
      if (broken || !current) return options.onDrop?.(broken ?? 'not open');
      if (current.writableLength > MAX_BUFFERED_BYTES) return options.onDrop?.('buffer full');
      current.write(`${formatXferlogLine(entry)}\n`);
    },
    reopen() {
      if (closed) return;
      const old = current;
      broken = undefined;
      current = open();
      void finish(old);
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return finish(current);
    },
  };
}
