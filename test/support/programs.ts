import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface ProgramRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a program to completion (SIGKILLed after timeoutMs), collecting its output; `kill` ends it early. */
export function runProgram(cmd: string, args: string[], timeoutMs = 30_000): { done: Promise<ProgramRun>; kill(): void } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<ProgramRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
  return { done, kill: () => child.kill('SIGKILL') };
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every file below `root` as relative path → sha256, folders as `dir/` → 'dir' (what a mirror must reproduce). */
export function treeSnapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isDirectory()) {
        out[`${relative(root, full)}/`] = 'dir';
        walk(full);
      } else out[relative(root, full)] = sha256(readFileSync(full));
    }
  };
  walk(root);
  return out;
}
