import type { GroupRecord, UserRecord } from './records';
import type { GroupView, UserView } from './store';

/** A user as admins see it: the record without its password hash. */
export function userView(name: string, record: UserRecord, meta: { createdAt?: string; updatedAt?: string } = {}): UserView {
  const { password: _password, ...rest } = record;
  return { name, ...rest, ...meta };
}

/** Every group with its members (users naming it), sorted by name. */
export function groupViews(
  groups: Iterable<[string, GroupRecord & { createdAt?: string; updatedAt?: string }]>,
  users: Iterable<[string, UserRecord]>,
): GroupView[] {
  const members = new Map<string, string[]>();
  for (const [user, record] of users) for (const group of record.groups) members.set(group, [...(members.get(group) ?? []), user]);
  return [...groups]
    .map(([name, record]) => ({ name, ...record, members: (members.get(name) ?? []).sort() }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
