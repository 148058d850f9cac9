import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createRedisConnection } from '@ftp/cluster-state';
import { hashPassword } from '@ftp/identity';
import { RawClient } from '../support/rawClient';
import { deleteKeysUnder } from '../support/redisKeys';
import { startTestServer, TEST_PASSWORD, type TestServer, type TestServerOptions } from '../support/server';

// Regression tests for the findings of the security probe (issue "Security hardening"): each one failed before its fix.

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:${randomUUID()}:`;
const servers: TestServer[] = [];

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  const redis = createRedisConnection(REDIS_URL);
  await once(redis, 'ready');
  await deleteKeysUnder(redis, prefix);
  redis.disconnect();
});

const mallory = hashPassword('mallory-own-password');
const TEST_PASSWORD_HASH_PLACEHOLDER = '__HASH__';

async function start(options: TestServerOptions = {}) {
  const server = await startTestServer({
    ...options,
    extraUsers: `  mallory:\n    password: "${await mallory}"\n    home: mallory\n${options.extraUsers ?? ''}`,
  });
  servers.push(server);
  return server;
}

/**
 * Two replicas that share their cluster state: the same edge twice with the in-memory state, or two edges on one
 * Redis prefix.
 */
async function replicas(mode: 'memory' | 'redis', env: Record<string, string>): Promise<[TestServer, TestServer]> {
  if (mode === 'memory') {
    const one = await start({ env });
    return [one, one];
  }
  const clusterEnv = { ...env, REDIS_URL, FTP_REDIS_PREFIX: `${prefix}${randomUUID()}:` };
  return [await start({ env: clusterEnv }), await start({ env: clusterEnv })];
}

async function connected(server: TestServer, localAddress = '127.0.0.1') {
  const c = await RawClient.connect(server.port, server.host, localAddress);
  assert.equal((await c.reply()).code, 220);
  return c;
}

async function guess(c: RawClient, user: string, password: string) {
  const u = await c.command(`USER ${user}`);
  if (u.code !== 331) return u.code;
  return (await c.command(`PASS ${password}`)).code;
}

for (const mode of ['memory', 'redis'] as const) {
  describe(`brute-force bans (${mode} cluster state)`, () => {
    test('a ban refuses connections opened before it, on every replica, even with the right password', async () => {
      const [a, b] = await replicas(mode, { FTP_BAN_AFTER_FAILURES: '3' });
      // Opened before the ban, on the other replica, from the attacker's address.
      const early = await connected(b, '127.0.0.21');
      const earlyAfterUser = await connected(b, '127.0.0.21');
      assert.equal((await earlyAfterUser.command('USER alice')).code, 331);

      const attacker = await connected(a, '127.0.0.21');
      assert.equal(await guess(attacker, 'alice', 'wrong-1'), 530);
      assert.equal(await guess(attacker, 'alice', 'wrong-2'), 530);
      assert.equal(await guess(attacker, 'alice', 'wrong-3'), 421, 'the third failure bans');
      await attacker.waitClosed();

      assert.equal((await early.command('USER alice')).code, 421, 'USER on a pre-opened connection is refused');
      await early.waitClosed();
      assert.equal((await earlyAfterUser.command(`PASS ${TEST_PASSWORD}`)).code, 421, 'even the right password is refused');
      await earlyAfterUser.waitClosed();
      assert.ok(b.logs.some((l) => l.msg === 'login refused: address is banned after failed logins'), 'a clear log line');

      const other = await connected(a, '127.0.0.22');
      assert.equal(await guess(other, 'alice', TEST_PASSWORD), 230, 'another address is not affected');
      other.close();
    });

    test("a login with the attacker's own account does not reset the victim's failure count", async () => {
      const [a, b] = await replicas(mode, { FTP_BAN_AFTER_FAILURES: '4' });
      const c = await connected(a, '127.0.0.23');
      for (let round = 0; round < 2; round++) {
        assert.equal(await guess(c, 'alice', 'wrong'), 530);
        assert.equal(await guess(c, 'mallory', 'mallory-own-password'), 230, 'the attacker logs in with its own account');
        assert.equal((await c.command('REIN')).code, 220);
        // The fourth failure against alice, with logins in between, bans: before the fix each login reset the count.
        assert.equal(await guess(c, 'alice', 'wrong'), round === 0 ? 530 : 421);
      }
      await c.waitClosed();
      const next = await RawClient.connect(b.port, b.host, '127.0.0.23');
      assert.equal((await next.reply()).code, 421);
      next.close();
      c.close();
    });

    test("a partner's own success forgives its typos", async () => {
      const [a] = await replicas(mode, { FTP_BAN_AFTER_FAILURES: '3' });
      const c = await connected(a, '127.0.0.24');
      for (let round = 0; round < 3; round++) {
        assert.equal(await guess(c, 'alice', 'typo'), 530);
        assert.equal(await guess(c, 'alice', TEST_PASSWORD), 230);
        assert.equal((await c.command('REIN')).code, 220);
      }
      c.close();
    });

    test('pre-login sessions are capped per address, and a login frees the slot', async () => {
      const [a, b] = await replicas(mode, { FTP_MAX_UNAUTHENTICATED_PER_IP: '3' });
      const held = [await connected(a, '127.0.0.25'), await connected(b, '127.0.0.25'), await connected(a, '127.0.0.25')];
      const refused = await RawClient.connect(b.port, b.host, '127.0.0.25');
      const reply = await refused.reply();
      assert.equal(reply.code, 421, 'the fourth unauthenticated connection of one address is refused');
      assert.match(reply.text, /not logged in/);
      await refused.waitClosed();
      const elsewhere = await connected(b, '127.0.0.26');
      elsewhere.close();
      assert.equal(await guess(held[0], 'alice', TEST_PASSWORD), 230);
      const admitted = await connected(b, '127.0.0.25');
      admitted.close();
      for (const c of held) c.close();
    });
  });
}

describe('pre-login limits', () => {
  test('the login grace time is not extended by traffic, and only login commands work before login', async () => {
    const server = await start({ env: { FTP_LOGIN_GRACE_TIME: '1' } });
    const c = await connected(server);
    const started = Date.now();
    for (const command of ['NOOP', 'SYST', 'STAT', 'HELP', 'PWD']) assert.equal((await c.command(command)).code, 530, `${command} before login`);
    assert.equal((await c.command('FEAT')).code, 211, 'FEAT still answers (clients look for AUTH TLS)');
    // A trickle of bytes that would reset an idle timer.
    const trickle = setInterval(() => c.send('NOOP'), 200);
    try {
      await c.waitClosed(5000);
    } finally {
      clearInterval(trickle);
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 4000, `closed after the grace time (${elapsed} ms)`);
    assert.ok(server.logs.some((l) => l.msg === 'login grace time over: closing'));
  });

  test('a logged-in session is not ended by the grace time', async () => {
    const server = await start({ env: { FTP_LOGIN_GRACE_TIME: '1' } });
    const c = await connected(server);
    assert.equal(await guess(c, 'alice', TEST_PASSWORD), 230);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await c.command('NOOP')).code, 200);
    c.close();
  });

  test('USER answers a require_tls account the same as any name; PASS refuses it on a clear connection', async () => {
    const server = await start({ extraUsers: `  carol:\n    password: "${await hashPassword(TEST_PASSWORD)}"\n    home: carol\n    require_tls: true\n` });
    const c = await connected(server);
    const known = await c.command('USER carol');
    const unknown = await c.command('USER nobody-here');
    assert.equal(known.code, 331);
    assert.equal(known.text.replace('carol', 'X'), unknown.text.replace('nobody-here', 'X'), 'the same reply for both');
    assert.equal((await c.command('USER carol')).code, 331);
    const wrong = await c.command('PASS wrong');
    assert.equal(wrong.code, 530);
    assert.match(wrong.text, /Login incorrect/, 'a wrong password is a plain failure');
    assert.equal((await c.command('USER carol')).code, 331);
    const right = await c.command(`PASS ${TEST_PASSWORD}`);
    assert.equal(right.code, 530);
    assert.match(right.text, /TLS required/);
    assert.equal((await c.command('PWD')).code, 530, 'not logged in');
    c.close();
  });
});

describe('permission bypasses', () => {
  const rules = `  pat:\n    password: "${TEST_PASSWORD_HASH_PLACEHOLDER}"\n    home: pat\n    permissions:\n      /: [list, download, upload, overwrite, delete, rename, mkdir, rmdir]\n      /pub/archive: [list, download]\n      /drop: [list, download, upload, rename]\n`;

  async function patServer() {
    const server = await start({ extraUsers: rules.replace(TEST_PASSWORD_HASH_PLACEHOLDER, await hashPassword(TEST_PASSWORD)) });
    const home = join(server.dataDir, 'pat');
    mkdirSync(join(home, 'pub/archive'), { recursive: true });
    mkdirSync(join(home, 'drop'), { recursive: true });
    writeFileSync(join(home, 'pub/archive/report.txt'), 'original report');
    writeFileSync(join(home, 'drop/target.txt'), 'keep me');
    writeFileSync(join(home, 'drop/incoming.txt'), 'replacement');
    const c = await connected(server);
    assert.equal(await guess(c, 'pat', TEST_PASSWORD), 230);
    return { server, home, c };
  }

  test('renaming or removing an ancestor folder cannot escape a stricter rule below it', async () => {
    const { home, c } = await patServer();
    assert.equal((await c.command('RNFR /pub')).code, 550, 'RNFR of a folder holding a read-only folder');
    assert.ok(existsSync(join(home, 'pub/archive/report.txt')));
    // Nor by moving a folder onto a name whose subtree has a stricter rule.
    assert.equal((await c.command('MKD /other')).code, 257);
    assert.equal((await c.command('RNFR /other')).code, 350);
    assert.equal((await c.command('RNTO /pub')).code, 550);
    assert.equal((await c.command('RMD /pub')).code, 550, 'RMD of a folder with a stricter rule below');
    // A folder without deeper rules still renames.
    assert.equal((await c.command('RNFR /other')).code, 350);
    assert.equal((await c.command('RNTO /other2')).code, 250);
    c.close();
  });

  test('RNTO onto an existing file needs the overwrite permission; without it the target is untouched', async () => {
    const { home, c } = await patServer();
    assert.equal((await c.command('RNFR /drop/incoming.txt')).code, 350);
    assert.equal((await c.command('RNTO /drop/target.txt')).code, 550);
    assert.equal(readFileSync(join(home, 'drop/target.txt'), 'utf8'), 'keep me');
    assert.ok(existsSync(join(home, 'drop/incoming.txt')));
    assert.equal((await c.command('RNFR /drop/incoming.txt')).code, 350);
    assert.equal((await c.command('RNTO /drop/new.txt')).code, 250, 'a free name needs no overwrite');
    // Where the user may overwrite, the rename replaces the file.
    writeFileSync(join(home, 'a.txt'), 'new');
    writeFileSync(join(home, 'b.txt'), 'old');
    assert.equal((await c.command('RNFR /a.txt')).code, 350);
    assert.equal((await c.command('RNTO /b.txt')).code, 250);
    assert.equal(readFileSync(join(home, 'b.txt'), 'utf8'), 'new');
    c.close();
  });
});
