import { randomUUID } from 'node:crypto';
import { Transform, Writable, finished } from 'node:stream';
import type { TransferDirection, Usage } from '@ftp/cluster-state';
import { limitsOf, type EffectiveLimits, type User } from '@ftp/identity';
import type { Download, FileStat, Storage, Upload } from '@ftp/storage';
import { LimitError, limitHit } from './limitError';
import { TokenBucket } from './tokenBucket';
import { QuotaReservation, TransferLimiter, transferGates, type LimitsContext } from './transferLimiter';

const tracksUsage = (l: EffectiveLimits) => l.quotaBytes > 0 || l.quotaFiles > 0;

/**
 * One session's storage with its user's limits applied: quotas, daily volume and bandwidth, the same for every front
 * door since both reach files only through Storage. The limits are read at each transfer and file operation
 * (`current`: the user store's view now), so a change made in the users file, the database or the API holds for the
 * session's next transfer. What no limit touches passes straight through: an unlimited download keeps its zero-copy
 * path. Limited transfers move through Node streams (the bytes must pass a gate) and take their budget ahead of need,
 * so the byte path makes no call to the cluster state per chunk.
 */
export function withLimits(storage: Storage, user: User, ctx: LimitsContext, current: () => EffectiveLimits = () => limitsOf(user)): Storage {
  const name = user.name;
  // Per-session caps: one bucket per direction, shared by the session's transfers (SFTP may run several at once).
  const sessionCaps = new Map<TransferDirection, TokenBucket>();
  const sessionCap = (direction: TransferDirection, rate: number) => {
    if (rate <= 0) return undefined;
    let bucket = sessionCaps.get(direction);
    if (bucket?.rate !== rate) sessionCaps.set(direction, (bucket = new TokenBucket(rate, ctx.now)));
    return bucket;
  };
  const gates = (limits: EffectiveLimits, direction: TransferDirection) =>
    transferGates(ctx, name, limits, direction, sessionCap(direction, direction === 'upload' ? limits.sessionBandwidthUp : limits.sessionBandwidthDown));

  /** The published file at `path`, if there is one (a partial upload's stat is not one). */
  const publishedFile = async (path: string): Promise<FileStat | undefined> => {
    const st = await storage.stat(path).catch(() => undefined);
    return st && st.type === 'file' && !st.partial ? st : undefined;
  };

  /** The user's usage; never scanned yet (a quota just set, or Redis lost it): scan the home now. */
  const knownUsage = async () => {
    const usage = await ctx.usage.get(name);
    if (usage) return usage;
    const scanned = await storage.usage();
    await ctx.usage.set(name, scanned, { ifAbsent: true });
    ctx.log.info({ usage: scanned }, 'quota usage scanned from storage');
    return (await ctx.usage.get(name)) ?? scanned;
  };

  /** A publish, delete or overwrite changed the usage; a failure here only leaves drift for the next scan. */
  const applyUsage = async (limits: EffectiveLimits, bytes: number, files: number, uploadId?: string) => {
    try {
      await ctx.usage.apply(name, { bytes, files }, uploadId);
      if (ctx.metrics.perUser) reportUsage(limits, await ctx.usage.get(name));
    } catch (err) {
      ctx.log.warn({ err, bytes, files }, 'quota usage not updated (run ftpctl quota scan)');
    }
  };
  const reportUsage = (limits: EffectiveLimits, usage: Usage | null) => {
    if (!usage) return;
    const ratios = [limits.quotaBytes > 0 ? usage.bytes / limits.quotaBytes : 0, limits.quotaFiles > 0 ? usage.files / limits.quotaFiles : 0];
    ctx.metrics.perUser?.quotaUsed.set({ user: name }, Math.max(...ratios));
  };

  return {
    ...storage,
    stat: (path) => storage.stat(path),
    list: (path) => storage.list(path),
    listEntries: (path) => storage.listEntries(path),
    mkdir: (path) => storage.mkdir(path),
    rmdir: (path) => storage.rmdir(path),
    setModifiedTime: (path, mtime) => storage.setModifiedTime(path, mtime),
    usage: () => storage.usage(),

    async openRead(path, offset) {
      const download = await storage.openRead(path, offset);
      const downloadGates = gates(current(), 'download');
      return downloadGates.length > 0 ? limitedDownload(download, new TransferLimiter(downloadGates)) : download;
    },

    async openUpload(path, start, expectedSize) {
      const limits = current();
      const tracked = tracksUsage(limits);
      const replaced = tracked ? await publishedFile(path) : undefined;
      if (tracked) {
        const usage = await knownUsage();
        if (limits.quotaFiles > 0 && !replaced && usage.files >= limits.quotaFiles) {
          throw limitHit(ctx, 'quota_files', `Quota of ${limits.quotaFiles} files reached`);
        }
      }
      const upload = await storage.openUpload(path, start, expectedSize);
      const quota = limits.quotaBytes > 0 ? new QuotaReservation(ctx, name, randomUUID(), limits.quotaBytes, replaced?.size ?? 0) : undefined;
      const limiter = new TransferLimiter(gates(limits, 'upload'), quota);
      if (limiter.empty && !tracked) return upload;
      try {
        // The bytes already in the file being continued become part of it: they need room too. An announced size is
        // reserved whole, so an upload that cannot fit is refused before its first byte.
        await limiter.acquire(0, Math.max(upload.startOffset, expectedSize ?? 0));
      } catch (err) {
        await upload.abort({ discard: true });
        await limiter.finish();
        throw err;
      }
      return limitedUpload(upload, limiter, async () => {
        if (!tracked) return;
        const size = (await storage.stat(path)).size;
        await applyUsage(limits, size - (replaced?.size ?? 0), replaced ? 0 : 1, quota?.uploadId);
      });
    },

    async delete(path, options) {
      const limits = current();
      const file = tracksUsage(limits) ? await publishedFile(path) : undefined;
      await storage.delete(path, options);
      if (file) await applyUsage(limits, -file.size, -1);
    },

    async rename(from, to, options) {
      const limits = current();
      const replaced = tracksUsage(limits) ? await publishedFile(to) : undefined;
      await storage.rename(from, to, options);
      if (replaced) await applyUsage(limits, -replaced.size, -1);
    },

    /** No front door copies today; should one, the copy counts against the quota like an upload (checked, not reserved). */
    async copy(from, to, options) {
      const limits = current();
      if (!tracksUsage(limits)) return storage.copy(from, to, options);
      const [source, replaced, usage] = await Promise.all([storage.stat(from), publishedFile(to), knownUsage()]);
      const files = replaced ? 0 : 1;
      const bytes = source.size - (replaced?.size ?? 0);
      if (limits.quotaFiles > 0 && usage.files + files > limits.quotaFiles) throw limitHit(ctx, 'quota_files', `Quota of ${limits.quotaFiles} files reached`);
      if (limits.quotaBytes > 0 && usage.bytes + bytes > limits.quotaBytes) throw limitHit(ctx, 'quota_bytes', `Quota of ${limits.quotaBytes} bytes reached`);
      await storage.copy(from, to, options);
      await applyUsage(limits, bytes, files);
    },
  };
}

/**
 * A download whose bytes pass the limiter: through the stream, or through readAt (SFTP). No sendfile. The file stream
 * is piped in only once someone reads, so a reader that uses readAt is not charged for bytes it never sends.
 */
function limitedDownload(download: Download, limiter: TransferLimiter): Download {
  const source = download.stream;
  let piped = false;
  const stream = new Transform({
    // As much in flight as the file stream reads at a time (Node's default 16 KiB would halve a fast download).
    highWaterMark: source.readableHighWaterMark,
    transform(chunk: Buffer, _encoding, done) {
      limiter.acquire(chunk.length).then(
        () => done(null, chunk),
        (err: unknown) => {
          if (err instanceof LimitError && err.allowed > 0) this.push(chunk.subarray(0, err.allowed));
          done(err as Error);
        },
      );
    },
    read(size) {
      if (!piped) {
        piped = true;
        source.pipe(this);
      }
      Transform.prototype._read.call(this, size);
    },
    destroy(err, done) {
      source.destroy(); // the caller's way to close the file
      void limiter.finish();
      done(err);
    },
  });
  source.on('error', (err) => stream.destroy(err));
  const { readAt } = download;
  return {
    stream,
    size: download.size,
    ...(readAt
      ? {
          async readAt(buffer: Buffer, offset: number, length: number, position: number) {
            const n = await readAt.call(download, buffer, offset, length, position);
            await limiter.acquire(n);
            return n;
          },
        }
      : {}),
  };
}

/** What an upload's gate holds before it pushes back: a few socket reads, so the gate does not slow the stream. */
const GATE_BUFFER = 1024 * 1024;

/**
 * An upload whose bytes pass the limiter before they reach the file. The stream's 'finish' comes only once the file's
 * own stream has finished, so a commit after it sees every byte. A limit hit removes what this upload wrote (nothing
 * half-published, no room held by a partial outside the quota).
 */
function limitedUpload(upload: Upload, limiter: TransferLimiter, onCommitted: () => Promise<void>): Upload {
  // The file's stream is made on first use only (an SFTP upload writes by position and never needs it).
  let innerStream: Writable | undefined;
  const inner = () => {
    if (innerStream) return innerStream;
    innerStream = upload.stream;
    innerStream.on('error', (err) => stream.destroy(err));
    return innerStream;
  };
  let hit: LimitError | undefined;
  const pass = async (bytes: number, growth = bytes) => {
    try {
      await limiter.acquire(bytes, growth);
    } catch (err) {
      if (err instanceof LimitError) hit = err;
      throw err;
    }
  };
  const stream: Writable = new Writable({
    highWaterMark: GATE_BUFFER,
    write(chunk: Buffer, _encoding, done) {
      pass(chunk.length).then(() => {
        if (inner().write(chunk)) done();
        else inner().once('drain', () => done());
      }, done);
    },
    final(done) {
      inner().end();
      finished(inner(), (err) => done(err ?? null));
    },
    destroy(err, done) {
      if (innerStream && !innerStream.destroyed) innerStream.destroy(err ?? undefined);
      done(err);
    },
  });
  // Positional writes (SFTP) pass for what they add to the file's end; rewriting earlier bytes needs no more room.
  let inOrder: Promise<unknown> = Promise.resolve();
  let end = upload.startOffset;
  const growth = (to: number) => {
    const more = Math.max(0, to - end);
    end = Math.max(end, to);
    return more;
  };
  return {
    stream,
    startOffset: upload.startOffset,
    bytesWritten: () => upload.bytesWritten(),
    writeAt(offset, data) {
      const length = data instanceof Uint8Array ? data.length : data.reduce((sum, c) => sum + c.length, 0);
      // Writes reach the storage in the order they came, whatever their gates' waits: object storage takes only the
      // next byte, and an SFTP client pipelines its WRITEs in order.
      const turn = inOrder.then(() => pass(length, growth(offset + length)));
      inOrder = turn.catch(() => undefined);
      return turn.then(() => upload.writeAt(offset, data));
    },
    sync: () => upload.sync(),
    async truncate(size) {
      await pass(0, growth(size));
      return upload.truncate(size);
    },
    async commit(stillWanted) {
      try {
        await upload.commit(stillWanted);
        await onCommitted();
      } finally {
        await limiter.finish();
      }
    },
    async abort() {
      await (hit ? upload.abort({ discard: true }) : upload.abort());
      await limiter.finish();
    },
  };
}
