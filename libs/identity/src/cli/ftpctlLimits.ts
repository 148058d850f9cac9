// ftpctl user set NAME --quota-bytes … / user show NAME: a user's own limits, changed in the users file or in
// PostgreSQL (wherever the edge reads users with the same environment), and shown with the limits in force (its
// groups', the server's FTP_DEFAULT_*) and its usage from Redis (REDIS_URL, FTP_REDIS_PREFIX, as the edge).
import { ConfigError, loadConfig, type FtpConfig } from '@ftp/config';
import { NO_LIMITS, resolveLimits } from '../limits';
import { createPostgresStore } from '../pgStore';
import { LIMIT_FIELDS, type GroupRecord, type LimitKey, type UserRecord } from '../records';
import type { Actor } from '../store';
import type { UserLimits } from '../types';
import { loadUsersFile, saveUsersFile } from '../usersFile';
import { printTable } from './ftpctlTokens';
import { fail } from './input';
import { applyLimitChanges, describeOwnLimits, limitChanges } from './limitsInput';

export const LIMITS_USAGE = `  user set NAME [--quota-bytes N] [--quota-files N] [--daily-upload-bytes N] [--daily-download-bytes N]
           [--bandwidth-up N] [--bandwidth-down N] [--session-bandwidth-up N] [--session-bandwidth-down N]
           [--sessions-per-minute N]
                                        the user's own limits (bytes, bytes/s, counts): N = 0 is "none" and wins over
                                        its groups' and the server's limit; N = inherit drops the user's own value;
                                        sizes: 10M or 10MiB = 10·2^20, 10MB = 10·10^6 (K, M, G, T)
  user show NAME [--config FILE]        its own limits, those in force (groups, FTP_DEFAULT_*) and, with REDIS_URL,
                                        its usage and today's bytes`;

const operator = (): Actor => ({ name: process.env.SUDO_USER || process.env.USER || 'ftpctl', via: 'ftpctl' });

/** Where the edge reads users with this environment (FTP_USER_STORE, else PostgreSQL when its URL is set). */
function usersLocation(file: string, env: NodeJS.ProcessEnv = process.env): { kind: 'postgres'; url: string } | { kind: 'file'; file: string } {
  const store = env.FTP_USER_STORE;
  const url = env.FTP_USERS_DATABASE_URL ?? '';
  if (store === 'hook') fail(1, 'users come from the identity hook (FTP_USER_STORE=hook): its answers carry their limits');
  if (store === 'postgres' || (!store && url)) {
    if (!url) fail(2, 'FTP_USER_STORE=postgres needs FTP_USERS_DATABASE_URL');
    return { kind: 'postgres', url };
  }
  return { kind: 'file', file };
}

async function withPostgres<T>(url: string, work: (store: Awaited<ReturnType<typeof createPostgresStore>>) => Promise<T>): Promise<T> {
  const store = await createPostgresStore({ connection: url, dataRoot: process.env.FTP_DATA_DIR || './data', migrate: true });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/** `user set NAME --limit N …`: changes only the limits given. */
export async function setUserLimits(file: string, name: string, values: Record<string, unknown>): Promise<void> {
  const changes = limitChanges(values);
  if (changes.size === 0) fail(2, `user set needs at least one limit: ${Object.keys(LIMIT_FIELDS).map((k) => `--${k.replaceAll('_', '-')}`).join(', ')}`);
  const where = usersLocation(file);
  let after: UserLimits | undefined;
  if (where.kind === 'file') {
    const data = await loadUsersFile(where.file).catch((err: NodeJS.ErrnoException) =>
      fail(1, err.code === 'ENOENT' ? `${where.file}: no such users file (set FTP_USERS_FILE)` : err.message),
    );
    const user = Object.hasOwn(data.users, name) ? data.users[name] : fail(1, `no user "${name}"`);
    after = applyLimitChanges(user.limits, changes);
    if (after) user.limits = after;
    else delete user.limits;
    await saveUsersFile(where.file, data);
  } else {
    after = await withPostgres(where.url, async (store) => {
      const view = (await store.getUser(name)) ?? fail(1, `no user "${name}"`);
      // Applied to what this store read; a concurrent change of another limit by someone else is overwritten.
      const next = applyLimitChanges(view.limits, changes);
      return (await store.updateUser(name, { limits: next ?? null }, operator())).limits;
    });
  }
  console.log(`limits of ${name}: ${describeOwnLimits(after)}`);
}

const shown = (value: number | undefined) => (value === undefined ? '-' : value === 0 ? 'none' : String(value));

/** The server's defaults and Redis settings as the edge reads them (environment, or --config FILE then environment). */
function edgeConfig(configFile: string | undefined): FtpConfig {
  try {
    return loadConfig({ file: configFile, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) fail(1, err.message);
    throw err;
  }
}

/** `user show NAME`: own limits, limits in force and where each comes from, usage. */
export async function showUserLimits(file: string, name: string, configFile: string | undefined): Promise<void> {
  const config = edgeConfig(configFile);
  const where = usersLocation(file);
  let user: Pick<UserRecord, 'home' | 'groups' | 'limits' | 'disabled'>;
  let groups: [string, GroupRecord | undefined][];
  if (where.kind === 'file') {
    const data = await loadUsersFile(where.file).catch((err: Error) => fail(1, err.message));
    user = Object.hasOwn(data.users, name) ? data.users[name] : fail(1, `no user "${name}"`);
    groups = user.groups.map((g) => [g, Object.hasOwn(data.groups, g) ? data.groups[g] : undefined]);
  } else {
    [user, groups] = await withPostgres(where.url, async (store) => {
      const view = (await store.getUser(name)) ?? fail(1, `no user "${name}"`);
      return [view, await Promise.all(view.groups.map(async (g): Promise<[string, GroupRecord | undefined]> => [g, await store.getGroup(g)]))] as const;
    });
  }
  const defaults = config.defaultLimits ?? NO_LIMITS;
  const inForce = resolveLimits([user.limits, ...groups.map(([, g]) => g?.limits)], defaults);
  const sources: [string, UserLimits | undefined][] = [['user', user.limits], ...groups.map(([g, record]): [string, UserLimits | undefined] => [`group ${g}`, record?.limits])];

  console.log(`${name}${user.disabled ? ' (disabled)' : ''}: home ${user.home}${user.groups.length > 0 ? `, groups ${user.groups.join(', ')}` : ''}`);
  printTable(
    ['LIMIT', 'OWN', 'IN FORCE', 'FROM'],
    (Object.entries(LIMIT_FIELDS) as [LimitKey, keyof UserLimits][]).map(([key, field]) => [
      key,
      shown(user.limits?.[field]),
      shown(inForce[field]),
      sources.find(([, limits]) => limits?.[field] !== undefined)?.[0] ?? `default (FTP_DEFAULT_${key.toUpperCase()})`,
    ]),
  );
  for (const line of await usageLines(config, name)) console.log(line);
}

/** The user's usage and today's bytes from Redis, as lines; why not, when it cannot be read. */
async function usageLines(config: FtpConfig, name: string): Promise<string[]> {
  if (!config.redisUrl)
    return ['usage: not shown: REDIS_URL is not set (a single edge keeps it in memory: ftpctl --api URL user show NAME asks it)'];
  const { createRedisClusterState } = await import('@ftp/cluster-state');
  const cluster = await createRedisClusterState({ url: config.redisUrl, prefix: config.redisPrefix, pasvRange: config.pasvRange, readyTimeoutMs: 3000 });
  try {
    const [usage, today] = await Promise.all([cluster.usage.get(name), cluster.budgets.today(name)]);
    return [
      usage ? `usage: ${usage.bytes} bytes in ${usage.files} files` : 'usage: not scanned yet (ftpctl --api URL quota scan NAME)',
      `today (UTC): ${today.upload} bytes uploaded, ${today.download} bytes downloaded`,
    ];
  } catch (err) {
    return [`usage: not shown: Redis did not answer (${(err as Error).message})`];
  } finally {
    await cluster.close().catch(() => {});
  }
}
