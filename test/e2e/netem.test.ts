// The edge behind a real link (test/support/netns.ts): 40 ms RTT and 0.1 % loss between a client namespace and the
// edge, which binds only to the link's address. curl (FTP, passive) and OpenSSH sftp in the client namespace move a
// file both ways byte-exact, and the link's delay shows in the TCP handshake and the login. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LinkUnavailableError, linkUnavailable, withLink, type Link } from '../support/netns';
import { makeTempDir, removeTempDir } from '../support/processes';
import { sha256 } from '../support/programs';
import { makeKeyPair, openSshCommand, sharedHostKeys, userYaml } from '../support/sftpClient';
import { startTestServer } from '../support/server';

const RTT_MS = 40;
const PROFILE = { rttMs: RTT_MS, lossPct: 0.1 };
const MiB = 1024 * 1024;
const skip = linkUnavailable();

/** curl's time (seconds) from its start to the transfer's: connect, login, PWD, TYPE, EPSV, the data connection. */
const PRETRANSFER = '%{time_pretransfer}\n';

/** Median TCP handshake time (ms) of 5 connects from the client namespace to `port`, by node itself: one round trip. */
async function handshakeMs(link: Link, port: number): Promise<number> {
  const script = `
    const { connect } = require('node:net');
    const times = [];
    const once = () => new Promise((resolve, reject) => {
      const t = process.hrtime.bigint();
      const s = connect(${port}, '${link.serverAddress}', () => { times.push(Number(process.hrtime.bigint() - t) / 1e6); s.destroy(); resolve(); });
      s.on('error', reject);
    });
    (async () => { for (let i = 0; i < 5; i++) await once(); console.log(times.sort((a, b) => a - b)[2]); })();`;
  const r = await link.runClient(process.execPath, ['-e', script], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, `handshake probe: ${r.stderr}`);
  return Number(r.stdout.trim());
}

async function curlOk(link: Link, args: string[]) {
  const r = await link.runClient('curl', ['-sS', '--max-time', '30', ...args], { timeoutMs: 40_000 });
  assert.equal(r.code, 0, `curl ${args.join(' ')} in ${link.clientNs}: exit ${r.code}, ${r.stderr}`);
  return r;
}

test(`the edge behind a ${RTT_MS} ms / 0.1 % loss link: curl and sftp byte-exact, the delay visible`, { skip, timeout: 60_000 }, async (t) => {
  const local = makeTempDir('netem-e2e-');
  try {
    await withLink(PROFILE, async (link) => {
      const key = makeKeyPair(local, 'id_ed25519');
      const server = await startTestServer({
        sftp: true,
        env: { ...sharedHostKeys(), FTP_HOST: link.serverAddress },
        extraUsers: await userYaml('partner', { password: randomBytes(12).toString('hex'), publicKeys: [key.publicLine] }),
      });
      try {
        const home = join(server.dataDir, 'alice');
        mkdirSync(home, { recursive: true });
        const payload = randomBytes(4 * MiB + 777);
        writeFileSync(join(local, 'up.bin'), payload);
        const url = (path: string) => `ftp://${link.serverAddress}:${server.port}/${path}`;
        const auth = ['--user', `alice:${server.password}`];

        // FTP through the link: EPSV data connections reach the edge at the link's address (the PASV/EPSV reply).
        const up = await curlOk(link, [...auth, '-w', PRETRANSFER, '-T', join(local, 'up.bin'), url('up.bin')]);
        assert.equal(sha256(readFileSync(join(home, 'up.bin'))), sha256(payload), 'FTP upload: bytes on the server');
        await curlOk(link, [...auth, '-o', join(local, 'down.bin'), url('up.bin')]);
        assert.equal(sha256(readFileSync(join(local, 'down.bin'))), sha256(payload), 'FTP download: bytes at the client');

        // The delay: a TCP handshake is one round trip; connect, USER, PASS, PWD, TYPE, EPSV and the data connection 7.
        const connectMs = await handshakeMs(link, server.port);
        assert.ok(connectMs >= RTT_MS * 0.9 && connectMs < RTT_MS + 40, `TCP connect took ${connectMs.toFixed(1)} ms over a ${RTT_MS} ms link`);
        const pretransferMs = Number(up.stdout.trim().split('\n').pop()) * 1000;
        assert.ok(pretransferMs >= 6 * RTT_MS, `connect to transfer took ${pretransferMs.toFixed(0)} ms: fewer than 6 round trips`);
        const audit = server.logs.find((l) => l.audit === true && l.event === 'upload' && l.path === '/up.bin');
        assert.ok(audit, 'the upload was audited');

        // SFTP through the link, with OpenSSH's client.
        const batch = join(local, 'batch');
        writeFileSync(batch, ['put up.bin sftp.bin', 'get sftp.bin sftp-down.bin'].join('\n') + '\n');
        const creds = { user: 'partner', key: key.privateKey };
        const c = openSshCommand('sftp', creds, ['-b', batch, '-P', String(server.edge.sftpPort)], [`partner@${link.serverAddress}`]);
        const started = Date.now();
        const r = await link.runClient(c.command, c.args, { timeoutMs: 40_000, cwd: local, env: c.env });
        assert.equal(r.code, 0, `sftp -b: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${r.stdout}\n${r.stderr}`);
        assert.equal(sha256(readFileSync(join(server.dataDir, 'partner', 'sftp.bin'))), sha256(payload), 'SFTP upload: bytes on the server');
        assert.equal(sha256(readFileSync(join(local, 'sftp-down.bin'))), sha256(payload), 'SFTP download: bytes at the client');
        // SSH needs at least connect, banner, key exchange, auth, channel, subsystem, SFTP init: well over 4 RTT.
        assert.ok(Date.now() - started >= 4 * RTT_MS, `the SFTP session took ${Date.now() - started} ms`);
      } finally {
        await server.close();
      }
    });
  } catch (err) {
    // A kernel without netem needs iptables and python3 for the same link: without them, skip as without root.
    if (!(err instanceof LinkUnavailableError)) throw err;
    t.skip(err.message);
  } finally {
    removeTempDir(local);
  }
});
