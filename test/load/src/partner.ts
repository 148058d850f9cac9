import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { INTERRUPTED, type Login, type Session, type Timeouts, type ByteMeter, type UploadOptions } from './clients/session';
import { connectFtp } from './clients/ftp';
import { connectSftp } from './clients/sftp';
import { contentSha256, uniqueContent, type FileContent, type Ledger } from './ledger';
import type { PartnerPlan, PausePlan, SizePlan } from './scenario';
import { record, type Batch } from './stats';

/**
 * One iteration of a partner script: one session (connect, login, the steps, QUIT), then the partner's think time.
 * Every operation records ftp_errors; the first failure ends the iteration (its session is broken by then).
 */

export interface IterationContext {
  vu: number;
  iteration: number;
  runId: string;
  partner: PartnerPlan;
  host: string;
  port: number;
  login: Login;
  timeouts: Timeouts;
  meter: ByteMeter;
  signal: AbortSignal;
  batch: Batch;
  /** Per-VU memory across iterations. */
  state: { dirReady: boolean };
  /** `--ledger`: every login, upload outcome and download is written there, and uploads get contents of their own. */
  ledger?: Ledger;
}

/** A file of this iteration; with a ledger, its own contents and their digest. */
interface FileSent {
  path: string;
  bytes: number;
  content?: FileContent;
  contentKey?: string;
  sha256?: string;
}

export type IterationResult = 'ok' | 'failed' | 'interrupted';

/** Pause of a broken link before the partner reconnects to resume. */
const RECONNECT_PAUSE_MS = 100;

export function pickSize(size: SizePlan, random = Math.random): number {
  switch (size.kind) {
    case 'fixed':
      return size.bytes;
    case 'range': // log-uniform: as many files of 1-10 KiB as of 1-10 MiB
      return Math.round(Math.exp(Math.log(size.min) + random() * (Math.log(size.max) - Math.log(size.min))));
    case 'pick': {
      const total = size.choices.reduce((t, c) => t + c.weight, 0);
      let r = random() * total;
      for (const c of size.choices) if ((r -= c.weight) < 0) return c.bytes;
      return size.choices[size.choices.length - 1].bytes;
    }
  }
}

export function pickPause(p: PausePlan, random = Math.random): number {
  return p.min + random() * (p.max - p.min);
}

/** A short, groupable reason: an FTP reply code and text, an SFTP status, a socket error code, or our TIMEOUT. */
export function reasonOf(err: unknown): string {
  const e = err as { code?: unknown; message?: string };
  const message = String(e?.message ?? err).split('\n')[0];
  if (typeof e?.code === 'number') return `${e.code} ${message.replace(/^\d{3}[ -]/, '')}`.slice(0, 60);
  if (typeof e?.code === 'string') return e.code;
  if (/closed|FIN packet|ECONNRESET/i.test(message)) return 'connection closed';
  return message.slice(0, 60);
}

const isInterrupted = (err: unknown) => (err as { code?: string })?.code === INTERRUPTED;

export async function runIteration(ctx: IterationContext): Promise<IterationResult> {
  const { batch, partner, ledger } = ctx;
  const who = { protocol: partner.protocol, user: ctx.login.user };
  const started = performance.now();
  let session: Session | undefined;

  /** One operation: counted in ftp_errors either way; a failure is recorded by reason and ends the iteration. */
  const op = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      const value = await fn();
      record.rate(batch, 'ftp_errors', false);
      return value;
    } catch (err) {
      if (!isInterrupted(err) && !ctx.signal.aborted) {
        record.rate(batch, 'ftp_errors', true);
        record.error(batch, `${name}: ${reasonOf(err)}`);
      }
      throw err;
    }
  };
  const login = () =>
    op('login', async () => {
      const t = performance.now();
      const connect = partner.protocol === 'sftp' ? connectSftp : connectFtp;
      const noted = (ok: boolean, err?: unknown) =>
        ledger?.write({ kind: 'login', ...who, ok, ...(err === undefined ? {} : { error: reasonOf(err) }), at: Date.now(), ms: Math.round(performance.now() - t) });
      let s: Session;
      try {
        s = await connect({ host: ctx.host, port: ctx.port, login: ctx.login, tls: partner.protocol === 'ftps', timeouts: ctx.timeouts, meter: ctx.meter, signal: ctx.signal });
      } catch (err) {
        noted(false, err);
        throw err;
      }
      noted(true);
      record.trend(batch, 'ftp_login_duration', performance.now() - t);
      return s;
    });
  const transfer = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const value = await op(name, fn);
    record.trend(batch, 'ftp_transfer_duration', performance.now() - t);
    return value;
  };
  const nameOf = (n: number) => `${partner.dir}/${ctx.runId}-v${ctx.vu}-i${ctx.iteration}-${n}.bin`;
  const newFile = (path: string, bytes: number): FileSent => {
    if (!ledger) return { path, bytes };
    const contentKey = `${ctx.runId}/${ctx.login.user}/${path}`;
    const content = uniqueContent(contentKey);
    return { path, bytes, content, contentKey, sha256: contentSha256(content, bytes) };
  };
  /** `send` is one upload of `file` (or part of it); with a ledger, its outcome is written there. */
  const sendFile = async (file: FileSent, note: { cut?: boolean; resumedFrom?: number }, send: () => Promise<void>) => {
    const startedAt = Date.now();
    const noted = (acknowledged: boolean, error?: string) =>
      ledger?.write({
        kind: 'upload',
        ...who,
        path: file.path,
        size: file.bytes,
        sha256: file.sha256!,
        contentKey: file.contentKey!,
        acknowledged,
        ...(error === undefined ? {} : { error }),
        ...note,
        startedAt,
        at: Date.now(),
      });
    try {
      await send();
    } catch (err) {
      noted(false, reasonOf(err));
      throw err;
    }
    noted(!note.cut, note.cut ? 'cut on purpose' : undefined);
  };
  const contentOf = (file: FileSent, from = 0): UploadOptions => (file.content ? { content: file.content, from } : {});

  try {
    session = await login();
    if (!ctx.state.dirReady) {
      await op('mkdir', () => session!.mkdir(partner.dir));
      ctx.state.dirReady = true;
    }
    let files: FileSent[] = [];
    let n = 0;
    for (const step of partner.steps) {
      switch (step.kind) {
        case 'list': {
          const names = new Set(await op('list', () => session!.list(partner.dir)));
          if (files.length) record.check(batch, 'listing shows the uploads', files.every((f) => names.has(f.path.slice(partner.dir.length + 1))));
          break;
        }
        case 'upload':
          for (let i = 0; i < step.files; i++) {
            const file = newFile(nameOf(n++), pickSize(step.size));
            await sendFile(file, {}, () => transfer('upload', () => session!.upload(file.path, file.bytes, contentOf(file))));
            record.add(batch, 'ftp_files_uploaded');
            files.push(file);
          }
          break;
        case 'download':
          for (const f of files) {
            const hash = ledger && f.sha256 ? createHash('sha256') : undefined;
            const noted = (fields: { gotSha256?: string; bytes?: number; error?: string }) =>
              ledger?.write({ kind: 'download', ...who, path: f.path, expectedSha256: f.sha256!, ...fields, at: Date.now() });
            let got: number;
            try {
              got = await transfer('download', () => session!.download(f.path, hash ? { onData: (chunk) => hash.update(chunk) } : undefined));
            } catch (err) {
              if (hash) noted({ error: reasonOf(err) });
              throw err;
            }
            record.add(batch, 'ftp_files_downloaded');
            record.check(batch, 'download has the uploaded size', got === f.bytes);
            if (hash) {
              const gotSha256 = hash.digest('hex');
              noted({ gotSha256, bytes: got });
              record.check(batch, 'download has the uploaded bytes', gotSha256 === f.sha256);
            }
          }
          break;
        case 'delete':
          for (const f of files) await op('delete', () => session!.remove(f.path));
          files = [];
          break;
        case 'resume': {
          const file = newFile(nameOf(n++), pickSize(step.size));
          const cut = Math.max(1, Math.floor(file.bytes * step.cutAt));
          await sendFile(file, { cut: true }, () => op('upload (cut)', () => session!.upload(file.path, file.bytes, { cutAfter: cut, ...contentOf(file) })));
          await sleep(RECONNECT_PAUSE_MS, undefined, { signal: ctx.signal });
          session = await login();
          const have = await op('size', () => session!.size(file.path));
          await sendFile(file, { resumedFrom: have }, () => transfer('resume', () => session!.upload(file.path, file.bytes - have, { append: true, ...contentOf(file, have) })));
          record.add(batch, 'ftp_files_uploaded');
          record.check(batch, 'resumed upload has its full size', (await op('size', () => session!.size(file.path))) === file.bytes);
          files.push(file);
          break;
        }
        case 'think':
          await sleep(pickPause(step.pause), undefined, { signal: ctx.signal });
          break;
      }
    }
    await op('quit', () => session!.close());
    session = undefined;
    record.trend(batch, 'ftp_session_duration', performance.now() - started);
    await sleep(pickPause(partner.think), undefined, { signal: ctx.signal });
    return finish('ok');
  } catch (err) {
    session?.destroy();
    if (isInterrupted(err) || ctx.signal.aborted) return 'interrupted';
    return finish('failed');
  }

  function finish(result: IterationResult): IterationResult {
    record.add(batch, 'iterations');
    record.trend(batch, 'iteration_duration', performance.now() - started);
    return result;
  }
}
