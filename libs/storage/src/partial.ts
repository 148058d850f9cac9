import path from 'node:path';

// Interrupted uploads live beside their target as hidden files, so publishing is a same-directory
// rename (atomic) and a crash leaves bytes that a later REST/APPE can continue.
const SUFFIX = '.ftp-partial';

/** Name of the hidden partial-upload file for `name`. */
export function partialNameFor(name: string): string {
  return `.${name}${SUFFIX}`;
}

/** True for names produced by partialNameFor (they are reserved and never listed). */
export function isPartialName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(SUFFIX) && name.length > SUFFIX.length + 1;
}

/** Host path of the partial file that belongs to host path `file`. */
export function partialPathFor(file: string): string {
  return path.join(path.dirname(file), partialNameFor(path.basename(file)));
}

/** Where a resume of a local partial of `bytes` continues: one byte short, which it sends again (see Storage.stat). */
export function resumePointOf(bytes: number): number {
  return Math.max(0, bytes - 1);
}
