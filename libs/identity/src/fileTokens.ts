import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { isObject, parseTimestamp } from './records';
import { ADMIN_SCOPES, UserStoreError, type Actor, type AdminScope, type AdminTokenInfo, type AdminTokens } from './store';

/**
 * The admin API's tokens in a YAML file (FTP_API_TOKENS_FILE, by default `api-tokens.yaml` beside the users file), for
 * the user stores that have no table of their own (the users file, the identity hook). Only the SHA-256 of a token is
 * kept; the token is shown once, by `ftpctl token create`. The file may be a read-only mount (a Kubernetes Secret):
 * the edge only reads it, re-reading it when it changes, and records no `last_used_at`.
 *
 * ```yaml
 * tokens:
 *   deploy-bot:
 *     sha256: 9f86d0…        # hex
 *     scopes: [users:read, sessions:read]
 *     created_at: 2026-12-06T10:00:00.000Z
 *     created_by: ops
 *     expires_at: 2027-06-30T00:00:00.000Z   # optional
 * ```
 */
export interface FileTokenStoreOptions {
  file: string;
  /** How often at most a token check looks at the file's mtime (default 1000 ms). */
  reloadCheckMs?: number;
  /** A reload that failed: the tokens read before stay in force. */
  onReloadError?: (err: Error) => void;
}

export type FileTokenStore = AdminTokens & { readonly file: string };

export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Every token starts with it, so a leaked one is easy to find (secret scanners, logs). */
export const TOKEN_PREFIX = 'ftpat_';

const sha256Hex = (token: string) => createHash('sha256').update(token).digest('hex');

interface StoredToken {
  sha256: string;
  info: AdminTokenInfo;
}

/** A new random token: the prefix and 32 random bytes (base64url). */
export const newAdminToken = () => `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;

/** The name and scopes of a token to create, checked as PostgreSQL's store checks them; `invalid` names the field. */
export function checkTokenInput(input: { name: string; scopes: readonly string[]; expiresAt?: string }): { scopes: AdminScope[]; expiresAt?: string } {
  if (typeof input.name !== 'string' || !TOKEN_NAME_PATTERN.test(input.name))
    throw new UserStoreError('invalid', `token.name: "${String(input.name)}" must match ${TOKEN_NAME_PATTERN.source}`);
  const scopes = [...new Set(input.scopes)];
  const unknown = scopes.filter((s) => !(ADMIN_SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || unknown.length > 0)
    throw new UserStoreError('invalid', `token.scopes: expected some of ${ADMIN_SCOPES.join(', ')}${unknown.length ? `, got ${unknown.join(', ')}` : ''}`);
  const errors: string[] = [];
  const expiresAt = parseTimestamp(input.expiresAt, 'token.expires_at', errors);
  if (errors.length > 0) throw new UserStoreError('invalid', errors.join('; '));
  return { scopes: scopes as AdminScope[], expiresAt };
}

/** Parses the tokens file's text; throws naming every problem. */
export function parseTokensFile(text: string, source: string): StoredToken[] {
  const raw = parse(text) as unknown;
  if (raw === null || raw === undefined) return [];
  const errors: string[] = [];
  if (!isObject(raw) || Object.keys(raw).some((k) => k !== 'tokens')) throw new Error(`${source}: expected a mapping with "tokens"`);
  const tokens = raw.tokens ?? {};
  if (!isObject(tokens)) throw new Error(`${source}: "tokens" must be a mapping of name to token`);
  const out: StoredToken[] = [];
  for (const [name, entry] of Object.entries(tokens)) {
    const at = `${source}: tokens.${name}`;
    if (!TOKEN_NAME_PATTERN.test(name)) errors.push(`${at}: the name must match ${TOKEN_NAME_PATTERN.source}`);
    if (!isObject(entry)) {
      errors.push(`${at}: must be a mapping`);
      continue;
    }
    const sha256 = entry.sha256;
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) errors.push(`${at}.sha256: must be 64 hex digits`);
    const scopes = entry.scopes;
    if (!Array.isArray(scopes) || scopes.length === 0 || scopes.some((s) => !(ADMIN_SCOPES as readonly unknown[]).includes(s)))
      errors.push(`${at}.scopes: expected a list of ${ADMIN_SCOPES.join(', ')}`);
    const createdAt = parseTimestamp(entry.created_at, `${at}.created_at`, errors);
    const expiresAt = parseTimestamp(entry.expires_at, `${at}.expires_at`, errors);
    const info: AdminTokenInfo = { name, scopes: scopes as AdminScope[], createdAt: createdAt ?? new Date(0).toISOString() };
    if (typeof entry.created_by === 'string') info.createdBy = entry.created_by;
    if (expiresAt) info.expiresAt = expiresAt;
    out.push({ sha256: String(sha256), info });
  }
  if (errors.length > 0) throw new Error(errors.join('\n'));
  return out;
}

function stringifyTokensFile(tokens: StoredToken[]): string {
  const doc: Record<string, unknown> = {};
  for (const { sha256, info } of [...tokens].sort((a, b) => (a.info.name < b.info.name ? -1 : 1))) {
    doc[info.name] = {
      sha256,
      scopes: info.scopes,
      created_at: info.createdAt,
      ...(info.createdBy ? { created_by: info.createdBy } : {}),
      ...(info.expiresAt ? { expires_at: info.expiresAt } : {}),
    };
  }
  return `# Admin API tokens (ftpctl token create): only the SHA-256 of each token is kept.\n${stringify({ tokens: doc })}`;
}

/** Writes the file atomically (temporary file, then rename), mode 0600. */
async function saveTokensFile(file: string, tokens: StoredToken[]): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(stringifyTokensFile(tokens));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/**
 * The tokens file as an AdminTokens. `verifyToken` answers from memory and re-reads the file (synchronously: it is a
 * few lines) when its mtime, size or inode changed, looked at no more than once per `reloadCheckMs` for known tokens
 * (so a revocation takes effect within it) and at once for an unknown one (so a token just created works at its first
 * use). A missing file is no tokens; an invalid one keeps the tokens read before (and `onReloadError` says why).
 */
export function createFileTokenStore(options: FileTokenStoreOptions): FileTokenStore {
  const reloadCheckMs = options.reloadCheckMs ?? 1000;
  let byHash = new Map<string, AdminTokenInfo>();
  let all: StoredToken[] = [];
  let version = '';
  let lastCheck = 0;

  const versionOf = (): string => {
    try {
      const s = statSync(options.file);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
      throw err;
    }
  };
  const load = (force = false) => {
    lastCheck = Date.now();
    try {
      const now = versionOf();
      if (!force && now === version) return;
      const tokens = now === 'absent' ? [] : parseTokensFile(readFileSync(options.file, 'utf8'), options.file);
      all = tokens;
      byHash = new Map(tokens.map((t) => [t.sha256, t.info]));
      version = now;
    } catch (err) {
      options.onReloadError?.(err as Error);
      if (force) throw err;
    }
  };
  const maybeReload = () => {
    if (Date.now() - lastCheck >= reloadCheckMs) load();
  };
  load(true);

  return {
    file: options.file,
    async createToken(input, by: Actor) {
      const { scopes, expiresAt } = checkTokenInput(input);
      load(true);
      if (all.some((t) => t.info.name === input.name)) throw new UserStoreError('conflict', `token "${input.name}" already exists`);
      const token = newAdminToken();
      const info: AdminTokenInfo = { name: input.name, scopes, createdAt: new Date().toISOString(), createdBy: by.name };
      if (expiresAt) info.expiresAt = expiresAt;
      await saveTokensFile(options.file, [...all, { sha256: sha256Hex(token), info }]);
      load(true);
      return { token, info: { ...info } };
    },
    verifyToken(token) {
      if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX)) return undefined;
      maybeReload();
      const hash = sha256Hex(token);
      // A token not known yet may be one `ftpctl token create` just wrote: look at the file now (a stat, unless changed).
      if (!byHash.has(hash)) load();
      const info = byHash.get(hash);
      if (!info || (info.expiresAt && Date.parse(info.expiresAt) <= Date.now())) return undefined;
      return { ...info, scopes: [...info.scopes] };
    },
    async listTokens() {
      load();
      return all.map((t) => ({ ...t.info })).sort((a, b) => (a.name < b.name ? -1 : 1));
    },
    async revokeToken(name) {
      load(true);
      if (!all.some((t) => t.info.name === name)) throw new UserStoreError('not-found', `token "${name}" does not exist`);
      await saveTokensFile(
        options.file,
        all.filter((t) => t.info.name !== name),
      );
      load(true);
    },
  };
}
