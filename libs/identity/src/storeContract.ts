// Behaviour every UserStore that holds its users (the users file, PostgreSQL) must show, written once and run against
// each (as libs/cluster-state's contract.ts does for the cluster state). Not exported from the package.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword, verifyPassword } from './password';
import { parseAuthorizedKey } from './publicKeys';
import { ALL_PERMISSIONS, type UserRecord } from './records';
import { NO_LIMITS } from './limits';
import { isUserStoreError, type Actor, type UserStore } from './store';
import { sshKeygen, type GeneratedKey } from './testKeys';
import type { EffectiveLimits } from './types';
import type { UsersFileData } from './usersFile';

export interface StoreUnderTest {
  store: UserStore;
  /** Replaces every user and group at the source, as an operator editing the file or another replica writing would. */
  replaceSource(data: UsersFileData): Promise<void>;
}

export interface StoreHarness {
  /** Whether the store takes writes (PostgreSQL) or refuses them as read-only (the users file). */
  writable: boolean;
  /**
   * A fresh store that holds `seed`, on this data root and clock, counting password checks through `verifyPassword`,
   * with these server default limits.
   */
  open(
    seed: UsersFileData,
    options: {
      dataRoot: string;
      now: () => number;
      verifyPassword: (password: string, encoded: string) => Promise<boolean>;
      defaultLimits: EffectiveLimits;
    },
  ): Promise<StoreUnderTest>;
}

const HOUR = 3_600_000;
const BY: Actor = { name: 'contract-test', via: 'test' };
/** The server's defaults (FTP_DEFAULT_*) in every case: what neither a user nor its groups set. */
const DEFAULTS: EffectiveLimits = { ...NO_LIMITS, bandwidthDown: 9000, sessionsPerMinute: 60 };

export function userStoreContract(name: string, harness: StoreHarness) {
  let dir: string;
  let hashPw: string;
  let hashOther: string;
  let keyA: GeneratedKey;
  let keyB: GeneratedKey;
  const opened: UserStore[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), `identity-contract-${name}-`));
    [hashPw, hashOther] = await Promise.all([hashPassword('pw'), hashPassword('other')]);
    keyA = sshKeygen(dir, 'ed25519');
    keyB = sshKeygen(dir, 'ecdsa');
  });
  after(async () => {
    for (const store of opened) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const key = (k: GeneratedKey) => parseAuthorizedKey(k.line);
  const offer = (k: GeneratedKey) => ({ type: key(k).type, data: Buffer.from(key(k).data) });
  const user = (extra: Partial<UserRecord> = {}): UserRecord => ({ password: hashPw, home: 'x', groups: [], disabled: false, publicKeys: [], ...extra });

  /** Two groups and five users that exercise the merge rule, protocols, expiry and keys. */
  const seed = (t0: number): UsersFileData => ({
    groups: {
      partners: {
        description: 'every partner',
        permissions: { '/': ['list', 'download'], '/inbox': ['list', 'upload'], '/archive': ['list'] },
        allowFrom: ['10.0.0.0/8', '127.0.0.1'],
        requireTls: true,
        protocols: ['sftp', 'ftps'],
        limits: { quotaBytes: 5000, dailyUploadBytes: 100, bandwidthUp: 2000 },
      },
      audit: { permissions: { '/': ['list'], '/reports': ['list', 'download'] }, maxSessions: 2 },
    },
    users: {
      alice: user({ home: 'homes/alice', groups: ['partners', 'audit'], publicKeys: [key(keyA)], description: 'ACME' }),
      bob: user({
        home: 'bob',
        groups: ['partners'],
        permissions: { '/': [...ALL_PERMISSIONS] },
        allowFrom: [],
        requireTls: false,
        protocols: ['ftp'],
        // Her own daily upload volume; 0 = none, lifting the group's bandwidth_up and the server's bandwidth_down.
        limits: { dailyUploadBytes: 500, bandwidthUp: 0, bandwidthDown: 0 },
      }),
      carol: user({ home: 'carol', disabled: true, publicKeys: [key(keyB)] }),
      dave: user({ home: 'dave', expiresAt: new Date(t0 + HOUR).toISOString() }),
      erin: user({ home: 'erin', protocols: ['sftp'], authMethods: ['publickey'], publicKeys: [key(keyB)] }),
    },
    anonymous: { enabled: false, home: 'pub' },
  });

  let n = 0;
  const setup = async () => {
    let t = Date.UTC(2030, 0, 1);
    const counter = { verifications: 0 };
    const dataRoot = path.join(dir, `case${n++}`, 'data');
    const data = seed(t);
    const under = await harness.open(data, {
      dataRoot,
      defaultLimits: DEFAULTS,
      now: () => t,
      verifyPassword: (p, e) => {
        counter.verifications++;
        return verifyPassword(p, e);
      },
    });
    opened.push(under.store);
    return { ...under, data, dataRoot, counter, advance: (ms: number) => (t += ms) };
  };

  test(`${name}: a right password gives the user with its groups merged in, and creates its home`, async () => {
    const { store, dataRoot } = await setup();
    const alice = await store.authenticate('alice', 'pw', '10.1.2.3', 'sftp');
    assert.ok(alice.ok);
    assert.deepEqual(alice.user, {
      name: 'alice',
      root: path.join(dataRoot, 'homes', 'alice'),
      // Folder by folder: partners' "/", /inbox and /archive, then audit's /reports (audit's "/" loses to partners').
      permissions: { '/': ['list', 'download'], '/inbox': ['list', 'upload'], '/archive': ['list'], '/reports': ['list', 'download'] },
      groups: ['partners', 'audit'],
      allowFrom: ['10.0.0.0/8', '127.0.0.1'],
      requireTls: true,
      maxSessions: 2,
      anonymous: false,
      publicKeys: [key(keyA)],
      protocols: ['sftp', 'ftps'],
      // Limit by limit: the group's, then the server's default; every limit present (0 = none).
      limits: { ...DEFAULTS, quotaBytes: 5000, dailyUploadBytes: 100, bandwidthUp: 2000 },
    });
    assert.ok((await stat(alice.user.root)).isDirectory());

    // bob sets his own "/", allow_from, require_tls, protocols and some limits; the rest still comes from partners.
    const bob = await store.authenticate('bob', 'pw', '192.0.2.1', 'ftp');
    assert.ok(bob.ok);
    assert.deepEqual(bob.user.permissions, { '/': ALL_PERMISSIONS, '/inbox': ['list', 'upload'], '/archive': ['list'] });
    assert.deepEqual(bob.user.allowFrom, []);
    assert.equal(bob.user.requireTls, false);
    assert.deepEqual(bob.user.limits, { ...DEFAULTS, quotaBytes: 5000, dailyUploadBytes: 500, bandwidthUp: 0, bandwidthDown: 0 });
    assert.equal(store.requiresTls('alice'), true, 'from the group');
    assert.equal(store.requiresTls('bob'), false, "the user's own setting wins");
    assert.equal(store.requiresTls('nobody'), false);
    assert.equal(store.isAnonymous('anonymous'), false);
  });

  test(`${name}: wrong password, unknown user (same cost), disabled, address denied; only a right credential learns why`, async () => {
    const { store, counter } = await setup();
    assert.deepEqual(await store.authenticate('alice', 'nope', '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-password' });
    counter.verifications = 0;
    assert.deepEqual(await store.authenticate('mallory', 'pw', '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' });
    assert.equal(counter.verifications, 1, 'an unknown user costs a scrypt run too');
    assert.deepEqual(await store.authenticate('__proto__', 'pw', '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' });
    assert.deepEqual(await store.authenticate('carol', 'pw', '10.0.0.1', 'sftp'), { ok: false, reason: 'disabled' });
    assert.deepEqual(await store.authenticate('carol', 'nope', '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-password' });
    assert.deepEqual(await store.authenticate('alice', 'pw', '192.168.0.1', 'sftp'), { ok: false, reason: 'address-denied' });
    assert.deepEqual(await store.authenticate('alice', 'nope', '192.168.0.1', 'sftp'), { ok: false, reason: 'bad-password' });
    assert.equal((await store.authenticate('alice', 'pw', '::ffff:10.9.9.9', 'sftp')).ok, true);
  });

  test(`${name}: keys: the user's key lets in, others and unknown users do not, disabled only told to the key holder`, async () => {
    const { store, counter } = await setup();
    assert.equal((await store.authenticateKey('alice', offer(keyA), '10.0.0.1', 'sftp')).ok, true);
    assert.deepEqual(await store.authenticateKey('alice', offer(keyB), '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
    assert.deepEqual(await store.authenticateKey('mallory', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' });
    assert.deepEqual(await store.authenticateKey('carol', offer(keyB), '10.0.0.1', 'sftp'), { ok: false, reason: 'disabled' });
    assert.deepEqual(await store.authenticateKey('carol', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
    assert.equal((await store.authenticateKey('erin', offer(keyB), '10.0.0.1', 'sftp')).ok, true);
    assert.deepEqual(await store.authenticate('erin', 'pw', '10.0.0.1', 'sftp'), { ok: false, reason: 'method-not-allowed' });
    assert.equal(counter.verifications, 1, 'no scrypt for keys');
  });

  test(`${name}: protocols: a front door the user may not use is refused after a right credential; ftp admits ftps too`, async () => {
    const { store } = await setup();
    // erin: [sftp]; alice: [sftp, ftps] from partners; bob: [ftp] of his own.
    assert.deepEqual(await store.authenticateKey('erin', offer(keyB), '10.0.0.1', 'ftp'), { ok: false, reason: 'protocol-not-allowed' });
    assert.deepEqual(await store.authenticate('alice', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'protocol-not-allowed' });
    assert.deepEqual(await store.authenticate('alice', 'nope', '10.0.0.1', 'ftp'), { ok: false, reason: 'bad-password' }, 'a wrong password learns nothing');
    assert.equal((await store.authenticate('alice', 'pw', '10.0.0.1', 'ftps')).ok, true);
    assert.equal((await store.authenticateKey('alice', offer(keyA), '10.0.0.1', 'sftp')).ok, true);
    assert.equal((await store.authenticate('bob', 'pw', '10.0.0.1', 'ftp')).ok, true);
    assert.equal((await store.authenticate('bob', 'pw', '10.0.0.1', 'ftps')).ok, true, 'ftp admits FTP over TLS too');
    assert.deepEqual(await store.authenticate('bob', 'pw', '10.0.0.1', 'sftp'), { ok: false, reason: 'protocol-not-allowed' });
    assert.equal((await store.authenticate('dave', 'pw', '10.0.0.1', 'sftp')).ok, true, 'no protocols: every front door');
  });

  test(`${name}: expires_at: the account stops at that instant, told only to a right credential`, async () => {
    const { store, advance } = await setup();
    const dave = await store.authenticate('dave', 'pw', '10.0.0.1', 'ftp');
    assert.ok(dave.ok);
    assert.equal(dave.user.expiresAt, new Date(Date.UTC(2030, 0, 1) + HOUR).toISOString());
    advance(HOUR);
    assert.deepEqual(await store.authenticate('dave', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'expired' });
    assert.deepEqual(await store.authenticate('dave', 'nope', '10.0.0.1', 'ftp'), { ok: false, reason: 'bad-password' });
  });

  test(`${name}: the password cache: a repeat login skips scrypt, parallel ones share a run, a new hash invalidates it`, async () => {
    const { store, counter, replaceSource, data } = await setup();
    assert.equal((await store.authenticate('dave', 'pw', '10.0.0.1', 'ftp')).ok, true);
    assert.equal((await store.authenticate('dave', 'pw', '10.0.0.1', 'ftp')).ok, true);
    assert.equal(counter.verifications, 1, 'second login served from the cache');
    const attempts = [...Array.from({ length: 10 }, () => 'pw'), 'wrong', 'wrong'];
    const results = await Promise.all(attempts.map((pw) => store.authenticate('bob', pw, '10.0.0.1', 'ftp')));
    assert.deepEqual(
      results.map((r) => r.ok),
      attempts.map((pw) => pw === 'pw'),
    );
    assert.equal(counter.verifications, 3, 'one run for the 10 right passwords, one for the 2 wrong ones');

    // The source changes dave's password: the old one stops working as soon as the store has the change.
    await replaceSource({ ...data, users: { ...data.users, dave: { ...data.users.dave, password: hashOther } } });
    await eventually(async () => (await store.authenticate('dave', 'pw', '10.0.0.1', 'ftp')).ok === false, 'old password refused within 1 s');
    assert.equal((await store.authenticate('dave', 'other', '10.0.0.1', 'ftp')).ok, true);
  });

  test(`${name}: a change at the source is seen within 1 s: a new user, a disabled one, a group's new settings`, async () => {
    const { store, replaceSource, data } = await setup();
    assert.equal((await store.authenticate('alice', 'pw', '10.0.0.1', 'sftp')).ok, true);
    const changed: UsersFileData = {
      ...data,
      groups: { ...data.groups, partners: { ...data.groups.partners, protocols: ['ftp'] } },
      users: { ...data.users, frank: user({ home: 'frank' }), dave: { ...data.users.dave, disabled: true } },
    };
    const started = Date.now();
    await replaceSource(changed);
    // How soon the store has the change (cheap reads: a login's scrypt run would measure the CPU, not the store).
    await eventually(async () => (await store.getUser('frank')) !== undefined && (await store.getUser('dave'))?.disabled === true, 'the change is in');
    await eventually(async () => (await store.getGroup('partners'))?.protocols?.[0] === 'ftp', "the group's change is in");
    const seenAfter = Date.now() - started;
    assert.ok(seenAfter < 1000, `seen after ${seenAfter} ms`);
    assert.equal((await store.authenticate('frank', 'pw', '10.0.0.1', 'ftp')).ok, true, 'a new user logs in');
    assert.deepEqual(await store.authenticate('dave', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'disabled' });
    // alice sets no protocols of her own: partners' new [ftp] is hers now.
    assert.deepEqual(await store.authenticate('alice', 'pw', '10.0.0.1', 'sftp'), { ok: false, reason: 'protocol-not-allowed' });
    assert.equal((await store.authenticate('alice', 'pw', '10.0.0.1', 'ftp')).ok, true);
  });

  test(`${name}: admins read users without password hashes, groups with their members, and export the source`, async () => {
    const { store, data } = await setup();
    const users = await store.listUsers();
    assert.deepEqual(
      users.map((u) => u.name),
      ['alice', 'bob', 'carol', 'dave', 'erin'],
    );
    for (const u of users) assert.equal('password' in u, false, `${u.name}: no hash`);
    const alice = await store.getUser('alice');
    assert.equal(alice?.description, 'ACME');
    assert.deepEqual(alice?.groups, ['partners', 'audit']);
    assert.equal(await store.getUser('nobody'), undefined);
    const groups = await store.listGroups();
    assert.deepEqual(
      groups.map((g) => [g.name, g.members]),
      [
        ['audit', ['alice']],
        ['partners', ['alice', 'bob']],
      ],
    );
    assert.equal((await store.getGroup('partners'))?.description, 'every partner');
    const exported = await store.exportAll();
    assert.deepEqual(Object.keys(exported.users).sort(), Object.keys(data.users).sort());
    assert.deepEqual(exported.users.alice, data.users.alice);
    assert.deepEqual(exported.users.bob, data.users.bob);
    assert.deepEqual(exported.groups.partners, data.groups.partners);
    const health = store.health();
    assert.equal(health.up, true);
    assert.equal(health.users, 5);
    assert.equal(health.backend, store.backend);
  });

  if (!harness.writable) {
    test(`${name}: every write is refused as read-only, with the reason`, async () => {
      const { store } = await setup();
      const writes: [string, () => Promise<unknown>][] = [
        ['createUser', () => store.createUser('zed', user(), BY)],
        ['updateUser', () => store.updateUser('alice', { disabled: true }, BY)],
        ['deleteUser', () => store.deleteUser('alice', BY)],
        ['addPublicKeys', () => store.addPublicKeys('alice', [key(keyB)], BY)],
        ['removePublicKey', () => store.removePublicKey('alice', keyA.fingerprint, BY)],
        ['createGroup', () => store.createGroup('g', {}, BY)],
        ['updateGroup', () => store.updateGroup('partners', { maxSessions: 1 }, BY)],
        ['deleteGroup', () => store.deleteGroup('audit', BY)],
        ['importAll', () => store.importAll({ users: {}, groups: {}, anonymous: { enabled: false, home: 'pub' } }, BY)],
      ];
      for (const [what, write] of writes) {
        await assert.rejects(write(), (err) => isUserStoreError(err, 'read-only') && /source of truth|identity provider/.test((err as Error).message), what);
      }
      assert.equal((await store.authenticate('alice', 'pw', '10.0.0.1', 'sftp')).ok, true, 'nothing changed');
    });
    return;
  }

  test(`${name}: users are created, changed and deleted, each change in force at once on this replica`, async () => {
    const { store } = await setup();
    const created = await store.createUser('zed', user({ home: 'zed', groups: ['audit'], description: 'new partner' }), BY);
    assert.equal(created.name, 'zed');
    assert.equal('password' in created, false);
    assert.ok(created.createdAt);
    const zed = await store.authenticate('zed', 'pw', '10.0.0.1', 'ftp');
    assert.ok(zed.ok);
    assert.equal(zed.user.maxSessions, 2, "audit's max_sessions");

    await store.updateUser('zed', { disabled: true }, BY);
    assert.deepEqual(await store.authenticate('zed', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'disabled' });
    await store.updateUser('zed', { disabled: false, password: hashOther, protocols: ['sftp'] }, BY);
    assert.deepEqual(await store.authenticate('zed', 'pw', '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-password' });
    assert.deepEqual(await store.authenticate('zed', 'other', '10.0.0.1', 'ftp'), { ok: false, reason: 'protocol-not-allowed' });
    assert.equal((await store.authenticate('zed', 'other', '10.0.0.1', 'sftp')).ok, true);
    const cleared = await store.updateUser('zed', { protocols: null, description: null, groups: ['partners'] }, BY);
    assert.equal(cleared.protocols, undefined);
    assert.equal(cleared.description, undefined);
    assert.deepEqual(await store.authenticate('zed', 'other', '10.0.0.1', 'ftp'), { ok: false, reason: 'protocol-not-allowed' }, "partners' protocols again");

    const withKey = await store.addPublicKeys('zed', [key(keyA)], BY);
    assert.deepEqual(
      withKey.publicKeys.map((k) => k.fingerprint),
      [keyA.fingerprint],
    );
    assert.equal((await store.authenticateKey('zed', offer(keyA), '10.0.0.1', 'sftp')).ok, true);
    await assert.rejects(store.addPublicKeys('zed', [key(keyA)], BY), (err) => isUserStoreError(err, 'conflict'));
    await store.updateUser('zed', { authMethods: ['publickey'] }, BY);
    await assert.rejects(store.removePublicKey('zed', keyA.fingerprint, BY), (err) => isUserStoreError(err, 'conflict'), 'the last key of a key-only user');
    await store.updateUser('zed', { authMethods: null }, BY);
    await store.removePublicKey('zed', keyA.fingerprint, BY);
    assert.deepEqual(await store.authenticateKey('zed', offer(keyA), '10.0.0.1', 'sftp'), { ok: false, reason: 'bad-key' });
    await assert.rejects(store.removePublicKey('zed', keyA.fingerprint, BY), (err) => isUserStoreError(err, 'not-found'));

    await store.deleteUser('zed', BY);
    assert.deepEqual(await store.authenticate('zed', 'other', '10.0.0.1', 'sftp'), { ok: false, reason: 'unknown-user' });
    assert.equal(await store.getUser('zed'), undefined);
  });

  test(`${name}: bad writes are refused with the right code and say why`, async () => {
    const { store } = await setup();
    const rejects = (promise: Promise<unknown>, code: Parameters<typeof isUserStoreError>[1], message: RegExp) =>
      assert.rejects(promise, (err) => isUserStoreError(err, code) && message.test((err as Error).message));
    await rejects(store.createUser('alice', user(), BY), 'conflict', /already exists/);
    await rejects(store.createUser('bad name', user(), BY), 'invalid', /user name/);
    await rejects(store.createUser('zed', user({ password: 'hunter2' }), BY), 'invalid', /password: must be a scrypt hash/);
    await rejects(store.createUser('zed', user({ home: '../etc' }), BY), 'invalid', /home/);
    await rejects(store.createUser('zed', user({ groups: ['nosuch'] }), BY), 'invalid', /nosuch/);
    await rejects(store.updateUser('nobody', { disabled: true }, BY), 'not-found', /nobody/);
    await rejects(store.updateUser('alice', { home: null }, BY), 'invalid', /home/);
    await rejects(store.updateUser('alice', { permissions: { '/inbox': ['upload'] } }, BY), 'invalid', /"\/" is required/);
    await rejects(store.updateUser('alice', { groups: ['nosuch'] }, BY), 'invalid', /nosuch/);
    await rejects(store.deleteUser('nobody', BY), 'not-found', /nobody/);
    await rejects(store.createGroup('partners', {}, BY), 'conflict', /already exists/);
    await rejects(store.deleteGroup('partners', BY), 'conflict', /alice, bob/);
    await rejects(store.updateGroup('nosuch', { maxSessions: 1 }, BY), 'not-found', /nosuch/);
    assert.equal((await store.authenticate('alice', 'pw', '10.0.0.1', 'sftp')).ok, true, 'nothing changed');
  });

  test(`${name}: groups are created, changed and deleted; a group's change reaches its members at once`, async () => {
    const { store } = await setup();
    const group = await store.createGroup('ops', { permissions: { '/': ['list'] }, protocols: ['sftp'], description: 'operators' }, BY);
    assert.deepEqual(group.members, []);
    await store.createUser('olga', user({ home: 'olga', groups: ['ops'] }), BY);
    assert.deepEqual(await store.authenticate('olga', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'protocol-not-allowed' });
    const changed = await store.updateGroup('ops', { protocols: null, limits: { dailyDownloadBytes: 7 } }, BY);
    assert.deepEqual(changed.members, ['olga']);
    const olga = await store.authenticate('olga', 'pw', '10.0.0.1', 'ftp');
    assert.ok(olga.ok);
    assert.deepEqual(olga.user.limits, { ...DEFAULTS, dailyDownloadBytes: 7 });
    assert.deepEqual(olga.user.permissions, { '/': ['list'] });
    await store.updateUser('olga', { groups: [] }, BY);
    await store.deleteGroup('ops', BY);
    assert.equal(await store.getGroup('ops'), undefined);
  });

  test(`${name}: importAll writes a users file's users and groups; prune deletes the rest`, async () => {
    const { store } = await setup();
    const file: UsersFileData = {
      users: { alice: user({ home: 'alice2', groups: ['labels-only'] }), yann: user({ home: 'yann' }) },
      groups: { partners: { maxSessions: 9 } },
      anonymous: { enabled: false, home: 'pub' },
    };
    assert.deepEqual(await store.importAll(file, BY), { users: 2, groups: 2 });
    assert.equal((await store.getUser('alice'))?.home, 'alice2');
    assert.ok(await store.getUser('bob'), 'kept without prune');
    assert.deepEqual((await store.getGroup('labels-only'))?.members, ['alice'], 'a group only named becomes an empty group');
    await store.importAll(file, BY, { prune: true });
    assert.deepEqual(
      (await store.listUsers()).map((u) => u.name),
      ['alice', 'yann'],
    );
    assert.deepEqual(
      (await store.listGroups()).map((g) => g.name),
      ['labels-only', 'partners'],
    );
    assert.equal((await store.authenticate('yann', 'pw', '10.0.0.1', 'ftp')).ok, true);
    assert.deepEqual(await store.authenticate('bob', 'pw', '10.0.0.1', 'ftp'), { ok: false, reason: 'unknown-user' });
  });
}

/** Polls `check` until it holds, for at most `ms`. */
export async function eventually(check: () => Promise<boolean>, what: string, ms = 1000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
