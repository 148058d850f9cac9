import { Type, type Static, type TSchema } from 'typebox';
import { ADMIN_SCOPES, LIMIT_FIELDS, LOGIN_PROTOCOLS, PERMISSIONS, type LimitKey } from '@ftp/identity';

/**
 * The admin API's request and response schemas. Fastify validates requests against them (a bad field answers 400
 * naming it), serialises responses through them (a field not in the schema, a password hash for one, never leaves),
 * and @fastify/swagger turns them into the OpenAPI document. Field names are the users file's (snake_case).
 */

const nullable = <T extends TSchema>(schema: T, options: { description?: string } = {}) => Type.Union([schema, Type.Null()], options);

export const NAME = Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'letters, digits, ".", "_", "-"; at most 64' });
const PERMISSION = Type.Enum([...PERMISSIONS], { description: 'what may be done where the rule applies' });
const PROTOCOL = Type.Enum([...LOGIN_PROTOCOLS]);
const TIMESTAMP = Type.String({ description: 'ISO 8601: 2026-12-31 (midnight UTC) or 2026-12-31T18:00:00Z' });

const PERMISSIONS_MAP = Type.Record(Type.String({ pattern: '^/' }), Type.Array(PERMISSION, { uniqueItems: true }), {
  description: 'virtual folder → permissions; the longest folder containing a path applies; "/" is required',
});
/** What each limit is (the users file's names); every one is a whole number, 0 = none. */
const LIMIT_MEANING: Record<LimitKey, string> = {
  quota_bytes: 'bytes the home may hold (published files)',
  quota_files: 'files the home may hold',
  daily_upload_bytes: 'bytes uploaded per UTC day',
  daily_download_bytes: 'bytes downloaded per UTC day',
  bandwidth_up: "bytes/s shared by all of the user's uploads, cluster-wide",
  bandwidth_down: "bytes/s shared by all of the user's downloads, cluster-wide",
  session_bandwidth_up: "bytes/s of each one session's uploads",
  session_bandwidth_down: "bytes/s of each one session's downloads",
  sessions_per_minute: 'new sessions (logins) per minute, cluster-wide',
};
const LIMIT_KEYS = Object.keys(LIMIT_FIELDS) as LimitKey[];
const limitValue = (key: LimitKey) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: `${LIMIT_MEANING[key]}; 0 = none` });
const LIMITS = Type.Object(Object.fromEntries(LIMIT_KEYS.map((key) => [key, Type.Optional(limitValue(key))])) as Record<LimitKey, ReturnType<typeof Type.Optional<ReturnType<typeof limitValue>>>>, {
  additionalProperties: false,
  description: "the user's (group's) own limits: a limit given here wins over the groups' and the server's (FTP_DEFAULT_*), 0 included (none); absent: inherited",
});
const EFFECTIVE_LIMITS = Type.Object(Object.fromEntries(LIMIT_KEYS.map((key) => [key, limitValue(key)])) as Record<LimitKey, ReturnType<typeof limitValue>>, {
  description: "every limit in force for the user: its own, else its first group's that sets it, else the server's default (FTP_DEFAULT_*); 0 = none",
});
const USAGE = Type.Object(
  {
    bytes: Type.Integer({ description: 'bytes of published files in the home, as last scanned and kept up to date since' }),
    files: Type.Integer({ description: 'published files in the home' }),
    today_upload_bytes: Type.Integer({ description: 'bytes uploaded today (UTC), cluster-wide' }),
    today_download_bytes: Type.Integer({ description: 'bytes downloaded today (UTC), cluster-wide' }),
  },
  { description: 'from the cluster state' },
);

/** Settings a group gives its members and a user may set for itself (absent: inherited; null in a PATCH: cleared). */
const SETTINGS = {
  permissions: PERMISSIONS_MAP,
  allow_from: Type.Array(Type.String({ maxLength: 64 }), { description: 'client addresses or CIDRs; empty = any', maxItems: 1000 }),
  require_tls: Type.Boolean(),
  max_sessions: Type.Integer({ minimum: 1 }),
  protocols: Type.Array(PROTOCOL, { minItems: 1, uniqueItems: true }),
  auth_methods: Type.Array(Type.Enum(['password', 'publickey']), {
    minItems: 1,
    uniqueItems: true,
    description: 'every listed method is required; absent = any one of them',
  }),
  limits: LIMITS,
};
type SettingKey = keyof typeof SETTINGS;
const optionalSettings = () =>
  Object.fromEntries(Object.entries(SETTINGS).map(([k, v]) => [k, Type.Optional(v)])) as { [K in SettingKey]: ReturnType<typeof Type.Optional<(typeof SETTINGS)[K]>> };
const nullableSettings = () =>
  Object.fromEntries(Object.entries(SETTINGS).map(([k, v]) => [k, Type.Optional(nullable(v))])) as {
    [K in SettingKey]: ReturnType<typeof Type.Optional<ReturnType<typeof nullable<(typeof SETTINGS)[K]>>>>;
  };

const PASSWORD = Type.String({
  minLength: 8,
  maxLength: 1024,
  description: 'the password (stored as its scrypt hash, never returned), or a scrypt hash made with `ftpctl hash-password`',
});
const DESCRIPTION = Type.String({ maxLength: 1000 });
const HOME = Type.String({ minLength: 1, maxLength: 4096, description: 'folder under the data root (relative)' });
const KEY_LINE = Type.String({ minLength: 1, maxLength: 16384, description: 'one authorized_keys line: "ssh-ed25519 AAAA… comment"' });

export const UserCreate = Type.Object(
  {
    name: NAME,
    password: PASSWORD,
    home: Type.Optional(HOME),
    groups: Type.Optional(Type.Array(NAME, { uniqueItems: true })),
    disabled: Type.Optional(Type.Boolean()),
    description: Type.Optional(DESCRIPTION),
    expires_at: Type.Optional(TIMESTAMP),
    public_keys: Type.Optional(Type.Array(KEY_LINE, { maxItems: 100 })),
    ...optionalSettings(),
  },
  { additionalProperties: false, $id: 'UserCreate' },
);
export type UserCreate = Static<typeof UserCreate>;

export const UserPatch = Type.Object(
  {
    password: Type.Optional(PASSWORD),
    home: Type.Optional(HOME),
    groups: Type.Optional(Type.Array(NAME, { uniqueItems: true })),
    disabled: Type.Optional(Type.Boolean({ description: 'true also ends the user\'s sessions on every replica' })),
    description: Type.Optional(nullable(DESCRIPTION)),
    expires_at: Type.Optional(nullable(TIMESTAMP)),
    ...nullableSettings(),
  },
  { additionalProperties: false, minProperties: 1, $id: 'UserPatch' },
);
export type UserPatch = Static<typeof UserPatch>;

const USER_FIELDS = {
  name: Type.String(),
  home: Type.String(),
  groups: Type.Array(Type.String()),
  disabled: Type.Boolean(),
  description: Type.Optional(Type.String()),
  expires_at: Type.Optional(Type.String()),
  public_keys: Type.Array(Type.String()),
  ...optionalSettings(),
  created_at: Type.Optional(Type.String()),
  updated_at: Type.Optional(Type.String()),
};
export const User = Type.Object(USER_FIELDS, { $id: 'User', description: 'a user as the users file holds it, without the password' });
export type User = Static<typeof User>;

/** GET /users/{name}: the user, its limits in force and its usage. */
export const UserDetail = Type.Object(
  {
    ...USER_FIELDS,
    effective_limits: EFFECTIVE_LIMITS,
    usage: Type.Optional(
      nullable(USAGE, {
        description: 'null: the home was not scanned yet (POST /users/{name}/quota-scan; the edge scans a user with a quota when it first needs the figure); absent: the cluster state did not answer',
      }),
    ),
  },
  { $id: 'UserDetail', description: 'a user as the users file holds it, without the password, with its limits in force and its usage' },
);
export type UserDetail = Static<typeof UserDetail>;

export const ScannedUsage = Type.Object(
  { bytes: Type.Integer({ description: 'bytes of the published files in the home' }), files: Type.Integer({ description: 'published files in the home' }) },
  { $id: 'ScannedUsage', description: 'what a scan of the home found (partial uploads and symbolic links not counted)' },
);
export type GroupOut = Static<typeof Group>;

export const Password = Type.Object({ password: PASSWORD }, { additionalProperties: false, $id: 'Password' });

export const PublicKeys = Type.Object({ public_keys: Type.Array(KEY_LINE, { minItems: 1, maxItems: 100 }) }, { additionalProperties: false, $id: 'PublicKeys' });
export const PublicKey = Type.Object(
  { fingerprint: Type.String({ description: 'SHA256:…, as ssh-keygen -lf prints it' }), type: Type.String(), comment: Type.Optional(Type.String()), line: Type.String() },
  { $id: 'PublicKey' },
);

export const GroupCreate = Type.Object({ name: NAME, description: Type.Optional(DESCRIPTION), ...optionalSettings() }, { additionalProperties: false, $id: 'GroupCreate' });
export type GroupCreate = Static<typeof GroupCreate>;
export const GroupPatch = Type.Object(
  { description: Type.Optional(nullable(DESCRIPTION)), ...nullableSettings() },
  { additionalProperties: false, minProperties: 1, $id: 'GroupPatch' },
);
export type GroupPatch = Static<typeof GroupPatch>;
export const Group = Type.Object(
  {
    name: Type.String(),
    description: Type.Optional(Type.String()),
    ...optionalSettings(),
    members: Type.Array(Type.String()),
    created_at: Type.Optional(Type.String()),
    updated_at: Type.Optional(Type.String()),
  },
  { $id: 'Group' },
);

export const Session = Type.Object(
  {
    id: Type.String(),
    user: Type.Optional(Type.String({ description: 'absent until the login' })),
    protocol: Type.Optional(PROTOCOL),
    client: Type.String({ description: 'client address' }),
    replica: Type.String({ description: 'the edge replica that holds the connection' }),
    started: Type.String({ description: 'ISO 8601' }),
    command: Type.Optional(Type.String({ description: 'last FTP command (verb only)' })),
    transfer: Type.Optional(
      Type.Object({
        direction: Type.Enum(['upload', 'download']),
        path: Type.String(),
        started: Type.String(),
        bytes: Type.Optional(Type.Integer({ description: 'moved so far, as of the last report (about every second)' })),
      }),
    ),
    bytes_in: Type.Integer({ description: 'uploaded in finished transfers' }),
    bytes_out: Type.Integer({ description: 'downloaded in finished transfers' }),
  },
  { $id: 'Session' },
);
export type Session = Static<typeof Session>;
export const SessionList = Type.Object({ items: Type.Array(Session) }, { $id: 'SessionList' });
export const SessionQuery = Type.Object(
  { user: Type.Optional(NAME), protocol: Type.Optional(PROTOCOL), replica: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) },
  { additionalProperties: false },
);
export const SessionEnding = Type.Object(
  {
    id: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    replica: Type.Optional(Type.String()),
    sessions: Type.Integer({ description: 'sessions asked to end (as the registry listed them)' }),
  },
  { $id: 'SessionEnding' },
);

export const Ban = Type.Object({ address: Type.String(), until: Type.String({ description: 'ISO 8601' }) }, { $id: 'Ban' });
export const BanList = Type.Object({ items: Type.Array(Ban) }, { $id: 'BanList' });

export const ErrorReply = Type.Object(
  {
    statusCode: Type.Integer(),
    error: Type.String(),
    message: Type.String(),
    fields: Type.Optional(Type.Array(Type.String(), { description: 'the request fields at fault (400)' })),
  },
  { $id: 'Error' },
);

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    replica: Type.String(),
    user_store: Type.Object({ backend: Type.String(), up: Type.Boolean() }),
    cluster_state: Type.Object({ kind: Type.String(), up: Type.Boolean() }),
  },
  { $id: 'Health' },
);

export const NameParam = Type.Object({ name: NAME });
export const IdParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });
export const KeyParam = Type.Object({ name: NAME, fingerprint: Type.String({ minLength: 1, maxLength: 128, description: 'SHA256:… (URL-encoded)' }) });
export const AddressParam = Type.Object({ address: Type.String({ minLength: 2, maxLength: 64, description: 'IPv4 or IPv6 address' }) });

export const SCOPES = ADMIN_SCOPES;
