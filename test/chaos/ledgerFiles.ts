import { readFileSync } from 'node:fs';
import type { LedgerDownload, LedgerEntry, LedgerLogin, LedgerUpload } from '../load/src/ledger';

/** The load generator's ledger, read back and grouped by file: what the clients sent and what they were told. */

export interface FileAttempts {
  /** `${user}/${path}` */
  key: string;
  user: string;
  /** As the client named it, relative to its home: `out/ab12-v3-i4-0.bin`. */
  path: string;
  name: string;
  protocol: string;
  size: number;
  sha256: string;
  contentKey: string;
  /** Every upload outcome of the file, in order (a resume step: the cut, then the rest). */
  attempts: LedgerUpload[];
  /** At least one attempt got its 226 / CLOSE OK. */
  acknowledged: boolean;
  ackedAt?: number;
}

export interface Ledger {
  logins: LedgerLogin[];
  downloads: LedgerDownload[];
  uploads: LedgerUpload[];
  files: Map<string, FileAttempts>;
  /** File name → file (names are unique in a run). */
  byName: Map<string, FileAttempts>;
  /** Lines that did not parse (a run cut mid-write). */
  bad: number;
}

export function readLedger(file: string): Ledger {
  const text = readFileSync(file, 'utf8');
  const ledger: Ledger = { logins: [], downloads: [], uploads: [], files: new Map(), byName: new Map(), bad: 0 };
  for (const line of text.split('\n')) {
    if (!line) continue;
    let entry: LedgerEntry;
    try {
      entry = JSON.parse(line) as LedgerEntry;
    } catch {
      ledger.bad++;
      continue;
    }
    if (entry.kind === 'login') ledger.logins.push(entry);
    else if (entry.kind === 'download') ledger.downloads.push(entry);
    else addUpload(ledger, entry);
  }
  return ledger;
}

/** Adds an upload outcome (the ledger's, or one the verifier made itself by resuming a partial). */
export function addUpload(ledger: Ledger, u: LedgerUpload): void {
  ledger.uploads.push(u);
  const key = `${u.user}/${u.path}`;
  let f = ledger.files.get(key);
  if (!f) {
    const name = u.path.slice(u.path.lastIndexOf('/') + 1);
    f = { key, user: u.user, path: u.path, name, protocol: u.protocol, size: u.size, sha256: u.sha256, contentKey: u.contentKey, attempts: [], acknowledged: false };
    ledger.files.set(key, f);
    ledger.byName.set(name, f);
  }
  f.attempts.push(u);
  if (u.acknowledged && !f.acknowledged) {
    f.acknowledged = true;
    f.ackedAt = u.at;
  }
}
