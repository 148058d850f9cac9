import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { constants, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { after, before, test } from 'node:test';
import { Client } from 'basic-ftp';
import { generate } from 'selfsigned';
import { FtpsControl, startWithImplicitTls } from '../support/ftpsClient';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let home: string;
let work: string;
/** One payload for every client: a few MiB plus an odd tail, so a lost or doubled TLS record shows. */
const payload = randomBytes(3 * 1024 * 1024 + 1234);

before(async () => {
  server = await startWithImplicitTls();
  assert.ok(server.edge.implicitPort > 0, 'implicit listener is up');
  home = join(server.dataDir, 'alice');
  mkdirSync(home, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'ftp-ftps-'));
  writeFileSync(join(work, 'payload.bin'), payload);
  writeFileSync(join(home, 'served.bin'), payload);
});
after(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Protected data connections so far, by whether they resumed the control connection's TLS session. */
async function tlsCounts(s = server): Promise<{ resumed: number; fresh: number }> {
  const { values } = await s.edge.metrics.tlsDataConnections.get();
  const of = (resumed: string) => values.find((v) => v.labels.resumed === resumed)?.value ?? 0;
  return { resumed: of('true'), fresh: of('false') };
}

/** Asserts that `run` made exactly (or at least) `expected` protected data connections, all of them resumed. */
async function expectResumed(expected: number, run: () => Promise<void>, exact = true) {
  const before = await tlsCounts();
  await run();
  const after = await tlsCounts();
  const resumed = after.resumed - before.resumed;
  if (exact) assert.equal(resumed, expected, 'protected data connections that resumed the session');
  else assert.ok(resumed >= expected, `${resumed} resumed data connections, expected at least ${expected}`);
  assert.equal(after.fresh, before.fresh, 'no data connection got through with a fresh TLS session');
}

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

const curl = (args: string[]) => run('curl', ['-sS', '-v', '--user', `alice:${server.password}`, ...args]);
const sent = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('> ')).map((l) => l.slice(2).trim());

async function curlOk(args: string[]) {
  const result = await curl(args);
  assert.equal(result.code, 0, `curl ${args.join(' ')} failed: ${result.stderr.slice(-2000)}`);
  return result;
}

/** Uploads the payload as `name` and downloads it back with the same curl flags; both byte-exact. */
async function curlRoundTrip(name: string, flags: string[], base = `ftp://127.0.0.1:${server.port}`) {
  const up = await curlOk([...flags, '-T', join(work, 'payload.bin'), `${base}/${name}`]);
  assert.equal(sha(readFileSync(join(home, name))), sha(payload), `${name}: bytes on the server`);
  const target = join(work, `${name}.down`);
  const down = await curlOk([...flags, '-o', target, `${base}/${name}`]);
  assert.equal(sha(readFileSync(target)), sha(payload), `${name}: downloaded bytes`);
  return { up: sent(up.stderr), down: sent(down.stderr), stderr: up.stderr + down.stderr };
}

test('curl --ssl-reqd (explicit, EPSV): AUTH, PBSZ 0, PROT P, byte-exact both ways, data connections resume the session', async () => {
  await expectResumed(2, async () => {
    const { up, down } = await curlRoundTrip('curl-epsv.bin', ['--ssl-reqd', '-k']);
    for (const commands of [up, down]) {
      assert.ok(commands.some((c) => /^AUTH (SSL|TLS)$/.test(c)), commands.join(' | '));
      assert.ok(commands.includes('PBSZ 0') && commands.includes('PROT P'), commands.join(' | '));
      assert.ok(commands.includes('EPSV'), commands.join(' | '));
    }
  });
});

/** curl 7.87 up to 8.0 lost the TLS filter on actively accepted data connections (curl/curl#10666): it sends clear bytes. */
async function curlActiveTlsBroken(): Promise<boolean> {
  const version = /^curl (\d+)\.(\d+)/.exec((await run('curl', ['--version'])).stdout.toString());
  const [major, minor] = [Number(version?.[1]), Number(version?.[2])];
  return major === 7 && minor >= 87;
}

test('curl --ssl-reqd --ftp-port (active, PROT P): byte-exact, or — on curl with the clear-data bug — refused, never stored in clear', async () => {
  const broken = await curlActiveTlsBroken();
  const before = await tlsCounts();
  const result = await curl(['--ssl-reqd', '-k', '--ftp-port', '127.0.0.1', '-T', join(work, 'payload.bin'), `ftp://127.0.0.1:${server.port}/curl-active.bin`]);
  assert.ok(sent(result.stderr).some((c) => /^(EPRT|PORT) /.test(c)), sent(result.stderr).join(' | '));
  if (result.code === 0) {
    assert.equal(sha(readFileSync(join(home, 'curl-active.bin'))), sha(payload));
    const target = join(work, 'curl-active.down');
    await curlOk(['--ssl-reqd', '-k', '--ftp-port', '127.0.0.1', '-o', target, `ftp://127.0.0.1:${server.port}/curl-active.bin`]);
    assert.equal(sha(readFileSync(target)), sha(payload));
    const after = await tlsCounts();
    assert.equal(after.resumed - before.resumed, 2);
    assert.equal(after.fresh, before.fresh);
  } else {
    assert.ok(broken, `curl failed in active mode: ${result.stderr.slice(-1500)}`);
    // The client sent clear bytes on a PROT P data connection: the server must refuse them, not store them.
    for (let i = 0; i < 100 && !server.logs.some((l) => l.msg === 'TLS handshake on the data connection failed'); i++) await sleep(20);
    assert.ok(server.logs.some((l) => l.msg === 'TLS handshake on the data connection failed'));
    assert.equal(existsSync(join(home, 'curl-active.bin')), false, 'clear bytes under PROT P are never published');
  }
  // Active mode with TLS on the control connection only (PROT C) works with every curl.
  const { up } = await curlRoundTrip('curl-active-clear-data.bin', ['--ftp-ssl-control', '-k', '--ftp-port', '127.0.0.1']);
  assert.ok(up.some((c) => /^AUTH (SSL|TLS)$/.test(c)) && !up.includes('PROT P'), up.join(' | '));
});

test('curl ftps:// (implicit TLS port): byte-exact both ways with resumed data connections', async () => {
  await expectResumed(2, async () => {
    const { up } = await curlRoundTrip('curl-implicit.bin', ['-k'], `ftps://127.0.0.1:${server.edge.implicitPort}`);
    assert.ok(!up.some((c) => c.startsWith('AUTH')), 'no AUTH on the implicit port');
  });
});

test('curl with TLS 1.2 forced (--tlsv1.2 --tls-max 1.2) still resumes its session on data connections', async () => {
  const marker = server.logs.length;
  await expectResumed(2, async () => {
    await curlRoundTrip('curl-tls12.bin', ['--ssl-reqd', '-k', '--tlsv1.2', '--tls-max', '1.2']);
  });
  const upgrades = server.logs.slice(marker).filter((l) => l.msg === 'control connection upgraded to TLS');
  assert.equal(upgrades.length, 2);
  assert.ok(upgrades.every((l) => l.protocol === 'TLSv1.2'), JSON.stringify(upgrades.map((l) => l.protocol)));
});

function lftp(commands: string[]): Promise<{ stdout: string; stderr: string }> {
  const script = [
    'set ftp:ssl-force true',
    'set ftp:ssl-protect-data true',
    'set ssl:verify-certificate no',
    'set net:max-retries 1',
    'set net:timeout 5',
    'set cmd:fail-exit yes',
    ...commands,
    'quit',
  ].join('; ');
  const args = ['-u', `${server.user},${server.password}`, '-p', String(server.port), '127.0.0.1', '-e', script];
  return new Promise((resolve, reject) => {
    execFile('lftp', args, { cwd: work, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`lftp failed: ${err.message}\n${stderr}`));
      resolve({ stdout, stderr });
    });
  });
}

for (const passive of [true, false]) {
  const mode = passive ? 'passive' : 'active';
  test(`lftp (${mode}, ssl-force, PROT P): put and get are byte-exact, data connections resume the session`, async () => {
    const log = join(work, `lftp-${mode}.log`);
    await expectResumed(
      2,
      async () => {
        await lftp([`set ftp:passive-mode ${passive}`, `debug -o ${log} 5`, `put payload.bin -o lftp-${mode}.bin`, `get lftp-${mode}.bin -o lftp-${mode}.down`]);
      },
      false,
    );
    assert.equal(sha(readFileSync(join(home, `lftp-${mode}.bin`))), sha(payload));
    assert.equal(sha(readFileSync(join(work, `lftp-${mode}.down`))), sha(payload));
    const commands = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.includes('---> '))
      .map((l) => l.slice(l.indexOf('---> ') + 5).trim());
    assert.ok(commands.includes('AUTH TLS') && commands.includes('PROT P'), commands.join(' | '));
    const dataCommands = new Set(commands.map((c) => c.split(' ')[0]).filter((v) => ['PASV', 'EPSV', 'PORT', 'EPRT'].includes(v)));
    assert.ok(dataCommands.size > 0, commands.join(' | '));
    for (const verb of dataCommands) assert.ok(passive ? ['PASV', 'EPSV'].includes(verb) : ['PORT', 'EPRT'].includes(verb), `${mode} used ${verb}`);
  });
}

for (const secure of [true, 'implicit'] as const) {
  test(`basic-ftp (secure: ${secure}): upload and download byte-exact over resumed protected data connections`, async () => {
    const client = new Client(10_000);
    const name = `basic-${secure}.bin`;
    try {
      await expectResumed(
        2,
        async () => {
          await client.access({
            host: '127.0.0.1',
            port: secure === 'implicit' ? server.edge.implicitPort : server.port,
            user: server.user,
            password: server.password,
            secure,
            secureOptions: { rejectUnauthorized: false },
          });
          assert.ok(client.ftp.socket.constructor.name === 'TLSSocket', 'control connection is TLS');
          await client.uploadFrom(join(work, 'payload.bin'), name);
          await client.downloadTo(join(work, `${name}.down`), name);
        },
        false,
      );
    } finally {
      client.close();
    }
    assert.equal(sha(readFileSync(join(home, name))), sha(payload));
    assert.equal(sha(readFileSync(join(work, `${name}.down`))), sha(payload));
  });
}

test('raw client: a data connection with a fresh TLS session gets 522 (logged), one resuming the control session works', async () => {
  const client = await FtpsControl.connect(server.port);
  try {
    await client.secureLogin(server.user, server.password);
    const before = await tlsCounts();
    const refused = await client.transfer('RETR served.bin', 'fresh');
    assert.equal(refused.first.code, 150);
    assert.equal(refused.final?.code, 522, JSON.stringify(refused.final));
    assert.equal(refused.data.length, 0, 'not one byte of the file went to the stranger');
    assert.ok(server.logs.some((l) => l.msg === 'data connection refused: it did not resume the TLS session'));
    const counted = await tlsCounts();
    assert.equal(counted.fresh - before.fresh, 1, 'the refused connection is counted as not resumed');

    // The session stays usable: the same client now offers the control connection's session.
    assert.equal((await client.command('NOOP')).code, 200);
    const ok = await client.transfer('RETR served.bin', 'resume');
    assert.equal(ok.final?.code, 226);
    assert.equal(ok.resumed, true, 'the client saw its session resumed');
    assert.equal(sha(ok.data), sha(payload));

    const list = await client.transfer('LIST', 'resume');
    assert.equal(list.final?.code, 226);
    assert.match(list.data.toString(), /served\.bin\r\n/, 'listings travel protected too');

    const up = await client.transfer('STOR raw-up.bin', 'resume', payload);
    assert.equal(up.final?.code, 226, JSON.stringify(up));
    assert.equal(sha(readFileSync(join(home, 'raw-up.bin'))), sha(payload));

    // Active mode: the server connects, the client is still the TLS client (RFC 4217) and resumes.
    const active = await client.activeTransfer('RETR served.bin', 'resume');
    assert.equal(active.final?.code, 226, JSON.stringify(active.final));
    assert.equal(active.resumed, true);
    assert.equal(sha(active.data), sha(payload));
    const activeFresh = await client.activeTransfer('RETR served.bin', 'fresh');
    assert.equal(activeFresh.final?.code, 522);
    assert.equal(activeFresh.data.length, 0);

    const afterAll = await tlsCounts();
    assert.equal(afterAll.resumed - counted.resumed, 4);
    assert.equal(afterAll.fresh - counted.fresh, 1);
  } finally {
    client.close();
  }
});

test('FTP_TLS_REQUIRE_REUSE=false: a fresh TLS session on the data connection is accepted (and counted as not resumed)', async () => {
  const lax = await startTestServer({ env: { FTP_TLS_REQUIRE_REUSE: 'false' } });
  const client = await FtpsControl.connect(lax.port);
  try {
    mkdirSync(join(lax.dataDir, 'alice'), { recursive: true });
    writeFileSync(join(lax.dataDir, 'alice', 'served.bin'), payload);
    await client.secureLogin(lax.user, lax.password);
    const down = await client.transfer('RETR served.bin', 'fresh');
    assert.equal(down.final?.code, 226, JSON.stringify(down));
    assert.equal(down.resumed, false);
    assert.equal(sha(down.data), sha(payload));
    const up = await client.transfer('STOR fresh-up.bin', 'fresh', payload);
    assert.equal(up.final?.code, 226);
    assert.equal(sha(readFileSync(join(lax.dataDir, 'alice', 'fresh-up.bin'))), sha(payload));
    assert.deepEqual(await tlsCounts(lax), { resumed: 0, fresh: 2 });
    assert.ok(!lax.logs.some((l) => l.msg === 'data connection refused: it did not resume the TLS session'));
  } finally {
    client.close();
    await lax.close();
  }
});

test('raw client: TLS 1.2 without tickets (session-ID cache), TLS 1.2 with tickets and TLS 1.3 all resume; an eager ClientHello is not lost', async () => {
  const variants: [string, ConnectionOptions][] = [
    ['TLSv1.2', { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }],
    ['TLSv1.2', { maxVersion: 'TLSv1.2' }],
    ['TLSv1.3', { minVersion: 'TLSv1.3' }],
  ];
  for (const [protocol, tls] of variants) {
    const client = await FtpsControl.connect(server.port, { tls });
    try {
      await client.secureLogin(server.user, server.password);
      assert.equal(client.tls!.getProtocol(), protocol);
      const what = `${protocol} ${tls.secureOptions ? 'without tickets' : 'with tickets'}`;
      assert.equal(Boolean(client.tls!.getTLSTicket()), !tls.secureOptions, `${what}: ticket issued or not`);
      await expectResumed(2, async () => {
        const down = await client.transfer('RETR served.bin', 'resume');
        assert.equal(down.final?.code, 226, `${what}: ${JSON.stringify(down.final)}`);
        assert.equal(down.resumed, true, what);
        assert.equal(sha(down.data), sha(payload), what);
        // Clients may connect and send their ClientHello right after EPSV: the server reads it only when the
        // transfer starts, and must not lose what arrived meanwhile.
        const eager = await client.transfer('RETR served.bin', 'resume', undefined, { dialFirstMs: 300 });
        assert.equal(eager.final?.code, 226, `${what} eager: ${JSON.stringify(eager.final)}`);
        assert.equal(sha(eager.data), sha(payload), `${what} eager`);
      });
      const quit = await client.command('QUIT');
      assert.equal(quit.code, 221);
      await client.waitClosed();
    } finally {
      client.close();
    }
  }
});

test('raw client: ABOR of a protected download → 426 then 226, the session stays usable over TLS', async () => {
  writeFileSync(join(home, 'big.bin'), Buffer.alloc(48 * 1024 * 1024, 7));
  const client = await FtpsControl.connect(server.port);
  try {
    await client.secureLogin(server.user, server.password);
    const port = await client.epsv();
    client.send('RETR big.bin');
    const data = tlsConnect({ host: '127.0.0.1', port, session: client.session, rejectUnauthorized: false });
    data.on('error', () => {});
    let received = 0;
    const firstBytes = new Promise<void>((resolve) =>
      data.on('data', (chunk: Buffer) => {
        received += chunk.length;
        data.pause(); // a slow reader: the server fills the socket and waits
        resolve();
      }),
    );
    assert.equal((await client.reply()).code, 150);
    await firstBytes;
    client.send('ABOR');
    assert.equal((await client.reply()).code, 426);
    assert.equal((await client.reply()).code, 226);
    data.destroy();
    assert.ok(received < 48 * 1024 * 1024, 'the download was cut short');
    assert.ok(server.logs.some((l) => l.msg === 'transfer aborted by client'));
    assert.equal((await client.command('NOOP')).code, 200);
    const again = await client.transfer('RETR served.bin', 'resume');
    assert.equal(again.final?.code, 226);
    assert.equal(sha(again.data), sha(payload));
  } finally {
    client.close();
    rmSync(join(home, 'big.bin'), { force: true });
  }
});

test('FTP_TLS_TICKET_KEYS shared by two replicas: a session from one resumes on the other; a replica with other keys refuses it', async () => {
  const keys = randomBytes(48).toString('base64');
  const [a, b] = await Promise.all([startTestServer({ env: { FTP_TLS_TICKET_KEYS: keys } }), startWithImplicitTls({ env: { FTP_TLS_TICKET_KEYS: keys } })]);
  const client = await FtpsControl.connect(a.port);
  try {
    await client.greeting();
    await client.authTls();
    await client.expect('FEAT', 211); // reads the ticket that TLS 1.3 sends after the handshake
    const resumesOn = async (port: number) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, session: client.session, rejectUnauthorized: false });
      try {
        await new Promise((resolve, reject) => {
          socket.once('secureConnect', resolve);
          socket.once('error', reject);
        });
        return socket.isSessionReused();
      } finally {
        socket.destroy();
      }
    };
    assert.ok(client.session, 'a ticket arrived');
    assert.equal(await resumesOn(b.edge.implicitPort), true, 'same keys: resumed on the other replica');
    assert.equal(await resumesOn(server.edge.implicitPort), false, 'other (random) keys: full handshake');
  } finally {
    client.close();
    await Promise.all([a.close(), b.close()]);
  }
});

/** The certificate's common name a new TLS connection to the implicit port sees. */
async function peerCommonName(port: number): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  try {
    const cert: PeerCertificate = await new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.once('secureConnect', () => resolve(socket.getPeerCertificate()));
    });
    return String(cert.subject.CN);
  } finally {
    socket.destroy();
  }
}

test('certificate files replaced on disk: new connections get the new certificate without restart; open sessions keep working', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftp-certs-'));
  const pair = (name: string) => generate([{ name: 'commonName', value: name }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  const [one, two] = await Promise.all([pair('one'), pair('two')]);
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  writeFileSync(certFile, one.cert);
  writeFileSync(keyFile, one.private);
  const rotating = await startWithImplicitTls({ env: { FTP_TLS_CERT: certFile, FTP_TLS_KEY: keyFile } });
  const client = await FtpsControl.connect(rotating.port);
  try {
    mkdirSync(join(rotating.dataDir, 'alice'), { recursive: true });
    writeFileSync(join(rotating.dataDir, 'alice', 'served.bin'), payload);
    await client.secureLogin(rotating.user, rotating.password);
    assert.equal(String(client.tls!.getPeerCertificate().subject.CN), 'one');
    assert.equal(await peerCommonName(rotating.edge.implicitPort), 'one');

    writeFileSync(keyFile, two.private);
    writeFileSync(certFile, two.cert);
    let seen = 'one';
    for (let i = 0; i < 35 && seen !== 'two'; i++) {
      await sleep(200);
      seen = await peerCommonName(rotating.edge.implicitPort);
    }
    assert.equal(seen, 'two', 'the implicit port serves the new certificate within ~7 s');
    assert.ok(rotating.logs.some((l) => l.msg === 'TLS certificate reloaded'));
    const explicit = await FtpsControl.connect(rotating.port);
    try {
      await explicit.greeting();
      await explicit.authTls();
      assert.equal(String(explicit.tls!.getPeerCertificate().subject.CN), 'two', 'AUTH TLS too');
    } finally {
      explicit.close();
    }

    // The session opened under the old certificate still works, and its data connections still resume.
    assert.equal((await client.command('NOOP')).code, 200);
    const down = await client.transfer('RETR served.bin', 'resume');
    assert.equal(down.final?.code, 226, JSON.stringify(down.final));
    assert.equal(sha(down.data), sha(payload));
  } finally {
    client.close();
    await rotating.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
