import { readFile } from 'node:fs/promises';
import type { FtpConfig } from '@ftp/config';
import { createFileStore, createHookStore, createPostgresStore, ensureUsersFile, type UserStore } from '@ftp/identity';
import type { Logger } from '@ftp/telemetry';
import { redactUrl } from './tlsSetup';

export interface UserStoreSetup {
  store: UserStore;
  /** Set when this start created the users file (file store only): the one-time password of `demo`. */
  createdUser?: { name: string; password: string };
}

/**
 * The user store FTP_USER_STORE chose: the users file (created with a `demo` user on first start), PostgreSQL
 * (migrated at start unless FTP_USERS_DATABASE_MIGRATE=false; the start fails while it cannot load the users once), or
 * the identity hook. Each fills every user's limits that neither the user nor its groups set with the server's
 * FTP_DEFAULT_* (config.defaultLimits).
 */
export async function createUserStore(config: FtpConfig, log: Logger): Promise<UserStoreSetup> {
  const storeLog = log.child({ component: 'user-store' });
  switch (config.userStore) {
    case 'postgres': {
      const store = await createPostgresStore({
        connection: config.usersDatabaseUrl,
        dataRoot: config.dataDir,
        migrate: config.usersDatabaseMigrate,
        defaultLimits: config.defaultLimits,
        log: storeLog,
      });
      storeLog.info({ database: redactUrl(config.usersDatabaseUrl), users: store.health().users }, 'users from PostgreSQL');
      return { store };
    }
    case 'hook': {
      const store = createHookStore({
        url: config.authHookUrl,
        secret: config.authHookSecret,
        dataRoot: config.dataDir,
        timeoutMs: config.authHookTimeoutMs,
        cacheTtlMs: config.authHookCacheSeconds * 1000,
        ca: config.authHookCa ? await readFile(config.authHookCa) : undefined,
        defaultLimits: config.defaultLimits,
        log: storeLog,
      });
      storeLog.info({ hook: redactUrl(config.authHookUrl), cacheSeconds: config.authHookCacheSeconds }, 'users from the identity hook');
      return { store };
    }
    case 'file': {
      const bootstrap = await ensureUsersFile(config.usersFile, config.dataDir);
      const store = await createFileStore({
        usersFile: config.usersFile,
        dataRoot: config.dataDir,
        defaultLimits: config.defaultLimits,
        onReloadError: (err) => storeLog.error({ err: (err as Error).message, file: config.usersFile }, 'users file not reloaded: keeping the previous users'),
      });
      const createdUser = bootstrap.created && bootstrap.user && bootstrap.password ? { name: bootstrap.user, password: bootstrap.password } : undefined;
      return { store, createdUser };
    }
  }
}
