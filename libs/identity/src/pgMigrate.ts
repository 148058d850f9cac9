import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import Postgrator from 'postgrator';

/**
 * The versioned SQL migrations of the PostgreSQL user store: `NNN.do.name.sql`, applied in order by postgrator.
 * Resolved next to this module: `libs/identity/src/migrations/` from the sources (tsx, ftpctl), `migrations/` beside
 * the bundle in the edge image (its Dockerfile copies them there).
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/** postgrator's table of applied versions (with each file's md5, so an edited migration is refused). */
export const SCHEMA_VERSION_TABLE = 'ftp_schema_version';

// Any fixed 64-bit key: replicas starting together take turns, the second finds nothing left to do.
const MIGRATION_LOCK = 7_211_583_002_431;

export interface MigrationResult {
  /** Schema version before and after. */
  from: number;
  to: number;
  /** Files applied now, in order. */
  applied: string[];
}

/**
 * Brings the database's user-store schema to the newest version. Everything runs in one transaction under a
 * transaction-scoped advisory lock: concurrent callers (every replica at start-up, `ftpctl db migrate`) apply each
 * migration once, and a failing migration leaves the schema as it was. Throws when PostgreSQL does not answer, a
 * migration fails, or an applied migration's file has changed since.
 */
export async function migrateUserStore(
  connection: string | pg.ClientConfig,
  options: { migrationsDir?: string; log?: (message: string) => void } = {},
): Promise<MigrationResult> {
  const config: pg.ClientConfig = typeof connection === 'string' ? { connectionString: connection } : connection;
  const client = new pg.Client({ connectionTimeoutMillis: 5000, application_name: 'ftp-user-store-migrate', ...config });
  client.on('error', () => {}); // a connection lost mid-way fails the query in flight, which reports it
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    const { rows } = await client.query<{ schema: string; database: string }>('SELECT current_schema() AS schema, current_database() AS database');
    const postgrator = new Postgrator({
      driver: 'pg',
      migrationPattern: path.join(options.migrationsDir ?? MIGRATIONS_DIR, '*.sql'),
      // In the connection's schema (its search_path), without CREATE SCHEMA, so a role without CREATE on the
      // database can migrate its own schema.
      schemaTable: SCHEMA_VERSION_TABLE,
      currentSchema: rows[0].schema,
      database: rows[0].database,
      validateChecksums: true,
      execQuery: (query) => client.query(query),
    });
    postgrator.on('migration-started', (m) => options.log?.(`applying migration ${path.basename(m.filename)}`));
    const from = await postgrator.getDatabaseVersion();
    const applied = await postgrator.migrate();
    const to = await postgrator.getDatabaseVersion();
    await client.query('COMMIT');
    return { from, to, applied: applied.map((m) => path.basename(m.filename)) };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
}
