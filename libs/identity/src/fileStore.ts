import { stat } from 'node:fs/promises';
import type { GroupRecord, UserRecord } from './records';
import { readOnlyWrites, type UserStore, type UserStoreHealth } from './store';
import { loadUsersFile, type UsersFileData } from './usersFile';
import { createVerifier, type Directory, type VerifierOptions } from './verify';
import { byName, groupViews, userView } from './views';

export interface FileStoreOptions extends Pick<VerifierOptions, 'passwordCache' | 'verifyPassword' | 'now' | 'defaultLimits'> {
  usersFile: string;
  /** Folder that holds every user's home. */
  dataRoot: string;
  /** Called when an automatic reload fails; the previous users stay in force. */
  onReloadError?: (err: unknown) => void;
  /** How often at most a login looks at the file's mtime (default 1000 ms). */
  reloadCheckMs?: number;
}

export type FileStore = UserStore & {
  /** Re-reads the users file now; throws (and keeps the previous users) if it is invalid. */
  reload(): Promise<void>;
};

/** An error on one line, short enough for /readyz. */
const summary = (err: unknown) => {
  const text = (err as Error).message.replace(/\s*\n\s*/g, ' ');
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
};

function directoryOf(data: UsersFileData): Directory {
  return {
    user: (name) => (Object.hasOwn(data.users, name) ? data.users[name] : undefined),
    group: (name) => (Object.hasOwn(data.groups, name) ? data.groups[name] : undefined),
    anonymous: data.anonymous,
  };
}

/**
 * The `file` UserStore: the YAML users file, the embedded default (also fine from a Kubernetes Secret every replica
 * mounts). The file is re-read when its mtime/size/inode changes, checked lazily on a login (at most once per
 * reloadCheckMs): no watcher thread, nothing to leak, and a login always sees an edit made more than a second before.
 * The file is the source of truth, so the store's writes throw UserStoreError('read-only'): edit the file (ftpctl).
 */
export async function createFileStore(options: FileStoreOptions): Promise<FileStore> {
  const reloadCheckMs = options.reloadCheckMs ?? 1000;

  let data: UsersFileData;
  let directory: Directory;
  let fileVersion = '';
  let lastCheck = 0;
  let pendingCheck: Promise<void> | undefined;
  let closed = false;
  let loadedAt = 0;
  const state = { up: true, since: Date.now(), problem: '' };

  const versionOf = async (): Promise<string> => {
    const s = await stat(options.usersFile);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  };

  const setUp = (up: boolean, problem = '') => {
    if (up !== state.up) Object.assign(state, { up, since: Date.now() });
    state.problem = problem;
  };

  const reload = async (): Promise<void> => {
    try {
      const version = await versionOf();
      data = await loadUsersFile(options.usersFile);
      directory = directoryOf(data);
      fileVersion = version; // stat first: an edit racing the read is picked up by the next check
      loadedAt = Date.now();
      setUp(true);
    } catch (err) {
      setUp(false, summary(err));
      throw err;
    }
  };

  const checkForChange = async (): Promise<void> => {
    try {
      if ((await versionOf()) !== fileVersion) await reload();
    } catch (err) {
      setUp(false, summary(err));
      options.onReloadError?.(err);
    }
  };

  // Concurrent logins share a single check.
  const maybeReload = (): Promise<void> => {
    if (closed || Date.now() - lastCheck < reloadCheckMs) return pendingCheck ?? Promise.resolve();
    lastCheck = Date.now();
    pendingCheck = checkForChange().finally(() => (pendingCheck = undefined));
    return pendingCheck;
  };

  await reload();
  lastCheck = Date.now();

  const identity = createVerifier({ ...options, directory: () => directory, refresh: maybeReload });
  const users = () => Object.entries(data.users) as [string, UserRecord][];
  const groups = () => Object.entries(data.groups) as [string, GroupRecord][];

  return {
    backend: 'file',
    ...identity,
    reload,
    // Reads see the file as a login would (the same throttled check for changes).
    listUsers: async () => {
      await maybeReload();
      return users().map(([name, record]) => userView(name, record)).sort(byName);
    },
    getUser: async (name) => {
      await maybeReload();
      const record = directory.user(name);
      return record ? userView(name, record) : undefined;
    },
    listGroups: async () => {
      await maybeReload();
      return groupViews(groups(), users());
    },
    getGroup: async (name) => {
      await maybeReload();
      return groupViews(groups(), users()).find((g) => g.name === name);
    },
    exportAll: async () => {
      await maybeReload();
      return { users: { ...data.users }, groups: { ...data.groups }, anonymous: { ...data.anonymous } };
    },
    ...readOnlyWrites(
      `users come from the users file ${options.usersFile} (FTP_USER_STORE=file), which is the source of truth: change it there (ftpctl user …), or keep users in PostgreSQL (FTP_USER_STORE=postgres) to change them here`,
    ),
    health(): UserStoreHealth {
      const count = Object.keys(data.users).length;
      const detail = state.up
        ? `users file ${options.usersFile}: ${count} users`
        : `users file ${options.usersFile} unreadable or invalid since ${new Date(state.since).toISOString()} (${state.problem}); serving the ${count} users read at ${new Date(loadedAt).toISOString()}`;
      return { backend: 'file', up: state.up, detail, users: count, loadedAt, since: state.since };
    },
    close: async () => {
      closed = true;
    },
  };
}
