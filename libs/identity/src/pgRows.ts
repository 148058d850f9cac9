import { limitsDocument, parseGroupDocument, parseUserDocument, type GroupRecord, type UserRecord } from './records';
import type { AdminScope, AdminTokenInfo } from './store';

// Rows ↔ records. A row read back goes through the same document parser as the users file, so a hand-made SQL edit
// that the application would refuse (a plaintext password, a bad key) never reaches a login: that user is skipped.

const SETTING_COLUMNS = 'permissions, allow_from, require_tls, max_sessions, protocols, auth_methods, limits';
export const USER_COLUMNS = `password, home, disabled, expires_at, description, ${SETTING_COLUMNS}`;
export const GROUP_COLUMNS = `description, ${SETTING_COLUMNS}`;

/** Users with their groups (in order) and keys, one statement (one snapshot); `$1` names them when filtered. */
export const SELECT_USERS = (filtered: boolean) => `
  SELECT u.name, ${USER_COLUMNS.split(', ').map((c) => `u.${c}`).join(', ')}, u.created_at, u.updated_at,
    coalesce((SELECT array_agg(g.group_name ORDER BY g.position) FROM ftp_user_groups g WHERE g.user_name = u.name), '{}') AS groups,
    coalesce((SELECT array_agg(k.line ORDER BY k.position) FROM ftp_public_keys k WHERE k.user_name = u.name), '{}') AS public_keys
  FROM ftp_users u ${filtered ? 'WHERE u.name = ANY($1)' : ''}`;

export const SELECT_GROUPS = (filtered: boolean) =>
  `SELECT name, ${GROUP_COLUMNS}, created_at, updated_at FROM ftp_groups ${filtered ? 'WHERE name = ANY($1)' : ''}`;

export const SELECT_TOKENS = (filtered: boolean) =>
  `SELECT name, token_sha256, scopes, created_at, created_by, expires_at, last_used_at FROM ftp_admin_tokens ${filtered ? 'WHERE name = ANY($1)' : ''}`;

type Row = Record<string, unknown>;

export interface Timestamps {
  createdAt?: string;
  updatedAt?: string;
}

const iso = (value: unknown): string | undefined => (value instanceof Date ? value.toISOString() : undefined);

/** Only the columns that are set, as a snake_case document. */
function documentOf(row: Row, columns: string): Row {
  const doc: Row = {};
  for (const column of columns.split(', ')) if (row[column] !== null && row[column] !== undefined) doc[column] = row[column];
  return doc;
}

/** A ftp_users row (with groups and public_keys) as a record; the problems instead when the row is not valid. */
export function userFromRow(row: Row): { record: UserRecord; meta: Timestamps } | { problems: string[] } {
  const name = String(row.name);
  const errors: string[] = [];
  const doc = documentOf(row, USER_COLUMNS);
  doc.groups = row.groups;
  doc.public_keys = row.public_keys;
  const record = parseUserDocument(name, doc, { at: `ftp_users ${name}`, errors });
  if (!record || errors.length > 0) return { problems: errors };
  return { record, meta: { createdAt: iso(row.created_at), updatedAt: iso(row.updated_at) } };
}

export function groupFromRow(row: Row): { record: GroupRecord; meta: Timestamps } | { problems: string[] } {
  const errors: string[] = [];
  const record = parseGroupDocument(documentOf(row, GROUP_COLUMNS), { at: `ftp_groups ${String(row.name)}`, errors });
  if (!record || errors.length > 0) return { problems: errors };
  return { record, meta: { createdAt: iso(row.created_at), updatedAt: iso(row.updated_at) } };
}

export function tokenFromRow(row: Row): { sha256: string; info: AdminTokenInfo } {
  const info: AdminTokenInfo = { name: String(row.name), scopes: row.scopes as AdminScope[], createdAt: iso(row.created_at)! };
  if (row.created_by) info.createdBy = String(row.created_by);
  if (row.expires_at) info.expiresAt = iso(row.expires_at);
  if (row.last_used_at) info.lastUsedAt = iso(row.last_used_at);
  return { sha256: (row.token_sha256 as Buffer).toString('hex'), info };
}

/** The setting columns' values, in SETTING_COLUMNS order (jsonb as JSON text, NULL where not set). */
function settingValues(r: GroupRecord): unknown[] {
  return [
    r.permissions ? JSON.stringify(r.permissions) : null,
    r.allowFrom ?? null,
    r.requireTls ?? null,
    r.maxSessions ?? null,
    r.protocols ?? null,
    r.authMethods ? [...r.authMethods] : null,
    r.limits ? JSON.stringify(limitsDocument(r.limits)) : null,
  ];
}

/** Values for USER_COLUMNS, in order. */
export function userValues(r: UserRecord): unknown[] {
  return [r.password, r.home, r.disabled, r.expiresAt ?? null, r.description ?? null, ...settingValues(r)];
}

/** Values for GROUP_COLUMNS, in order. */
export function groupValues(r: GroupRecord): unknown[] {
  return [r.description ?? null, ...settingValues(r)];
}

/** `$first, $first+1, …` for `count` parameters. */
export const placeholders = (count: number, first = 1) => Array.from({ length: count }, (_, i) => `$${first + i}`).join(', ');

/** `col = $first, …` for an UPDATE of these columns. */
export const assignments = (columns: string, first = 1) =>
  columns
    .split(', ')
    .map((c, i) => `${c} = $${first + i}`)
    .join(', ');
