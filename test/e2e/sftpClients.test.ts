// Real SFTP clients against a real edge (FTP_SFTP_PORT): OpenSSH's sftp (key and password), scp, curl (libssh2),
// Python paramiko and ssh2's own client. Every transfer is checked byte for byte on disk and in the audit log.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { User } from '@ftp/identity';
import { createLocalStorage, type Storage, type Upload } from '@ftp/storage';
import { makeTempDir, removeTempDir } from '../support/processes';
import type { TestServer } from '../support/server';
import {
  call,
  closeClient,
  filesUnder,
  makeKeyPair,
  paramiko,
  run,
  scpRun,
  sftpBatch,
  sftpOf,
  sha256,
  sizeOf,
  sshConnect,
  SSH_FX,
  startSftpServer,
  statusOf,
  until,
  userYaml,
  waitForLog,
  writeRandom,
  type Credentials,
  type KeyPair,
  type LogLine,
} from '../support/sftpClient';

const MiB = 1024 * 1024;
const PASSWORD = 'partner-password-1';

let server: TestServer;
let port: number;
let local: string;
let key: KeyPair;
let home: string;
/** While on, uploads to names containing "slow" are written at about 8 MiB/s, so a client can be killed mid-way. */
const slow = { on: false };

function throttled(storage: Storage): Storage {
  return {
    ...storage,
    async openUpload(path, start) {
      const upload = await storage.openUpload(path, start);
      if (!path.includes('slow')) return upload;
      const writeAt: Upload['writeAt'] = async (offset, data) => {
        const bytes = data instanceof Uint8Array ? data.length : data.reduce((n, d) => n + d.length, 0);
        if (slow.on) await new Promise((resolve) => setTimeout(resolve, (bytes / (8 * MiB)) * 1000));
        return upload.writeAt(offset, data);
      };
      return { ...upload, writeAt };
    },
  };
}

before(async () => {
  local = makeTempDir('sftp-clients-');
  key = makeKeyPair(local, 'id_ed25519');
  server = await startSftpServer({
    extraUsers: await userYaml('partner', { password: PASSWORD, publicKeys: [key.publicLine] }),
    storageFor: (user: User) => throttled(createLocalStorage({ root: user.root, fsync: false, metadataIo: 'sync' })),
  });
  port = server.edge.sftpPort;
  home = join(server.dataDir, 'partner');
});

after(async () => {
  await server?.close();
  if (local) removeTempDir(local);
});

const byKey = (): Credentials => ({ user: 'partner', key: key.privateKey });
const byPassword = (): Credentials => ({ user: 'partner', password: PASSWORD });

/** Audit lines of this user's SFTP transfers, from the log. */
const transfers = (event: 'upload' | 'download', path: string) =>
  server.logs.filter((l) => l.audit === true && l.event === event && l.path === path && l.protocol === 'sftp' && l.user === 'partner');

async function batchOk(creds: Credentials, lines: string[], timeoutMs = 120_000): Promise<string> {
  const result = await sftpBatch(port, creds, lines, { cwd: local, timeoutMs });
  assert.equal(result.code, 0, `sftp -b failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

describe('OpenSSH sftp -b', () => {
  const sizes = [0, 1, 64 * MiB];
  before(async () => {
    for (const size of sizes) await writeRandom(join(local, `up-${size}`), size);
  });

  for (const [how, creds] of [
    ['a key', byKey],
    ['a password (sshpass)', byPassword],
  ] as const) {
    test(`with ${how}: put and get of 0 B, 1 B and 64 MiB are byte-exact`, { timeout: 240_000 }, async () => {
      const tag = how.startsWith('a key') ? 'k' : 'p';
      await batchOk(creds(), [...sizes.map((s) => `put up-${s} ${tag}-${s}`), ...sizes.map((s) => `get ${tag}-${s} down-${tag}-${s}`)]);
      for (const size of sizes) {
        const sent = await sha256(join(local, `up-${size}`));
        assert.equal(sizeOf(join(home, `${tag}-${size}`)), size, `${size} B on disk`);
        assert.equal(await sha256(join(home, `${tag}-${size}`)), sent, `${size} B up`);
        assert.equal(await sha256(join(local, `down-${tag}-${size}`)), sent, `${size} B down`);
        const up = await waitForLog(server, (l) => transfers('upload', `/${tag}-${size}`).includes(l), `upload audit of ${size} B`);
        assert.deepEqual([up.bytes, up.result], [size, 'ok']);
        const down = await waitForLog(server, (l) => transfers('download', `/${tag}-${size}`).includes(l), `download audit of ${size} B`);
        assert.deepEqual([down.bytes, down.result], [size, 'ok']);
      }
      const login = server.logs.find((l) => l.event === 'login' && l.result === 'success' && l.user === 'partner' && l.method === (tag === 'k' ? 'publickey' : 'password'));
      assert.ok(login, 'a login audit line naming the method');
    });
  }

  test('a 200-file tree goes up with put -r and comes back with get -r', { timeout: 180_000 }, async () => {
    const tree = join(local, 'tree');
    for (let i = 0; i < 200; i++) {
      const dir = join(tree, `d${i % 7}`, `e${i % 3}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `file-${i}.bin`), Buffer.alloc(i * 41, i));
    }
    await batchOk(byKey(), ['put -r tree tree-up', 'get -r tree-up tree-back']);
    const sent = filesUnder(tree);
    assert.equal(sent.length, 200);
    assert.deepEqual(filesUnder(join(home, 'tree-up')), sent, 'the same 200 names on the server');
    assert.deepEqual(filesUnder(join(local, 'tree-back')), sent, 'and back');
    for (const f of sent) {
      const original = readFileSync(join(tree, f));
      assert.ok(original.equals(readFileSync(join(home, 'tree-up', f))), `${f} up`);
      assert.ok(original.equals(readFileSync(join(local, 'tree-back', f))), `${f} down`);
    }
    assert.equal(server.logs.filter((l) => l.event === 'upload' && String(l.path).startsWith('/tree-up/') && l.result === 'ok').length, 200);
  });

  test('reput after a killed upload continues it byte-exact; the partial is never visible under its final name', { timeout: 180_000 }, async () => {
    const size = 24 * MiB;
    const file = join(local, 'slow-resume.bin');
    await writeRandom(file, size);
    const final = join(home, 'slow-resume.bin');
    const partial = join(home, '.slow-resume.bin.ftp-partial');
    // Whenever the final name exists, it must be the whole file: never a partial under it.
    const sightings: number[] = [];
    const watch = setInterval(() => {
      const seen = sizeOf(final);
      if (seen >= 0 && seen !== size) sightings.push(seen);
    }, 5);
    let kept = 0;
    slow.on = true;
    try {
      // Kill the whole client (sftp and its ssh: one process group) once a few MiB reached the partial.
      const killed = await sftpBatch(port, byKey(), ['put slow-resume.bin'], { cwd: local, killWhen: () => sizeOf(partial) >= 4 * MiB });
      assert.ok(killed.killed && killed.code !== 0, `the first put was killed (${killed.code})`);
      const aborted = await waitForLog(server, (l) => l.event === 'upload' && l.path === '/slow-resume.bin' && l.result === 'aborted', 'the aborted upload');
      kept = sizeOf(partial);
      assert.ok(kept >= 4 * MiB && kept < size, `a partial of ${kept} bytes`);
      assert.equal(aborted.bytes, kept, 'the aborted upload wrote what the partial holds');
      assert.equal(existsSync(final), false, 'nothing published');
      // Nor listed: the hidden partial is not a name a client sees.
      const listing = await batchOk(byKey(), ['ls -la']);
      assert.doesNotMatch(listing, /slow-resume/);
      slow.on = false;
      await batchOk(byKey(), ['reput slow-resume.bin']);
    } finally {
      slow.on = false;
      clearInterval(watch);
    }
    assert.deepEqual(sightings, [], 'the final name never showed a partial size');
    assert.equal(await sha256(final), await sha256(file), 'byte-exact after reput');
    assert.equal(existsSync(partial), false, 'the partial was published');
    const resumed = await waitForLog(server, (l) => l.event === 'upload' && l.path === '/slow-resume.bin' && l.result === 'ok', 'the resumed upload');
    assert.equal(resumed.bytes, size - kept + 1, 'reput sent only the rest (from STAT: one byte short of what was kept)');
  });
});

describe('other clients', () => {
  test('scp (SFTP underneath): up, down, and a shorter file over a longer one', { timeout: 120_000 }, async () => {
    const up = join(local, 'scp-up.bin');
    await writeRandom(up, 3 * MiB + 5);
    let r = await scpRun(port, byKey(), up, ':/scp.bin');
    assert.equal(r.code, 0, `scp up: ${r.stderr}`);
    assert.equal(await sha256(join(home, 'scp.bin')), await sha256(up));
    r = await scpRun(port, byKey(), ':/scp.bin', join(local, 'scp-down.bin'));
    assert.equal(r.code, 0, `scp down: ${r.stderr}`);
    assert.equal(await sha256(join(local, 'scp-down.bin')), await sha256(up));
    // scp writes in place (no TRUNC) and then sets the size: no stale tail of the longer file may stay.
    writeFileSync(join(local, 'short.txt'), 'short');
    r = await scpRun(port, byPassword(), join(local, 'short.txt'), ':/scp.bin');
    assert.equal(r.code, 0, `scp over a longer file: ${r.stderr}`);
    assert.equal(readFileSync(join(home, 'scp.bin'), 'utf8'), 'short');
    await waitForLog(server, (l) => l.event === 'upload' && l.path === '/scp.bin' && l.bytes === 5 && l.result === 'ok', 'the scp upload');
  });

  test('curl sftp:// (libssh2) downloads and uploads with a password, checking the host key', { timeout: 120_000 }, async () => {
    const data = join(home, 'for-curl.bin');
    await writeRandom(data, 2 * MiB + 3);
    const hostKey = server.logs.find((l) => l.msg === 'SSH host key fingerprint' && l.type === 'ssh-ed25519')!;
    const pin = String(hostKey.fingerprint).replace(/^SHA256:/, '');
    const url = (p: string) => `sftp://127.0.0.1:${port}/${p}`;
    let r = await run('curl', ['-sS', '--hostpubsha256', pin, '--user', `partner:${PASSWORD}`, url('for-curl.bin'), '-o', join(local, 'curl-down.bin')]);
    assert.equal(r.code, 0, `curl download: ${r.stderr}`);
    assert.equal(await sha256(join(local, 'curl-down.bin')), await sha256(data));
    r = await run('curl', ['-sS', '-k', '--user', `partner:${PASSWORD}`, '-T', join(local, 'curl-down.bin'), url('curl-up.bin')]);
    assert.equal(r.code, 0, `curl upload: ${r.stderr}`);
    assert.equal(await sha256(join(home, 'curl-up.bin')), await sha256(data));
    r = await run('curl', ['-sS', '--hostpubsha256', `${pin.slice(0, -4)}AAAA`, '--user', `partner:${PASSWORD}`, url('for-curl.bin'), '-o', '/dev/null']);
    assert.equal(r.code, 60, 'a wrong host key pin is refused by curl');
  });

  test('paramiko: key and password, put/get byte-exact, listdir, a denied path is an IOError', { timeout: 120_000 }, async () => {
    const file = join(local, 'py-up.bin');
    await writeRandom(file, MiB + 17);
    const withKey = await paramiko(port, { user: 'partner', key: key.privateKey }, [
      ['mkdir', '/py'],
      ['put', file, '/py/up.bin'],
      ['get', '/py/up.bin', join(local, 'py-down.bin')],
      ['listdir', '/py'],
      ['normalize', '../..'],
      ['get', '/no-such-file', join(local, 'never')],
    ]);
    assert.deepEqual(withKey.slice(0, 3), [['ok'], ['ok'], ['ok']]);
    assert.deepEqual(withKey[3], ['ok', ['up.bin']]);
    assert.deepEqual(withKey[4], ['ok', '/'], 'the home is the root');
    assert.equal(withKey[5][0], 'error');
    assert.equal(withKey[5][1], 2, 'ENOENT for a missing file');
    assert.equal(await sha256(join(home, 'py/up.bin')), await sha256(file));
    assert.equal(await sha256(join(local, 'py-down.bin')), await sha256(file));
    const withPassword = await paramiko(port, { user: 'partner', password: PASSWORD }, [['stat', '/py/up.bin'], ['remove', '/py/up.bin']]);
    assert.deepEqual(withPassword, [['ok', MiB + 17], ['ok']]);
    assert.equal(existsSync(join(home, 'py/up.bin')), false);
  });

  test("ssh2's client: streams up and down byte-exact, FX codes for missing files", { timeout: 120_000 }, async () => {
    const client = await sshConnect({ port, username: 'partner', password: PASSWORD });
    try {
      const sftp = await sftpOf(client);
      const payload = Buffer.alloc(5 * MiB + 11);
      for (let i = 0; i < payload.length; i += 4096) payload.writeUInt32BE(i, i);
      await new Promise<void>((resolve, reject) => {
        const out = sftp.createWriteStream('/node.bin');
        out.on('error', reject).on('close', () => resolve());
        out.end(payload);
      });
      assert.ok(readFileSync(join(home, 'node.bin')).equals(payload), 'upload on disk');
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) =>
        sftp.createReadStream('/node.bin').on('data', (c: Buffer) => chunks.push(c)).on('error', reject).on('end', () => resolve()),
      );
      assert.ok(Buffer.concat(chunks).equals(payload), 'download');
      assert.equal(await statusOf(call((cb) => sftp.stat('/missing', cb))), SSH_FX.NO_SUCH_FILE);
      const names = await call<{ filename: string }[]>((cb) => sftp.readdir('/', cb));
      assert.ok(names.some((n) => n.filename === 'node.bin'));
      assert.ok(!names.some((n) => n.filename.endsWith('.ftp-partial')), 'no partials listed');
    } finally {
      await closeClient(client);
    }
    await until('the session is released', () => server.logs.some((l: LogLine) => l.msg === 'session closed' && l.protocol === 'sftp'));
    assert.deepEqual(readdirSync(home).filter((n) => n.endsWith('.ftp-partial')), []);
  });
});
