import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  S3Client,
  type ObjectIdentifier,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { describeProc, findBinary, freeBlock, makeTempDir, removeTempDir, startProcess, stopProcess, type Proc } from './processes';

/**
 * A real S3 server for tests: Debian's Ceph Object Gateway (radosgw, Ceph 16) on a throw-away one-node Ceph — one
 * mon, one OSD keeping its objects in RAM (memstore), no mgr, no auth — all on 127.0.0.1, in a temp folder of its own
 * with its own ceph.conf (nothing in /etc/ceph is read or written). Needs the Debian packages radosgw, ceph-mon and
 * ceph-osd (tools/install-test-deps.sh installs them).
 *
 * Ports: every instance takes a random block of free ports below the ephemeral range (freeBlock): the mon (msgr2
 * only), radosgw's HTTP port, then the OSD's messenger ports (`ms bind port min/max`, instead of Ceph's 6800–7300).
 * So instances never share a port and run side by side (checked: two test processes at once, as node's runner runs
 * them with --test-concurrency=2, each with its own instance). Nothing is shared between processes: no lock file, no
 * instance outliving its test process, nothing for a later run to find stale. The cost is one start per test process
 * that uses it (~2.5 s, ~4 s with two starting at once on 2 CPUs) and ~130 MB RSS per running instance.
 * Daemons and folder go with stop(), or at the test process's exit, SIGINT or SIGTERM (processes.ts); only a SIGKILLed
 * test process leaves them behind.
 *
 * Memstore is RAM, capped at `memstore device bytes` (2 GiB here), and a full store hangs every later request instead
 * of failing: delete what a test wrote (deleteBucket).
 */

export interface Radosgw {
  /** `http://127.0.0.1:PORT`: path-style only (`forcePathStyle: true`). */
  endpoint: string;
  /** Any region signs; this is the one the client config uses. */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Creates a bucket, by default `test-<random>`; resolves to its name. */
  createBucket(name?: string): Promise<string>;
  /** Empties the bucket (every object version, delete marker and unfinished multipart upload), then deletes it. */
  deleteBucket(name: string): Promise<void>;
  /** Another S3 user with a key of its own (radosgw-admin), for tests that take its key away. */
  createUser(): Promise<S3User>;
  /** SIGKILLs every daemon started here (by PID) and removes the temp folder. Fine to call twice. */
  stop(): Promise<void>;
  /** Ms from the first command until radosgw answered and the S3 user existed. */
  startupMs: number;
  /** PIDs of the daemons (ceph-mon, ceph-osd, radosgw), for memory readings. */
  pids: number[];
  /** The temp folder: ceph.conf, the mon's store, `log/` with every daemon's log. */
  dir: string;
}

/** An S3 user besides the test user: its key can be removed and restored, as a rotation or a revocation would. */
export interface S3User {
  uid: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `radosgw-admin key rm`: the store answers InvalidAccessKeyId from then on (radosgw drops its cache at once). */
  removeKey(): Promise<void>;
  /** The same key again (`key create` with the same id and secret). */
  restoreKey(): Promise<void>;
  /** `user rm --purge-data`: the user, its buckets and their objects, whatever state its key is in. */
  remove(): Promise<void>;
}

/** How long start-up may take in all (on a busy machine); a normal start takes 2–3 s. */
const START_TIMEOUT_MS = 60_000;
/** Lines of each daemon's log in a start-up error. */
const LOG_TAIL_LINES = 15;
const POLL_MS = 50;
/** Ports per instance: mon, radosgw, then the OSD's range (it binds 4 with msgr1 off; the rest is slack). */
const PORTS = 12;
const REGION = 'us-east-1';
/** RAM the OSD may fill; it is only taken as objects are written. */
const MEMSTORE_BYTES = 2 * 1024 ** 3;

/** The pools radosgw would otherwise create on first use, each costing 1–2 s (first bucket, first multipart upload). */
const RGW_POOLS = [
  '.rgw.root',
  'default.rgw.control',
  'default.rgw.meta',
  'default.rgw.log',
  'default.rgw.buckets.index',
  'default.rgw.buckets.data',
  'default.rgw.buckets.non-ec',
];

/**
 * Mon commands in one Python process (Debian's python3-rados, which the `ceph` CLI itself runs on): registers the OSD
 * (`osd new`, then prints `osd ID` so the OSD can start), creates the pools with one PG each, all at once, and tags
 * them for rgw, then prints `pools`. Twelve `ceph` CLI calls would take ~0.5 s each.
 */
const MON_SCRIPT = `
import json, sys, rados
from concurrent.futures import ThreadPoolExecutor
conf, osd_uuid, pools = sys.argv[1], sys.argv[2], sys.argv[3:]
cluster = rados.Rados(conffile=conf, name='client.admin')
cluster.connect(timeout=20)
def command(cmd):
    ret, out, err = cluster.mon_command(json.dumps(cmd), b'', timeout=20)
    if ret != 0:
        raise SystemExit('%s: %d %s' % (cmd['prefix'], ret, err))
    return out
out = command({'prefix': 'osd new', 'uuid': osd_uuid, 'format': 'json'})
print('osd', json.loads(out)['osdid'], flush=True)
with ThreadPoolExecutor(len(pools)) as ex:
    list(ex.map(command, [{'prefix': 'osd pool create', 'pool': p, 'pg_num': 1, 'pgp_num': 1} for p in pools]))
    list(ex.map(command, [{'prefix': 'osd pool application enable', 'pool': p, 'app': 'rgw'} for p in pools]))
print('pools', flush=True)
cluster.shutdown()
`;

interface Layout {
  dir: string;
  conf: string;
  monPort: number;
  rgwPort: number;
}

function cephConf(dir: string, fsid: string, first: number): Layout {
  const monPort = first;
  const rgwPort = first + 1;
  const conf = join(dir, 'ceph.conf');
  for (const sub of ['mon', 'osd/0', 'run', 'log', 'rgw']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(
    conf,
    `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = ${dir}/keyring
run dir = ${dir}/run
# $pid: radosgw-admin runs as client.rgw beside radosgw and would find the socket taken.
admin socket = ${dir}/run/$name.$pid.asok
log file = ${dir}/log/$name.log
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# The temp folder's disk may be nearly full: the mon would refuse to start.
mon data avail crit = 0
mon data avail warn = 0

[mon]
mon data = ${dir}/mon/$id
# Else every pool creation waits ~1 s for the next proposal.
paxos propose interval = 0.01

[osd]
osd data = ${dir}/osd/$id
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES}
ms bind port min = ${first + 2}
ms bind port max = ${first + PORTS - 1}

[client.rgw]
# With auth off radosgw otherwise loops on "get_initial_auth_request returned -13".
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
# Beast's worker threads (default 512): 32 serve tests and save ~8 MB.
rgw thread pool size = 32
`,
  );
  return { dir, conf, monPort, rgwPort };
}

/** Runs a command to its end; rejects with its stderr (or stdout) tail. */
function run(command: string, args: string[], cwd: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const output = (stderr || stdout).trim().split('\n').slice(-LOG_TAIL_LINES).join('\n  ');
      reject(new Error(`${command} ${args.join(' ')}: ${err.killed ? `killed after ${timeoutMs} ms` : err.message.split('\n')[0]}\n  ${output}`));
    });
  });
}

/** Resolves with the first of `lines` (filled as `proc` prints them) that starts with `prefix`; rejects if `proc` exits
 * first or time runs out. */
function lineFrom(proc: Proc, lines: string[], prefix: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const line = lines.find((l) => l.startsWith(prefix));
      if (line === undefined && !proc.exit && Date.now() <= deadline) return;
      clearInterval(timer);
      if (line !== undefined) resolve(line);
      else reject(new Error(proc.exit ? `waiting for "${prefix}": ${describeProc(proc)}` : `no "${prefix}" within ${timeoutMs} ms: ${describeProc(proc)}`));
    }, 20);
  });
}

async function waitForHttp(url: string, proc: Proc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exit) throw new Error(`radosgw on ${url}: ${describeProc(proc)}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`radosgw did not answer on ${url} within ${timeoutMs} ms; ${describeProc(proc)}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The last lines of every daemon log in the temp folder: the body of a start-up error. */
function logTails(dir: string): string {
  const logDir = join(dir, 'log');
  if (!existsSync(logDir)) return '';
  return readdirSync(logDir)
    .sort()
    .map((file) => ({ file, lines: readFileSync(join(logDir, file), 'utf8').trim().split('\n').slice(-LOG_TAIL_LINES) }))
    .filter(({ lines }) => lines.join(''))
    .map(({ file, lines }) => `--- ${file} (last ${lines.length} lines) ---\n${lines.join('\n')}`)
    .join('\n');
}

/** The S3 client settings for this server: path style, and checksums only where S3 requires them (RGW 16 refuses
 * the SDK's default streamed-trailer checksums with 411). */
export function radosgwClientConfig(rgw: Pick<Radosgw, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>): S3ClientConfig {
  return {
    endpoint: rgw.endpoint,
    region: rgw.region,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
}

async function emptyBucket(s3: S3Client, bucket: string): Promise<void> {
  for (let keyMarker: string | undefined, uploadIdMarker: string | undefined; ; ) {
    const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
    for (const upload of page.Uploads ?? []) {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
    }
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
  // Versions and delete markers too, so a test that turned versioning on leaves nothing behind either.
  for (;;) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 1000 }));
    const objects: ObjectIdentifier[] = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key!, VersionId: v.VersionId }));
    if (objects.length === 0) break;
    const result = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
    if (result.Errors?.length) throw new Error(`emptying ${bucket}: ${result.Errors.map((e) => `${e.Key}: ${e.Code}`).join(', ')}`);
  }
}

/** Starts a fresh one-node Ceph and radosgw with one S3 user. Rejects with one error holding the daemons' log tails. */
export async function startRadosgw(): Promise<Radosgw> {
  return (await launch()).server;
}

/** startRadosgw, and the daemons' processes. */
async function launch(): Promise<{ server: Radosgw; daemons: Proc[] }> {
  const install = 'apt-get install --no-install-recommends radosgw ceph-mon ceph-osd';
  const bin = {
    monmaptool: findBinary('monmaptool', install),
    mon: findBinary('ceph-mon', install),
    osd: findBinary('ceph-osd', install),
    rgw: findBinary('radosgw', install),
    admin: findBinary('radosgw-admin', install),
  };
  const started = Date.now();
  const dir = makeTempDir('radosgw-');
  const procs: Proc[] = [];
  let s3: S3Client | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      s3?.destroy();
      // Memstore keeps nothing worth a clean shutdown, and a clean OSD waits 5 s for a mon that may be gone.
      await Promise.all(procs.map((proc) => stopProcess(proc, 'SIGKILL')));
      removeTempDir(dir);
    })());
  let step = 'ports';
  try {
    const fsid = randomUUID();
    const layout = cephConf(dir, fsid, await freeBlock(PORTS, ['127.0.0.1']));
    const { conf } = layout;
    const daemon = (name: string, command: string, args: string[]) => {
      const proc = startProcess(name, command, ['-c', conf, '-f', ...args], { cwd: dir });
      procs.push(proc);
      return proc;
    };

    step = 'mkfs';
    const osdUuid = randomUUID();
    await run(bin.monmaptool, ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${layout.monPort}]`, join(dir, 'monmap')], dir);
    await Promise.all([
      run(bin.mon, ['-c', conf, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap')], dir),
      run(bin.osd, ['-c', conf, '--no-mon-config', '--mkfs', '-i', '0', '--osd-uuid', osdUuid], dir),
    ]);

    step = 'mon';
    daemon('ceph-mon', bin.mon, ['-i', 'a']);
    step = 'osd registration and pools';
    const monLines: string[] = [];
    const monScript = startProcess('mon commands', '/usr/bin/python3', ['-c', MON_SCRIPT, conf, osdUuid, ...RGW_POOLS], {
      cwd: dir,
      onStdout: (line) => monLines.push(line),
    });
    procs.push(monScript);
    const timeLeft = () => Math.max(1000, START_TIMEOUT_MS - (Date.now() - started));
    const osdLine = await lineFrom(monScript, monLines, 'osd ', timeLeft());
    const osdId = osdLine.split(' ')[1];
    if (osdId !== '0') throw new Error(`osd new gave id ${osdId}, expected 0`);
    step = 'osd';
    daemon('ceph-osd', bin.osd, ['-i', '0']);
    await lineFrom(monScript, monLines, 'pools', timeLeft());

    step = 'radosgw';
    const rgw = daemon('radosgw', bin.rgw, ['-n', 'client.rgw']);
    const endpoint = `http://127.0.0.1:${layout.rgwPort}`;
    await waitForHttp(endpoint, rgw, timeLeft());

    step = 'S3 user';
    const accessKeyId = `TEST${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = randomBytes(20).toString('hex');
    await run(
      bin.admin,
      ['-c', conf, '-n', 'client.rgw', 'user', 'create', '--uid', 'test', '--display-name', 'test', '--access-key', accessKeyId, '--secret-key', secretAccessKey],
      dir,
      timeLeft(),
    );

    const server = { endpoint, region: REGION, accessKeyId, secretAccessKey };
    const client = new S3Client(radosgwClientConfig(server));
    s3 = client;
    const daemons = procs.filter((proc) => proc !== monScript);
    const radosgw: Radosgw = {
      ...server,
      async createBucket(name = `test-${randomBytes(6).toString('hex')}`) {
        await client.send(new CreateBucketCommand({ Bucket: name }));
        return name;
      },
      async deleteBucket(name) {
        await emptyBucket(client, name);
        await client.send(new DeleteBucketCommand({ Bucket: name }));
      },
      async createUser() {
        const uid = `user-${randomBytes(4).toString('hex')}`;
        const keys = ['--access-key', `TEST${randomBytes(8).toString('hex').toUpperCase()}`, '--secret-key', randomBytes(20).toString('hex')];
        const admin = (args: string[]) => run(bin.admin, ['-c', conf, '-n', 'client.rgw', ...args], dir).then(() => undefined);
        await admin(['user', 'create', '--uid', uid, '--display-name', uid, ...keys]);
        return {
          uid,
          accessKeyId: keys[1],
          secretAccessKey: keys[3],
          removeKey: () => admin(['key', 'rm', '--uid', uid, '--access-key', keys[1]]),
          restoreKey: () => admin(['key', 'create', '--uid', uid, ...keys]),
          remove: () => admin(['user', 'rm', '--uid', uid, '--purge-data']),
        };
      },
      stop,
      startupMs: Date.now() - started,
      pids: daemons.map((proc) => proc.child.pid!),
      dir,
    };
    return { server: radosgw, daemons };
  } catch (err) {
    const message = `radosgw test server did not start (step: ${step}, after ${Date.now() - started} ms): ${(err as Error).message}`;
    const logs = logTails(dir);
    await stop();
    throw new Error(logs ? `${message}\n${logs}` : message);
  }
}

let shared: Promise<Radosgw> | undefined;

/**
 * One instance for the whole test process, started on first use and killed at process exit (processes.ts's exit
 * hook SIGKILLs the daemons and removes the folder). Its daemons do not keep the process alive, and its stop() does
 * nothing, so one test cannot stop it under another. Give each test a bucket of its own (createBucket) and delete it
 * (deleteBucket). A failed start is kept: every later call rejects with the same error.
 */
export function sharedRadosgw(): Promise<Radosgw> {
  shared ??= launch().then(({ server, daemons }) => {
    // Their pipes and handles would keep node's event loop, so the test process, alive until stop().
    for (const { child } of daemons) {
      child.unref();
      (child.stdout as Socket | null)?.unref();
      (child.stderr as Socket | null)?.unref();
    }
    return { ...server, stop: async () => {} };
  });
  return shared;
}
