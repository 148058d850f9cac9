import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';

const { utils } = ssh2;

export interface HostKey {
  /** Where it was read from (or written to). */
  file: string;
  key: ParsedKey;
  /** As `ssh-keygen -lf` prints it: `SHA256:` and the unpadded base64 of the public key blob's SHA-256. */
  fingerprint: string;
}

/** The key files generated when none are configured, and how. */
const GENERATED = [
  { file: 'ssh_host_ed25519_key', type: 'ed25519' as const },
  { file: 'ssh_host_rsa_key', type: 'rsa' as const, bits: 3072 },
];

/**
 * The SSH host keys: the configured files, or (none configured) ed25519 and RSA-3072 keys generated once in `dir` and
 * read from there on every later start, so that clients see the same host key after a restart. A file that cannot be
 * read or parsed stops start-up with a message naming it.
 */
export async function loadHostKeys(files: string[], dir: string): Promise<HostKey[]> {
  if (files.length > 0) return Promise.all(files.map((file) => readHostKey(file)));
  await fsp.mkdir(dir, { recursive: true });
  const keys: HostKey[] = [];
  for (const spec of GENERATED) {
    const file = path.join(dir, spec.file);
    if (!(await exists(file))) await writeAtomically(file, generate(spec));
    keys.push(await readHostKey(file));
  }
  return keys;
}

async function readHostKey(file: string): Promise<HostKey> {
  let text: Buffer;
  try {
    text = await fsp.readFile(file);
  } catch (err) {
    throw new Error(`SSH host key ${file}: ${(err as Error).message}`);
  }
  const parsed = utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error || !key || key.getPrivatePEM() === null) {
    throw new Error(`SSH host key ${file}: not a private key (${key instanceof Error ? key.message : 'no private part'})`);
  }
  if (key.type === 'ssh-dss') throw new Error(`SSH host key ${file}: DSA host keys are not offered`);
  return { file, key, fingerprint: fingerprintOf(key.getPublicSSH()) };
}

/**
 * A new private key in OpenSSH format. ssh2 (1.17) drops the first byte of an ed25519 public key that starts with a zero
 * byte (1 key in 256), and such a key does not parse: written once, it would stop every later start. Generated again
 * until it parses.
 */
function generate(spec: (typeof GENERATED)[number]): string {
  for (let attempt = 1; ; attempt++) {
    const pair = spec.type === 'rsa' ? utils.generateKeyPairSync('rsa', { bits: spec.bits! }) : utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair.private;
    if (attempt >= 20) throw new Error(`could not generate a usable ${spec.type} SSH host key`);
  }
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Written to a temporary name and renamed, so a replica starting at the same moment never reads half a key. */
async function writeAtomically(file: string, content: string) {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await fsp.writeFile(temp, content, { mode: 0o600 });
  try {
    // link fails if another process wrote the key first: theirs is kept, ours dropped.
    await fsp.link(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fsp.rm(temp, { force: true });
  }
}

async function exists(file: string): Promise<boolean> {
  return fsp.stat(file).then(
    () => true,
    () => false,
  );
}
