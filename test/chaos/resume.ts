import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { uniqueContent, type LedgerUpload } from '../load/src/ledger';
import { runProgram } from '../support/programs';
import { addUpload, type FileAttempts, type Ledger } from './ledgerFiles';
import { seededRandom } from './schedule';
import { ARCHIVE } from './users';
import { isPrefixOf, scanHomes } from './verify';

/**
 * Failed uploads that left a resumable partial, resumed after the run by a client of another kind: curl's `-C -`
 * (SIZE, then APPE of the rest) through HAProxy, whatever front door the partner used. A resumed file becomes an
 * acknowledged upload of the ledger, so the verdict checks its bytes and its processing like any other.
 */

export interface ResumeResult {
  key: string;
  partialBytes: number;
  size: number;
  ok: boolean;
  detail: string;
}

export interface ResumeTarget {
  host: string;
  port: number;
  password: string;
  dataDir: string;
  users: string[];
  workDir: string;
}

/** Unacknowledged files with a resumable partial (and no final file), in ledger order. */
export function resumable(ledger: Ledger, dataDir: string, users: string[]): { file: FileAttempts; partialBytes: number }[] {
  const stored = scanHomes(dataDir, users);
  const out: { file: FileAttempts; partialBytes: number }[] = [];
  for (const f of ledger.files.values()) {
    if (f.acknowledged) continue;
    const dir = f.path.includes('/') ? f.path.slice(0, f.path.lastIndexOf('/') + 1) : '';
    if (stored.some((s) => s.user === f.user && s.rel === f.path)) continue;
    const partial = stored.find((s) => s.user === f.user && s.rel === `${dir}.${f.name}.ftp-partial`);
    if (partial && partial.size > 0 && isPrefixOf(f, partial)) out.push({ file: f, partialBytes: partial.size });
  }
  return out;
}

export async function resumeSample(ledger: Ledger, target: ResumeTarget, count: number, seed: number): Promise<ResumeResult[]> {
  const candidates = resumable(ledger, target.dataDir, target.users);
  const random = seededRandom(seed ^ 0x5eed);
  const chosen: typeof candidates = [];
  while (chosen.length < count && candidates.length) chosen.push(...candidates.splice(Math.floor(random() * candidates.length), 1));
  const results: ResumeResult[] = [];
  for (const { file, partialBytes } of chosen) {
    const local = join(target.workDir, `resume-${file.name}`);
    writeFileSync(local, uniqueContent(file.contentKey).at(0, file.size));
    const startedAt = Date.now();
    const url = `ftp://127.0.0.1:${target.port}/${file.path}`;
    const run = await runProgram('curl', ['-sS', '--user', `${file.user}:${target.password}`, '-C', '-', '-T', local, url, '--max-time', '60'], 70_000).done;
    // Where the file is now: under its name, or already moved to /archive/ by the inbox pipeline.
    let got = '';
    for (const at of [file.path, `${ARCHIVE}/${file.name}`]) {
      try {
        got = createHash('sha256').update(readFileSync(join(target.dataDir, file.user, at))).digest('hex');
        break;
      } catch {
        // not there: the next place, else reported below
      }
    }
    const ok = run.code === 0 && got === file.sha256;
    const detail = run.code !== 0 ? `curl exited ${run.code}: ${run.stderr.trim().split('\n').pop()}` : ok ? 'byte-exact' : got ? 'complete but NOT byte-exact' : 'no file after the resume';
    results.push({ key: file.key, partialBytes, size: file.size, ok, detail });
    const entry: LedgerUpload = {
      kind: 'upload',
      protocol: 'ftp',
      user: file.user,
      path: file.path,
      size: file.size,
      sha256: file.sha256,
      contentKey: file.contentKey,
      acknowledged: run.code === 0,
      resumedFrom: partialBytes,
      startedAt,
      at: Date.now(),
      ...(run.code === 0 ? {} : { error: detail }),
    };
    addUpload(ledger, entry);
  }
  return results;
}
