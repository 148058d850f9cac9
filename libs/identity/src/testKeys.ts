// Test helper: real OpenSSH keys made by ssh-keygen (openssh-client), with the fingerprint ssh-keygen prints for them.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface GeneratedKey {
  /** The .pub file's line, without its newline. */
  line: string;
  /** The private key file (no passphrase). */
  privateFile: string;
  /** What `ssh-keygen -lf` prints as the fingerprint (SHA256:…). */
  fingerprint: string;
  /** Key size as `ssh-keygen -lf` prints it. */
  bits: number;
}

let counter = 0;

/** `ssh-keygen -t TYPE [-b BITS] -N '' -C COMMENT -f DIR/…`; TYPE as ssh-keygen spells it: ed25519, ecdsa, rsa, dsa. */
export function sshKeygen(dir: string, type: string, options: { bits?: number; comment?: string } = {}): GeneratedKey {
  const privateFile = path.join(dir, `key${counter++}_${type}${options.bits ?? ''}`);
  const args = ['-q', '-t', type, '-N', '', '-C', options.comment ?? `${type}@test`, '-f', privateFile];
  if (options.bits) args.push('-b', String(options.bits));
  execFileSync('ssh-keygen', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const line = readFileSync(`${privateFile}.pub`, 'utf8').trim();
  const [bits, fingerprint] = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${privateFile}.pub`], { encoding: 'utf8' }).trim().split(' ');
  return { line, privateFile, fingerprint, bits: Number(bits) };
}
