import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL the tests use (the local one, trust auth, started by tools/install-test-deps.sh when absent).
 * FTP_TEST_DATABASE_URL points elsewhere; its database is only used to create and drop the tests' own databases.
 */
export const POSTGRES_URL = process.env.FTP_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  /** Connection URL of the new database. */
  url: string;
  /** A client config for a schema of its own in this database (created here; dropped with the database). */
  schema(name: string): Promise<pg.ClientConfig>;
  /** Runs SQL as the tests' admin connection in this database. */
  query(sql: string, values?: unknown[]): Promise<pg.QueryResult>;
  /** Drops the database, ending whatever is still connected to it. */
  drop(): Promise<void>;
}

/** A database of its own for one test file (`ftp_test_<label>_<random>`), dropped by `drop()`. */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `ftp_test_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.href, max: 2 });
  pool.on('error', () => {});
  return {
    name,
    url: url.href,
    async schema(schema) {
      await pool.query(`CREATE SCHEMA ${schema}`);
      return { connectionString: url.href, options: `-c search_path=${schema}` };
    },
    query: (sql, values) => pool.query(sql, values),
    async drop() {
      await pool.end().catch(() => {});
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
