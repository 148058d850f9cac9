// ftpctl token …: the admin API's bearer tokens, kept where the edge looks for them: PostgreSQL's table when users
// live there (FTP_USERS_DATABASE_URL), else the tokens file (FTP_API_TOKENS_FILE, default api-tokens.yaml beside
// FTP_USERS_FILE). A token is printed once, on stdout; only its SHA-256 is stored.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createFileTokenStore } from '../fileTokens';
import { createPostgresStore } from '../pgStore';
import { ADMIN_SCOPES, type Actor, type AdminTokens } from '../store';
import { fail } from './input';

export const TOKEN_USAGE = `  token create --name N --scope S [--scope S …] [--expires DATE]
                                        a new admin API token, printed once (scopes: ${ADMIN_SCOPES.join(', ')})
  token list                            tokens: name, scopes, created, expires, last used (never the token)
  token revoke NAME                     the token stops working (every replica within a second)`;


const operator = (): Actor => ({ name: process.env.SUDO_USER || process.env.USER || 'ftpctl', via: 'ftpctl' });

/** Where the edge reads tokens with the same environment: PostgreSQL (as the user store) or the tokens file. */
export function tokensLocation(env: NodeJS.ProcessEnv = process.env): { kind: 'postgres'; url: string } | { kind: 'file'; file: string } {
  const store = env.FTP_USER_STORE;
  const url = env.FTP_USERS_DATABASE_URL ?? '';
  if (store === 'postgres' || (!store && url)) {
    if (!url) fail(2, 'FTP_USER_STORE=postgres needs FTP_USERS_DATABASE_URL');
    return { kind: 'postgres', url };
  }
  const file = env.FTP_API_TOKENS_FILE?.trim() || path.join(path.dirname(env.FTP_USERS_FILE || './users.yaml'), 'api-tokens.yaml');
  return { kind: 'file', file };
}

async function withTokens<T>(work: (tokens: AdminTokens) => Promise<T>): Promise<T> {
  const where = tokensLocation();
  if (where.kind === 'file') return work(createFileTokenStore({ file: where.file }));
  const store = await createPostgresStore({ connection: where.url, dataRoot: process.env.FTP_DATA_DIR || './data', migrate: true });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

export async function tokenCommand(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { name: { type: 'string' }, scope: { type: 'string', multiple: true }, expires: { type: 'string' } } });
  } catch (err) {
    fail(2, (err as Error).message);
  }
  const { values, positionals } = parsed;
  const [sub, nameArg, ...extra] = positionals;
  if (extra.length > 0) fail(2, `unexpected argument "${extra[0]}"`);
  switch (sub) {
    case 'create': {
      if (nameArg) fail(2, `unexpected argument "${nameArg}" (the name is --name)`);
      if (!values.name) fail(2, 'token create needs --name');
      const scopes = (values.scope ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
      if (scopes.length === 0) fail(2, `token create needs --scope (${ADMIN_SCOPES.join(', ')})`);
      const unknown = scopes.filter((s) => !(ADMIN_SCOPES as readonly string[]).includes(s));
      if (unknown.length > 0) fail(2, `unknown scope ${unknown.join(', ')} (known: ${ADMIN_SCOPES.join(', ')})`);
      const { token, info } = await withTokens((tokens) =>
        tokens.createToken({ name: values.name!, scopes: scopes as (typeof ADMIN_SCOPES)[number][], expiresAt: values.expires }, operator()),
      );
      // The token alone on stdout (scripts: TOKEN=$(ftpctl token create …)); the rest on stderr.
      console.log(token);
      console.error(`created token ${info.name} with scopes ${info.scopes.join(', ')}${info.expiresAt ? `, expires ${info.expiresAt}` : ''}: shown only now, keep it in a secret store`);
      return;
    }
    case 'list': {
      if (nameArg) fail(2, `unexpected argument "${nameArg}"`);
      const list = await withTokens((tokens) => tokens.listTokens());
      const rows = list.map((t) => [t.name, t.scopes.join(','), t.createdAt, t.expiresAt ?? '-', t.lastUsedAt ?? '-']);
      printTable(['NAME', 'SCOPES', 'CREATED', 'EXPIRES', 'LAST USED'], rows);
      return;
    }
    case 'revoke': {
      if (!nameArg) fail(2, 'token revoke needs the token NAME');
      await withTokens((tokens) => tokens.revokeToken(nameArg, operator()));
      console.log(`revoked token ${nameArg}`);
      return;
    }
    default:
      fail(2, sub ? `unknown token command "${sub}"\n${TOKEN_USAGE}` : TOKEN_USAGE);
  }
}

/** Columns padded to their widest cell; the last column is not padded. */
export function printTable(header: string[], rows: string[][]): void {
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length)));
  for (const row of table) console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd());
}
