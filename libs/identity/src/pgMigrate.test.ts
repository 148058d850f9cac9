// The user store's migrations against a real PostgreSQL: 002 renames the old limit names inside the stored limits
// documents of users and groups, and a store opened afterwards reads them.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../../../test/support/postgres';
import { hashPassword } from './password';
import { MIGRATIONS_DIR, migrateUserStore } from './pgMigrate';
import { createPostgresStore } from './pgStore';

let db: TestDatabase;
let dir: string;
before(async () => {
  db = await createTestDatabase('pgmigrate');
  dir = await mkdtemp(path.join(tmpdir(), 'identity-migrate-'));
});
after(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

test('002 renames storage_bytes, storage_files, daily_bytes (both directions) and the bandwidths in users and groups', async () => {
  const config = await db.schema('renames');
  // The schema as version 1 left it: only the first migration.
  const v1 = path.join(dir, 'v1');
  await mkdir(v1);
  await copyFile(path.join(MIGRATIONS_DIR, '001.do.user-store.sql'), path.join(v1, '001.do.user-store.sql'));
  assert.equal((await migrateUserStore(config, { migrationsDir: v1 })).to, 1);

  const hash = await hashPassword('pw');
  const run = async (sql: string, values: unknown[] = []) => {
    const { default: pg } = await import('pg');
    const client = new pg.Client(config);
    await client.connect();
    try {
      return await client.query(sql, values);
    } finally {
      await client.end();
    }
  };
  await run(`INSERT INTO ftp_groups (name, limits) VALUES
    ('partners', '{"storage_bytes": 5000, "storage_files": 10, "daily_bytes": 100, "upload_bytes_per_second": 7, "download_bytes_per_second": 8}'),
    ('plain', NULL),
    ('already', '{"quota_bytes": 1}')`);
  await run(
    `INSERT INTO ftp_users (name, password, home, limits) VALUES
    ('alice', $1, 'alice', '{"daily_bytes": 9}'),
    ('bob', $1, 'bob', '{"storage_bytes": 3, "quota_bytes": 4}'),
    ('carol', $1, 'carol', NULL),
    ('dave', $1, 'dave', '{}')`,
    [hash],
  );

  const result = await migrateUserStore(config);
  assert.deepEqual(result, { from: 1, to: 2, applied: ['002.do.limit-names.sql'] });
  const limits = async (table: string) =>
    Object.fromEntries((await run(`SELECT name, limits FROM ${table} ORDER BY name`)).rows.map((r) => [r.name, r.limits]));
  assert.deepEqual(await limits('ftp_groups'), {
    partners: { quota_bytes: 5000, quota_files: 10, daily_upload_bytes: 100, daily_download_bytes: 100, bandwidth_up: 7, bandwidth_down: 8 },
    plain: null,
    already: { quota_bytes: 1 },
  });
  assert.deepEqual(await limits('ftp_users'), {
    alice: { daily_upload_bytes: 9, daily_download_bytes: 9 },
    bob: { quota_bytes: 4 }, // the new name, already there, wins
    carol: null,
    dave: {},
  });

  // A store reads every row (none is skipped as invalid) and resolves the renamed limits.
  const store = await createPostgresStore({ connection: config, dataRoot: path.join(dir, 'data'), migrate: true });
  try {
    assert.equal(store.health().users, 4);
    assert.deepEqual((await store.getUser('alice'))?.limits, { dailyUploadBytes: 9, dailyDownloadBytes: 9 });
    assert.deepEqual((await store.getGroup('partners'))?.limits, {
      quotaBytes: 5000,
      quotaFiles: 10,
      dailyUploadBytes: 100,
      dailyDownloadBytes: 100,
      bandwidthUp: 7,
      bandwidthDown: 8,
    });
  } finally {
    await store.close();
  }
  assert.deepEqual((await migrateUserStore(config)).applied, [], 'applied once');
});
