// SSH authentication at the SFTP front door against the users file (password, public key, keyboard-interactive, two
// methods, RSA with SHA-2 only), the host keys a client sees (and keeps seeing after a restart), and ssh-audit's grade.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PasswordAuthMethod, PublicKeyAuthMethod } from 'ssh2';
import { RawClient } from '../support/rawClient';
import { makeTempDir, removeTempDir } from '../support/processes';
import { startTestServer, type TestServer } from '../support/server';
import {
  closeClient,
  makeKeyPair,
  run,
  sftpBatch,
  sftpOf,
  sshConnect,
  sshRun,
  startSftpServer,
  userYaml,
  waitForLog,
  type KeyPair,
  type LogLine,
} from '../support/sftpClient';

const PASSWORD = 'partner-password-2';
const BOTH_PASSWORD = 'both-password-2';

let server: TestServer;
let port: number;
let local: string;
let ed: KeyPair;
let rsa: KeyPair;
let stranger: KeyPair;

before(async () => {
  local = makeTempDir('sftp-auth-');
  ed = makeKeyPair(local, 'id_ed25519');
  rsa = makeKeyPair(local, 'id_rsa', 'rsa', 2048);
  stranger = makeKeyPair(local, 'id_stranger');
  server = await startSftpServer({
    env: { FTP_BAN_AFTER_FAILURES: '50' },
    extraUsers:
      (await userYaml('partner', { password: PASSWORD, publicKeys: [ed.publicLine, rsa.publicLine] })) +
      (await userYaml('both', { password: BOTH_PASSWORD, publicKeys: [ed.publicLine], authMethods: ['publickey', 'password'] })),
  });
  port = server.edge.sftpPort;
});

after(async () => {
  await server?.close();
  if (local) removeTempDir(local);
});

const since = (mark: number) => (match: (l: LogLine) => boolean) => (l: LogLine) => server.logs.indexOf(l) >= mark && match(l);

/** ssh2's client logs in and opens the sftp subsystem; resolves the home listing. */
async function ssh2Login(config: Parameters<typeof sshConnect>[0]): Promise<string[]> {
  const client = await sshConnect({ port, ...config });
  try {
    const sftp = await sftpOf(client);
    return await new Promise((resolve, reject) => sftp.readdir('/', (err, list) => (err ? reject(err) : resolve(list.map((e) => e.filename)))));
  } finally {
    await closeClient(client);
  }
}

describe('authentication methods', () => {
  test("password, public key and keyboard-interactive with ssh2's client, each audited with its method", { timeout: 60_000 }, async () => {
    const mark = server.logs.length;
    const after = since(mark);
    await ssh2Login({ username: 'partner', password: PASSWORD });
    await waitForLog(server, after((l) => l.event === 'login' && l.result === 'success' && l.user === 'partner' && l.method === 'password'), 'password login');
    await ssh2Login({ username: 'partner', privateKey: readFileSync(ed.privateKey) });
    await waitForLog(server, after((l) => l.event === 'login' && l.result === 'success' && l.method === 'publickey'), 'key login');
    const asked: string[] = [];
    await ssh2Login({
      username: 'partner',
      tryKeyboard: true,
      onKeyboard: (prompts) => {
        asked.push(...prompts.map((p) => p.prompt));
        return prompts.map(() => PASSWORD);
      },
    });
    assert.deepEqual(asked, ['Password: '], 'one prompt, for the password');
    const kbd = server.logs.filter(after((l) => l.event === 'login' && l.result === 'success' && l.method === 'password'));
    assert.equal(kbd.length, 2, 'keyboard-interactive counts as the password method');
    assert.ok(kbd.every((l) => l.protocol === 'sftp'));
  });

  test('keyboard-interactive with OpenSSH (sshpass answers the prompt)', { timeout: 60_000 }, async () => {
    const result = await sftpBatch(port, { user: 'partner', password: PASSWORD }, ['pwd'], {
      cwd: local,
      extraArgs: ['-o', 'PreferredAuthentications=keyboard-interactive', '-o', 'PasswordAuthentication=no'],
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Remote working directory: \//);
  });

  test('two methods: the key alone gets partial success, key + password logs in; the password alone is refused over FTP', { timeout: 60_000 }, async () => {
    const mark = server.logs.length;
    const after = since(mark);
    // ssh2: the key only. The server answers partial success and asks for the password, which this client lacks.
    await assert.rejects(
      sshConnect({ port, username: 'both', privateKey: readFileSync(ed.privateKey), authHandler: ['publickey'] }),
      (err: Error & { level?: string }) => err.level === 'client-authentication',
    );
    const partial = await waitForLog(server, after((l) => l.msg === 'SSH authentication: partial success' && l.user === 'both'), 'partial success');
    assert.deepEqual(partial.remaining, ['password', 'keyboard-interactive']);
    assert.ok(!server.logs.some(after((l) => l.event === 'login' && l.result === 'success' && l.user === 'both')), 'no login with the key alone');
    // OpenSSH the same: the key alone is not enough.
    const keyOnly = await sftpBatch(port, { user: 'both', key: ed.privateKey }, ['pwd'], { cwd: local });
    assert.notEqual(keyOnly.code, 0);
    assert.match(keyOnly.stderr, /Permission denied \(password,keyboard-interactive\)/);
    // The password alone is not enough either.
    await assert.rejects(ssh2Login({ username: 'both', password: BOTH_PASSWORD }));
    // Key, then password: in.
    const keyFirst: PublicKeyAuthMethod = { type: 'publickey', username: 'both', key: readFileSync(ed.privateKey) };
    const thenPassword: PasswordAuthMethod = { type: 'password', username: 'both', password: BOTH_PASSWORD };
    assert.deepEqual(await ssh2Login({ username: 'both', authHandler: [keyFirst, thenPassword] }), []);
    const login = await waitForLog(server, after((l) => l.event === 'login' && l.result === 'success' && l.user === 'both'), 'two-method login');
    assert.equal(login.method, 'publickey+password');
    const openssh = await sftpBatch(port, { user: 'both', key: ed.privateKey, password: BOTH_PASSWORD }, ['pwd'], { cwd: local });
    assert.equal(openssh.code, 0, `OpenSSH with key and password: ${openssh.stderr}`);
    // FTP can only do passwords: refused, even with the right one.
    const ftp = await RawClient.connect(server.port);
    assert.equal((await ftp.reply()).code, 220);
    assert.equal((await ftp.command('USER both')).code, 331);
    const refused = await ftp.command(`PASS ${BOTH_PASSWORD}`);
    assert.equal(refused.code, 530);
    assert.match(refused.text, /SFTP only/);
    ftp.close();
  });

  test('a wrong password is refused with an audit line "login failed"; so is an unknown key', { timeout: 60_000 }, async () => {
    const mark = server.logs.length;
    const after = since(mark);
    await assert.rejects(ssh2Login({ username: 'partner', password: 'not-the-password' }), (err: Error & { level?: string }) => err.level === 'client-authentication');
    const failed = await waitForLog(server, after((l) => l.msg === 'login failed' && l.user === 'partner'), 'login failed');
    assert.deepEqual([failed.audit, failed.event, failed.result, failed.protocol], [true, 'login', 'failure', 'sftp']);
    const openssh = await sftpBatch(port, { user: 'partner', password: 'still-wrong' }, ['pwd'], { cwd: local });
    assert.notEqual(openssh.code, 0, 'OpenSSH refused too');
    await waitForLog(server, after((l) => l.msg === 'login failed' && l.user === 'partner' && l !== failed), 'a second login failed');
    const unknownKey = await sftpBatch(port, { user: 'partner', key: stranger.privateKey }, ['pwd'], { cwd: local });
    assert.notEqual(unknownKey.code, 0);
    assert.match(unknownKey.stderr, /Permission denied/);
  });

  test('an RSA-2048 key logs in with rsa-sha2-512 and rsa-sha2-256; its SHA-1 ssh-rsa signature is refused', { timeout: 60_000 }, async () => {
    // OpenSSH's defaults, then each SHA-2 signature forced. rsa-sha2-512 alone works only because patches/ adds the
    // comma ssh2 1.17's server-sig-algs lacks ("…ecdsa-sha2-nistp521rsa-sha2-512,…": OpenSSH never saw it offered).
    for (const extraArgs of [[], ['-o', 'PubkeyAcceptedAlgorithms=rsa-sha2-512'], ['-o', 'PubkeyAcceptedAlgorithms=rsa-sha2-256']]) {
      const ok = await sftpBatch(port, { user: 'partner', key: rsa.privateKey }, ['pwd'], { cwd: local, extraArgs });
      assert.equal(ok.code, 0, `${extraArgs.join(' ') || 'defaults'}: ${ok.stderr}`);
    }
    const mark = server.logs.length;
    // server-sig-algs no longer offers ssh-rsa, so OpenSSH does not even try it (the server would refuse it: sshAuth.ts).
    const sha1 = await sftpBatch(port, { user: 'partner', key: rsa.privateKey }, ['pwd'], { cwd: local, extraArgs: ['-v', '-o', 'PubkeyAcceptedAlgorithms=ssh-rsa'] });
    assert.notEqual(sha1.code, 0, 'ssh-rsa (SHA-1) signatures are refused');
    assert.match(sha1.stderr, /no mutual signature algorithm/);
    assert.ok(!server.logs.slice(mark).some((l) => l.event === 'login' && l.result === 'success'), 'no login');
    // Nor does the server sign with SHA-1: a client that accepts only ssh-rsa host keys finds no common algorithm.
    const hostSha1 = await sshRun(port, { user: 'partner', key: rsa.privateKey }, ['-o', 'LogLevel=INFO', '-o', 'HostKeyAlgorithms=ssh-rsa', '-s'], ['sftp']);
    assert.notEqual(hostSha1.code, 0);
    assert.match(hostSha1.stderr, /no matching host key type found\. Their offer: ssh-ed25519,rsa-sha2-512,rsa-sha2-256/);
  });
});

describe('host keys', () => {
  const fingerprintLines = (s: TestServer) =>
    s.logs
      .filter((l) => l.msg === 'SSH host key fingerprint')
      .map((l) => ({ type: String(l.type), fingerprint: String(l.fingerprint) }))
      .sort((a, b) => a.type.localeCompare(b.type));

  /** What `ssh-keyscan -p PORT 127.0.0.1 | ssh-keygen -lf -` prints, as {type, fingerprint}. */
  async function keyscan(sftpPort: number) {
    const scanned = await run('sh', ['-c', `ssh-keyscan -T 30 -p ${sftpPort} 127.0.0.1 2>/dev/null | ssh-keygen -lf -`]);
    assert.equal(scanned.code, 0, scanned.stderr);
    const types: Record<string, string> = { ED25519: 'ssh-ed25519', RSA: 'ssh-rsa' };
    return scanned.stdout
      .trim()
      .split('\n')
      .map((line) => {
        const m = /^\d+ (SHA256:\S+) .* \((\w+)\)$/.exec(line);
        assert.ok(m, `ssh-keygen line: ${line}`);
        return { type: types[m[2]] ?? m[2], fingerprint: m[1] };
      })
      .sort((a, b) => a.type.localeCompare(b.type));
  }

  test('the logged fingerprints are what ssh-keyscan sees, and stay the same after a restart with the same FTP_TLS_DIR', { timeout: 120_000 }, async () => {
    const tlsDir = join(local, 'tls');
    // No FTP_SFTP_HOST_KEYS: the edge generates its keys in FTP_TLS_DIR and reads them on the next start.
    const first = await startTestServer({ sftp: true, env: { FTP_TLS_DIR: tlsDir } });
    let logged: { type: string; fingerprint: string }[];
    try {
      logged = fingerprintLines(first);
      assert.deepEqual(logged.map((l) => l.type), ['ssh-ed25519', 'ssh-rsa'], 'one line per host key');
      assert.deepEqual(await keyscan(first.edge.sftpPort), logged);
    } finally {
      await first.close();
    }
    const second = await startTestServer({ sftp: true, env: { FTP_TLS_DIR: tlsDir } });
    try {
      assert.deepEqual(fingerprintLines(second), logged, 'the same keys after the restart');
      assert.deepEqual(await keyscan(second.edge.sftpPort), logged);
    } finally {
      await second.close();
    }
  });

  test('ssh-audit grades no algorithm as a failure', { timeout: 60_000 }, async (t) => {
    const audit = await run('ssh-audit', ['-n', '-p', String(port), '127.0.0.1'], { timeoutMs: 60_000 });
    const output = audit.stdout.replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(output, /\(gen\) banner: SSH-2\.0-ftp-cluster/, `ssh-audit ran:\n${output}\n${audit.stderr}`);
    const graded = output.split('\n').filter((line) => /^\((kex|key|enc|mac)\)/.test(line));
    t.diagnostic(`ssh-audit 2.5.0 algorithm lines:\n${graded.join('\n')}`);
    // ssh-audit 2.5.0 grades the NIST ECDH key exchanges "[fail] using weak elliptic curves" (its policy on the NIST
    // curves, not a known break). Issue 13 names ecdh-sha2-nistp256 among the algorithms to offer (FIPS-mode clients
    // have no curve25519), so they are kept on purpose; they are listed here by name so that any other failure, or a
    // different reason for these, fails the test.
    const KEPT = new Set(['ecdh-sha2-nistp256', 'ecdh-sha2-nistp384', 'ecdh-sha2-nistp521']);
    const failures = output.split('\n').filter((line) => /\[fail\]|\(fail\)/.test(line));
    const unexpected = failures.filter((line) => {
      const m = /^\(kex\) (\S+)\s+-- \[fail\] using weak elliptic curves$/.exec(line.trimEnd());
      return !(m && KEPT.has(m[1]));
    });
    assert.deepEqual(unexpected, [], `ssh-audit failures:\n${output}`);
    // What the hardening promised: no SHA-1 anywhere, no CBC, the Terrapin countermeasure offered.
    assert.doesNotMatch(output, /^\((key|kex|mac|enc)\) (ssh-rsa|\S*sha1\S*|\S*-cbc)\s/m);
    assert.match(output, /kex-strict-s-v00@openssh\.com/);
  });
});
