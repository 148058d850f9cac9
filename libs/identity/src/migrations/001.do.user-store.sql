-- The PostgreSQL user store (FTP_USER_STORE=postgres): users, groups, their SSH public keys, the admin API's tokens
-- and its audit trail. Field names are the users file's (snake_case). A NULL setting is "not set here": a user then
-- takes it from the first of its groups that sets it (libs/identity/src/resolve.ts). The application validates every
-- write; the checks below only keep hand-made SQL edits from breaking logins.

CREATE TABLE ftp_groups (
  name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
  description  text CHECK (length(description) <= 1000),
  permissions  jsonb CHECK (permissions IS NULL OR (jsonb_typeof(permissions) = 'object' AND permissions ? '/')),
  allow_from   text[],
  require_tls  boolean,
  max_sessions integer CHECK (max_sessions > 0),
  protocols    text[] CHECK (protocols <@ ARRAY['ftp', 'ftps', 'sftp']),
  auth_methods text[] CHECK (auth_methods <@ ARRAY['password', 'publickey']),
  limits       jsonb CHECK (limits IS NULL OR jsonb_typeof(limits) = 'object'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ftp_users (
  name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
  -- scrypt$N$r$p$salt$hash, never plaintext.
  password     text NOT NULL CHECK (password LIKE 'scrypt$%'),
  home         text NOT NULL CHECK (home <> '' AND home !~ '^/' AND home !~ '(^|/)\.\.(/|$)'),
  disabled     boolean NOT NULL DEFAULT false,
  expires_at   timestamptz,
  description  text CHECK (length(description) <= 1000),
  permissions  jsonb CHECK (permissions IS NULL OR (jsonb_typeof(permissions) = 'object' AND permissions ? '/')),
  allow_from   text[],
  require_tls  boolean,
  max_sessions integer CHECK (max_sessions > 0),
  protocols    text[] CHECK (protocols <@ ARRAY['ftp', 'ftps', 'sftp']),
  auth_methods text[] CHECK (auth_methods <@ ARRAY['password', 'publickey']),
  limits       jsonb CHECK (limits IS NULL OR jsonb_typeof(limits) = 'object'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Membership, in the user's order (the first group that sets a setting gives it). A group with members cannot be
-- deleted; renaming a user or a group follows through.
CREATE TABLE ftp_user_groups (
  user_name  text NOT NULL REFERENCES ftp_users (name) ON DELETE CASCADE ON UPDATE CASCADE,
  group_name text NOT NULL REFERENCES ftp_groups (name) ON DELETE RESTRICT ON UPDATE CASCADE,
  position   integer NOT NULL,
  PRIMARY KEY (user_name, group_name)
);
CREATE INDEX ftp_user_groups_group ON ftp_user_groups (group_name);

-- One OpenSSH authorized_keys line per key ("ssh-ed25519 AAAA… comment"), as the users file's public_keys.
CREATE TABLE ftp_public_keys (
  user_name   text NOT NULL REFERENCES ftp_users (name) ON DELETE CASCADE ON UPDATE CASCADE,
  -- SHA256:… as ssh-keygen -lf prints it.
  fingerprint text NOT NULL CHECK (fingerprint LIKE 'SHA256:%'),
  line        text NOT NULL,
  position    integer NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_name, fingerprint)
);

-- Admin API bearer tokens: only the SHA-256 of the token is kept (it is shown once, when created).
CREATE TABLE ftp_admin_tokens (
  name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
  token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
  scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0),
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   text,
  expires_at   timestamptz,
  last_used_at timestamptz
);

-- Who changed what: every write of the store, and what the admin API does elsewhere (ending sessions, lifting bans).
CREATE TABLE ftp_admin_audit (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at      timestamptz NOT NULL DEFAULT now(),
  actor   text NOT NULL,
  via     text,
  address text,
  action  text NOT NULL,
  target  text,
  -- Without secrets (no password hashes, no tokens).
  before  jsonb,
  after   jsonb
);
CREATE INDEX ftp_admin_audit_at ON ftp_admin_audit (at);
CREATE INDEX ftp_admin_audit_target ON ftp_admin_audit (target, id);

-- Every replica LISTENs on ftp_user_store and reloads what a notification names: {"kind": "user"|"group"|"token",
-- "name": …}, or {"kind": "all"} after a TRUNCATE. Sent at commit; PostgreSQL folds identical payloads of one
-- transaction into one notification. Hand-made SQL changes are announced too.
CREATE FUNCTION ftp_user_store_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('ftp_user_store', '{"kind":"all"}');
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify('ftp_user_store', json_build_object('kind', TG_ARGV[0], 'name', to_jsonb(OLD) ->> TG_ARGV[1])::text);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('ftp_user_store', json_build_object('kind', TG_ARGV[0], 'name', to_jsonb(NEW) ->> TG_ARGV[1])::text);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER ftp_users_notify AFTER INSERT OR UPDATE OR DELETE ON ftp_users
  FOR EACH ROW EXECUTE FUNCTION ftp_user_store_notify('user', 'name');
CREATE TRIGGER ftp_user_groups_notify AFTER INSERT OR UPDATE OR DELETE ON ftp_user_groups
  FOR EACH ROW EXECUTE FUNCTION ftp_user_store_notify('user', 'user_name');
CREATE TRIGGER ftp_public_keys_notify AFTER INSERT OR UPDATE OR DELETE ON ftp_public_keys
  FOR EACH ROW EXECUTE FUNCTION ftp_user_store_notify('user', 'user_name');
CREATE TRIGGER ftp_groups_notify AFTER INSERT OR UPDATE OR DELETE ON ftp_groups
  FOR EACH ROW EXECUTE FUNCTION ftp_user_store_notify('group', 'name');
-- last_used_at changes on every API call of a token: not worth a notification.
CREATE TRIGGER ftp_admin_tokens_notify AFTER INSERT OR DELETE OR UPDATE OF name, token_sha256, scopes, expires_at ON ftp_admin_tokens
  FOR EACH ROW EXECUTE FUNCTION ftp_user_store_notify('token', 'name');

CREATE TRIGGER ftp_users_truncate AFTER TRUNCATE ON ftp_users FOR EACH STATEMENT EXECUTE FUNCTION ftp_user_store_notify();
CREATE TRIGGER ftp_user_groups_truncate AFTER TRUNCATE ON ftp_user_groups FOR EACH STATEMENT EXECUTE FUNCTION ftp_user_store_notify();
CREATE TRIGGER ftp_public_keys_truncate AFTER TRUNCATE ON ftp_public_keys FOR EACH STATEMENT EXECUTE FUNCTION ftp_user_store_notify();
CREATE TRIGGER ftp_groups_truncate AFTER TRUNCATE ON ftp_groups FOR EACH STATEMENT EXECUTE FUNCTION ftp_user_store_notify();
CREATE TRIGGER ftp_admin_tokens_truncate AFTER TRUNCATE ON ftp_admin_tokens FOR EACH STATEMENT EXECUTE FUNCTION ftp_user_store_notify();
