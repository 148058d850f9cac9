import type { UploadEvent } from '@ftp/upload-events';
import { PermanentStepError } from './errors';
import { basenameOf, digestFile, keyOf, publishedAt, writeSmallFile, type ChecksumAlgorithm } from './files';
import type { Step, StepResult } from './types';

export type { ChecksumAlgorithm, Digests } from './files';

const ALGORITHMS: readonly ChecksumAlgorithm[] = ['sha256', 'md5'];
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface ChecksumOptions {
  /**
   * Digests written as sidecars and returned. sha256 is computed whatever is asked: uploads are checked and announced
   * with it. Default ['sha256'].
   */
  algorithms?: ChecksumAlgorithm[];
  /** Write `<file>.sha256` / `<file>.md5` beside the file, in the format `sha256sum -c` reads. Default true. */
  sidecar?: boolean;
}

/**
 * Digests the file once, streaming (never the whole file in memory). Details: { sha256, md5?, bytes, sidecars }.
 * A sha256 the edge computed while receiving that differs from the file's is a PermanentStepError: the job fails
 * loudly rather than announce a wrong digest, and no sidecar is written. Running it again rewrites identical sidecars.
 */
export function checksumStep(options: ChecksumOptions = {}): Step {
  const algorithms = options.algorithms ?? ['sha256'];
  if (!Array.isArray(algorithms) || algorithms.length === 0 || algorithms.some((a) => !ALGORITHMS.includes(a))) {
    throw new Error(`checksum: algorithms must be a non-empty list of ${ALGORITHMS.join(', ')}`);
  }
  const computed = ALGORITHMS.filter((a) => a === 'sha256' || algorithms.includes(a));
  const sidecars = (options.sidecar ?? true) ? ALGORITHMS.filter((a) => algorithms.includes(a)) : [];

  return {
    name: 'checksum',
    async run({ event, storage, path, log, signal }): Promise<StepResult> {
      const file = await publishedAt(storage, path);
      if (!file) throw new PermanentStepError(`${keyOf(path)}: the uploaded file is gone`);
      if (file.type !== 'file') throw new PermanentStepError(`${keyOf(path)}: not a regular file`);
      const digests = await digestFile(storage, path, computed, signal);
      if (event.sha256 !== undefined && event.sha256.toLowerCase() !== digests.sha256) {
        throw new PermanentStepError(
          `${keyOf(path)}: sha256 is ${digests.sha256} but was ${event.sha256} while receiving: the file is corrupt or was replaced`,
        );
      }
      if (digests.bytes !== event.size) {
        log.warn({ file: keyOf(path), bytes: digests.bytes, uploaded: event.size }, 'file size differs from the upload');
      }
      const written: string[] = [];
      for (const algorithm of sidecars) {
        signal.throwIfAborted(); // each sidecar is published whole; the run that carries on rewrites them identically
        await writeSmallFile(storage, `${path}.${algorithm}`, sidecarLine(digests[algorithm]!, basenameOf(path)));
        written.push(keyOf(`${path}.${algorithm}`));
      }
      return { details: { ...digests, sidecars: written } };
    },
  };
}

/**
 * One line as coreutils writes it: `<hex>  <name>\n`. A name with a backslash or a line break is escaped and the line
 * starts with a backslash, as `sha256sum` does, so `sha256sum -c` reads it back.
 */
export function sidecarLine(hex: string, name: string): string {
  if (!/[\\\n\r]/.test(name)) return `${hex}  ${name}\n`;
  return `\\${hex}  ${escapeName(name)}\n`;
}

/** Rewrites the lines of a coreutils checksum file that name `from` to name `to` (a file renamed with its sidecar). */
export function renameInSidecar(text: string, from: string, to: string): string {
  return text.replace(/^(\\?)([0-9a-fA-F]+) ([ *])(.*)$/gm, (line, escaped: string, hex: string, mode: string, name: string) => {
    const plain = escaped ? unescapeName(name) : name;
    if (plain !== from) return line;
    return /[\\\n\r]/.test(to) ? `\\${hex} ${mode}${escapeName(to)}` : `${hex} ${mode}${to}`;
  });
}

/** The sha256 known for the upload: from a checksum step that already ran (the latest), else the edge's. */
export function knownSha256(previous: Record<string, StepResult>, event: UploadEvent): string | undefined {
  let found: string | undefined;
  for (const result of Object.values(previous)) {
    const sha = result.details?.sha256;
    if (typeof sha === 'string' && SHA256_HEX.test(sha)) found = sha;
  }
  return found ?? event.sha256?.toLowerCase();
}

const escapeName = (name: string) => name.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
const unescapeName = (name: string) => name.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
