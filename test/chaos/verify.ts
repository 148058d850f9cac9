import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { uniqueContent } from '../load/src/ledger';
import type { Delivery } from '../support/workers';
import type { FileAttempts, Ledger } from './ledgerFiles';
import { ARCHIVE, INBOX } from './users';

/**
 * The verdict, from the outside (the ledger: what clients sent and were told; the webhook receiver: what the workers
 * did) and from the storage (every file under the users' homes). Rules:
 * - an acknowledged upload is VERIFIED when exactly one file holds its bytes, at the place its one successful webhook
 *   names (moved to /archive/ for the inbox), with its sha256 sidecar beside it; it is LOST when its bytes are not on
 *   the storage or it was not processed (no successful webhook, no sidecar, not moved);
 * - an upload is DUPLICATED when any effect happened twice: two files with its bytes, two sidecars, two delivery ids
 *   (`x-ftp-delivery` = upload id = job) for it. The receiver applies a delivery once per `x-ftp-delivery`, as the
 *   worker's README asks of a receiver: a second successful delivery of the same id is a REDELIVERY, dropped by the
 *   receiver and reported apart (not duplicated), unless it says something else than the applied one (duplicated);
 * - a file under its final name must hold exactly the bytes of a ledger upload of that name; a hidden partial
 *   (`.name.ftp-partial`) must be a prefix of what the client sent (resumable);
 * - a download must have returned the bytes that partner uploaded.
 */

export interface StoredFile {
  user: string;
  /** Path inside the user's home: `archive/x.bin`. */
  rel: string;
  name: string;
  dir: string;
  abs: string;
  size: number;
}

export interface VerifyInput {
  ledger: Ledger;
  deliveries: Delivery[];
  dataDir: string;
  users: string[];
  outboxDir: string;
  /** When workers were SIGKILLed (ms since the epoch): a delivery repeated across one is the webhook's documented at-least-once. */
  workerKillsAt?: number[];
  /** Jobs in the queue's failed set (no webhook will come for them). */
  failedJobs?: FailedJob[];
  /** Jobs whose worker lost its lock while running them (its logs: "could not renew lock", "Missing lock", "Lock mismatch"). */
  lockLostJobs?: Set<string>;
  /** Jobs (upload ids) whose webhook attempt timed out waiting for the receiver's answer (a worker log line says so). */
  webhookTimeoutJobs?: Set<string>;
}

export interface FailedJob {
  id: string;
  user: string;
  /** As the client saw it: `/out/x.bin`. */
  path: string;
  size: number;
  sha256?: string;
  reason: string;
}

/**
 * Why an upload counts as duplicated: its partial was published and processed before the resumed file was (two jobs,
 * two delivery ids: finding 1); anything else (two files, two sidecars, two jobs, a redelivery saying something else).
 */
export type DuplicateCause = 'partial-published' | 'other';

/**
 * Why one delivery id was delivered successfully more than once (the webhook's at-least-once; the receiver drops the
 * repeat): across a worker SIGKILL (the receiver answered before the worker recorded the step), after its worker lost
 * the job's lock (the run that took it over delivered again), other.
 */
export type RedeliveryCause = 'worker-kill' | 'lock-loss' | 'timeout' | 'other';

export interface Verdict {
  uploads: {
    /** Files the clients tried to upload, and upload operations (a resume step makes two). */
    files: number;
    operations: number;
    acknowledged: number;
    verified: number;
    lost: number;
    duplicated: number;
    /** Per cause (an upload may have several). */
    duplicatedBy: Record<DuplicateCause, number>;
    unacknowledged: number;
    /** Of the unacknowledged: nothing on the storage, a resumable partial, complete (the 226 was lost, the file not), other bytes under its name. */
    absent: number;
    resumablePartial: number;
    completedWithoutAck: number;
    wrongUnderName: number;
  };
  /** Completed downloads: byte-exact, another upload's bytes, fewer bytes than uploaded (with the server's 226), other bytes. */
  downloads: { attempted: number; verified: number; foreign: number; truncated: number; wrong: number; failed: number };
  logins: { attempted: number; ok: number };
  storage: { files: number; sidecars: number; partials: number; otherHidden: number; wrongContent: number; unknown: number; corruptPartials: number; orphanSidecars: number; stalePartials: number };
  /** Uploads published (an upload event, processed) with fewer or other bytes than the client sent: a partial was, for a while, the file. */
  publishedPartial: number;
  webhooks: {
    deliveries: number;
    successes: number;
    uploadIds: number;
    /** Delivery ids delivered successfully twice or more: applied once by the receiver, the repeats dropped. */
    redelivered: number;
    /** Of those, by cause. */
    redeliveredBy: Record<RedeliveryCause, number>;
    /** Successful deliveries the receiver dropped as repeats. */
    dropped: number;
    /** One line per redelivered id (what and why), for the report. */
    redeliveries: string[];
    unknown: number;
  };
  outboxLeft: number;
  /** One line per violation (LOST, DUPLICATED, BAD …); empty when all is well. */
  problems: string[];
}

const PARTIAL = /^\.(.+)\.ftp-partial$/;
const SIDECAR = '.sha256';

export function scanHomes(dataDir: string, users: string[]): StoredFile[] {
  const out: StoredFile[] = [];
  const walk = (user: string, dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const abs = join(dir, e.name);
      if (e.isDirectory()) walk(user, abs);
      else if (e.isFile()) out.push({ user, rel: relative(join(dataDir, user), abs), name: e.name, dir, abs, size: statSync(abs).size });
    }
  };
  for (const user of users) if (existsSync(join(dataDir, user))) walk(user, join(dataDir, user));
  return out;
}

const sha256File = (abs: string) => createHash('sha256').update(readFileSync(abs)).digest('hex');

/** A partial holds a prefix of what the client sent. */
export function isPrefixOf(f: FileAttempts, partial: StoredFile): boolean {
  if (partial.size > f.size) return false;
  return readFileSync(partial.abs).equals(uniqueContent(f.contentKey).at(0, partial.size));
}

interface DeliveryData {
  user: string;
  path: string;
  storageKey: string;
}

export function verify(input: VerifyInput): Verdict {
  const { ledger, dataDir } = input;
  const problems: string[] = [];
  const stored = scanHomes(dataDir, input.users);
  const shaOf = new Map<string, string>();
  const sha = (f: StoredFile) => {
    let h = shaOf.get(f.abs);
    if (h === undefined) shaOf.set(f.abs, (h = sha256File(f.abs)));
    return h;
  };

  const copies = new Map<string, StoredFile[]>();
  const sidecars = new Map<string, StoredFile[]>();
  const partials = new Map<string, StoredFile[]>();
  const storage = { files: 0, sidecars: 0, partials: 0, otherHidden: 0, wrongContent: 0, unknown: 0, corruptPartials: 0, orphanSidecars: 0, stalePartials: 0 };
  const push = (m: Map<string, StoredFile[]>, key: string, f: StoredFile) => m.set(key, [...(m.get(key) ?? []), f]);
  for (const f of stored) {
    const partial = PARTIAL.exec(f.name);
    if (partial) {
      storage.partials++;
      push(partials, partial[1], f);
    } else if (f.name.startsWith('.')) storage.otherHidden++;
    else if (f.name.endsWith(SIDECAR)) {
      storage.sidecars++;
      push(sidecars, f.name.slice(0, -SIDECAR.length), f);
    } else {
      storage.files++;
      push(copies, f.name, f);
    }
  }

  // Successful deliveries by file (user + path as the client saw it), then by upload id.
  const delivered = new Map<string, Map<string, Delivery[]>>();
  const webhooks: Verdict['webhooks'] = {
    deliveries: input.deliveries.length,
    successes: 0,
    uploadIds: 0,
    redelivered: 0,
    redeliveredBy: { 'worker-kill': 0, 'lock-loss': 0, timeout: 0, other: 0 },
    dropped: 0,
    redeliveries: [],
    unknown: 0,
  };
  for (const d of input.deliveries) {
    if (d.status < 200 || d.status >= 300) continue;
    webhooks.successes++;
    const data = d.body.data as DeliveryData;
    const key = `${data.user}/${data.path.replace(/^\//, '')}`;
    if (!ledger.files.has(key)) {
      webhooks.unknown++;
      problems.push(`BAD webhook for an upload no client made: ${key} (id ${d.id})`);
    }
    const ids = delivered.get(key) ?? new Map<string, Delivery[]>();
    delivered.set(key, ids);
    ids.set(d.id, [...(ids.get(d.id) ?? []), d]);
  }
  for (const ids of delivered.values()) webhooks.uploadIds += ids.size;

  let publishedPartial = 0;
  const uploads: Verdict['uploads'] = {
    files: ledger.files.size,
    operations: ledger.uploads.length,
    acknowledged: 0,
    verified: 0,
    lost: 0,
    duplicated: 0,
    duplicatedBy: { 'partial-published': 0, other: 0 },
    unacknowledged: 0,
    absent: 0,
    resumablePartial: 0,
    completedWithoutAck: 0,
    wrongUnderName: 0,
  };
  const kills = input.workerKillsAt ?? [];
  const failedByKey = new Map<string, FailedJob[]>();
  for (const j of input.failedJobs ?? []) {
    const key = `${j.user}/${j.path.replace(/^\//, '')}`;
    failedByKey.set(key, [...(failedByKey.get(key) ?? []), j]);
  }
  /** Seconds of x-ftp-timestamp (the worker signs each attempt) of a delivery. */
  const sentAt = (d: Delivery) => Number(d.headers['x-ftp-timestamp']) * 1000;
  for (const f of ledger.files.values()) {
    const ids = delivered.get(f.key) ?? new Map<string, Delivery[]>();
    const mine = copies.get(f.name) ?? [];
    const good = mine.filter((c) => c.user === f.user && sha(c) === f.sha256);
    for (const c of mine.filter((c) => !good.includes(c))) {
      storage.wrongContent++;
      problems.push(`BAD ${c.user}/${c.rel}: ${c.size} bytes under the final name, not what was sent (${f.size} bytes, sha256 ${f.sha256.slice(0, 12)}…)`);
    }
    const notTheFile = (data: { size: number; sha256?: string | null }) => data.size !== f.size || (typeof data.sha256 === 'string' && data.sha256 !== f.sha256);
    const partialEvents = [...ids].filter(([, ds]) => notTheFile(ds[0].body.data as { size: number; sha256: string | null }));
    // A published partial whose job failed (the file had changed under it by the time the worker hashed it).
    const failedOfIt = failedByKey.get(f.key) ?? [];
    const failedPartials = failedOfIt.filter((j) => notTheFile(j));
    if (partialEvents.length || failedPartials.length) {
      publishedPartial++;
      const shown = [
        ...partialEvents.map(([id, ds]) => `${id} (${(ds[0].body.data as { size: number }).size} bytes, completed ${String(ds[0].body.occurredAt)}, processed)`),
        ...failedPartials.map((j) => `${j.id} (${j.size} bytes, job failed: ${j.reason})`),
      ];
      problems.push(`PARTIAL PUBLISHED ${f.key}: an upload event for bytes the client did not send as the file (${f.size} bytes): ${shown.join(', ')}`);
    }
    for (const j of failedOfIt.filter((x) => !failedPartials.includes(x))) problems.push(`FAILED JOB ${j.id} for ${f.key} (${j.size} bytes): ${j.reason}`);
    const dup: string[] = [];
    const causes = new Set<DuplicateCause>();
    if (good.length > 1) {
      dup.push(`${good.length} files hold it (${good.map((c) => c.rel).join(', ')})`);
      causes.add('other');
    }
    if (ids.size > 1) {
      const shown = [...ids].map(([id, ds]) => `${id} (${(ds[0].body.data as { size: number }).size} bytes, completed ${String(ds[0].body.occurredAt)})`);
      dup.push(`${ids.size} upload ids (jobs) delivered: ${shown.join(', ')}`);
      // The resumed file's job and the published partial's: the partial's is the extra one.
      causes.add(partialEvents.length && ids.size - partialEvents.length <= 1 ? 'partial-published' : 'other');
    }
    // The receiver applied the first successful delivery of each id (ds[0]); later ones are repeats it dropped.
    for (const [id, ds] of ids) {
      if (ds.length < 2) continue;
      const applied = JSON.stringify(ds[0].body.data);
      const other = ds.slice(1).filter((d) => JSON.stringify(d.body.data) !== applied);
      if (other.length) {
        dup.push(`delivery id ${id} delivered again saying something else: ${other.map((d) => JSON.stringify(d.body.data)).join(', ')} (applied: ${applied})`);
        causes.add('other');
        continue;
      }
      const first = Math.min(...ds.map(sentAt));
      const last = Math.max(...ds.map(sentAt));
      const acrossKill = kills.some((k) => k >= first - 1000 && k <= last + 1000);
      const lockLost = input.lockLostJobs?.has(id) ?? false;
      const timedOut = input.webhookTimeoutJobs?.has(id) ?? false;
      const cause: RedeliveryCause = acrossKill ? 'worker-kill' : lockLost ? 'lock-loss' : timedOut ? 'timeout' : 'other';
      webhooks.redelivered++;
      webhooks.redeliveredBy[cause]++;
      webhooks.dropped += ds.length - 1;
      const why = {
        'worker-kill': 'before and after a worker SIGKILL',
        'lock-loss': 'its worker lost the job lock',
        timeout: 'the worker gave up waiting for the answer and retried',
        other: 'no kill, lost lock or timeout logged',
      }[cause];
      webhooks.redeliveries.push(`${f.key}: x-ftp-delivery ${id} delivered ${ds.length} times (${why})`);
    }
    const sides = (sidecars.get(f.name) ?? []).filter((x) => x.user === f.user);
    if (sides.length > 1) {
      dup.push(`${sides.length} checksum sidecars (${sides.map((x) => x.rel).join(', ')})`);
      causes.add('other');
    }
    const parts = (partials.get(f.name) ?? []).filter((x) => x.user === f.user);

    if (f.acknowledged) {
      uploads.acknowledged++;
      const lost: string[] = [];
      if (good.length === 0) lost.push(mine.length ? 'on the storage with other bytes' : 'not on the storage');
      if (ids.size === 0) lost.push('no successful webhook (not processed)');
      else {
        // The delivery of the whole file (a published partial may have one of its own).
        const all = [...ids.values()].map((ds) => ds[0].body.data as DeliveryData & { size: number });
        const data = all.find((d) => d.size === f.size) ?? all[0];
        const at = join(dataDir, data.storageKey);
        if (good.length && !good.some((c) => c.abs === at)) lost.push(`the webhook names ${data.storageKey}, which does not hold it`);
      }
      const home = good[0];
      if (home) {
        const side = sides.find((x) => x.dir === home.dir);
        if (!side) lost.push('no sha256 sidecar beside it');
        else if (!readFileSync(side.abs, 'utf8').startsWith(f.sha256)) lost.push(`its sidecar ${side.rel} holds another digest`);
        if (f.path.startsWith(`${INBOX}/`) && home.rel !== `${ARCHIVE}/${f.name}`) lost.push(`not moved to /${ARCHIVE}/ (at ${home.rel})`);
      }
      if (parts.length) {
        storage.stalePartials++;
        problems.push(`STALE partial beside the acknowledged ${f.key}: ${parts.map((p) => p.rel).join(', ')}`);
      }
      if (lost.length) {
        uploads.lost++;
        problems.push(`LOST ${f.key} (${f.protocol}, ${f.size} bytes, acknowledged at ${new Date(f.ackedAt!).toISOString()}): ${lost.join('; ')}`);
      } else if (!dup.length) uploads.verified++;
    } else {
      uploads.unacknowledged++;
      if (good.length) uploads.completedWithoutAck++;
      else if (mine.some((c) => c.user === f.user)) uploads.wrongUnderName++;
      else if (parts.length) {
        const ok = parts.every((p) => isPrefixOf(f, p));
        if (ok) uploads.resumablePartial++;
        else {
          storage.corruptPartials++;
          problems.push(`BAD partial of ${f.key}: ${parts.map((p) => `${p.rel} (${p.size} bytes)`).join(', ')} is not a prefix of what was sent`);
        }
      } else uploads.absent++;
    }
    if (dup.length) {
      uploads.duplicated++;
      for (const c of causes) uploads.duplicatedBy[c]++;
      problems.push(`DUPLICATED ${f.key}: ${dup.join('; ')}`);
    }
  }

  for (const [name, list] of copies) {
    if (ledger.byName.has(name)) continue;
    storage.unknown += list.length;
    for (const c of list) problems.push(`BAD ${c.user}/${c.rel}: a file no client uploaded`);
  }
  for (const [name, list] of sidecars) {
    for (const side of list) {
      const f = ledger.byName.get(name);
      const beside = (copies.get(name) ?? []).some((c) => c.dir === side.dir);
      if (!f || !beside) {
        storage.orphanSidecars++;
        problems.push(`BAD ${side.user}/${side.rel}: a checksum sidecar without its file`);
      }
    }
  }

  const downloads = { attempted: ledger.downloads.length, verified: 0, foreign: 0, truncated: 0, wrong: 0, failed: 0 };
  const bySha = new Map<string, FileAttempts>();
  for (const f of ledger.files.values()) bySha.set(f.sha256, f);
  for (const d of ledger.downloads) {
    if (d.gotSha256 === undefined) downloads.failed++;
    else if (d.gotSha256 === d.expectedSha256) downloads.verified++;
    else {
      const other = bySha.get(d.gotSha256);
      const size = ledger.files.get(`${d.user}/${d.path}`)?.size ?? 0;
      const got = `${d.bytes} bytes (sha256 ${d.gotSha256.slice(0, 12)}…) after the server's 226 / EOF, at ${new Date(d.at).toISOString()}`;
      if (other) {
        downloads.foreign++;
        problems.push(`FOREIGN bytes: ${d.user} (${d.protocol}) downloaded ${d.path} and got ${other.key}'s ${got}`);
      } else if ((d.bytes ?? 0) < size) {
        downloads.truncated++;
        problems.push(`TRUNCATED download: ${d.user} (${d.protocol}) downloaded ${d.path} (${size} bytes) and got ${got}`);
      } else {
        downloads.wrong++;
        problems.push(`WRONG download: ${d.user} (${d.protocol}) downloaded ${d.path} (${size} bytes) and got ${got}`);
      }
    }
  }

  const outboxLeft = existsSync(input.outboxDir) ? readdirSync(input.outboxDir).filter((n) => n.endsWith('.json')).length : 0;
  if (outboxLeft) problems.push(`OUTBOX: ${outboxLeft} upload event(s) still in ${input.outboxDir} (never added to the queue)`);

  return {
    uploads,
    downloads,
    logins: { attempted: ledger.logins.length, ok: ledger.logins.filter((l) => l.ok).length },
    storage,
    publishedPartial,
    webhooks,
    outboxLeft,
    problems,
  };
}
