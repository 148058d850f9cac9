import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { treeSnapshot } from '../support/programs';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let work: string;
before(async () => {
  server = await startTestServer();
  work = mkdtempSync(join(tmpdir(), 'ftp-lftp-'));
});
after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

const snapshot = treeSnapshot;


/** ~20 files in nested folders: empty, tiny, larger, names with spaces and UTF-8; mtimes in the past. */
function makeTree(root: string) {
  const files: [string, number][] = [
    ['empty.txt', 0],
    ['one-byte.bin', 1],
    ['readme.md', 900],
    ['big.bin', 1024 * 1024 + 3],
    ['with space.txt', 2000],
    ['données-été.csv', 3000],
    ['docs/a.txt', 10],
    ['docs/b.txt', 20_000],
    ['docs/c.pdf', 150_000],
    ['docs/deep/er/x.bin', 4096],
    ['docs/deep/er/y.bin', 65_537],
    ['docs/deep/z.bin', 77],
    ['img/1.png', 30_000],
    ['img/2.png', 31_000],
    ['img/3.png', 32_000],
    ['img/4 four.png', 33_000],
    ['logs/2026-01.log', 12_345],
    ['logs/2026-02.log', 54_321],
    ['logs/old/2025.log', 99_999],
    ['logs/old/2024.log', 5],
  ];
  const when = new Date(Date.UTC(2024, 4, 6, 7, 8, 9));
  for (const [path, size] of files) {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, randomBytes(size));
    utimesSync(full, when, when);
  }
  mkdirSync(join(root, 'empty-dir'));
  return { count: files.length, when };
}

function lftp(commands: string[]): Promise<{ stdout: string; stderr: string }> {
  const script = ['set ftp:ssl-allow no', 'set net:max-retries 1', 'set net:timeout 5', 'set cmd:fail-exit yes', ...commands, 'quit'].join('; ');
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
  test(`lftp (${mode}): mirror -R then mirror back is byte-exact for a tree of 20 files`, async () => {
    const local = join(work, `tree-${mode}`);
    const { count, when } = makeTree(local);
    const log = join(work, `debug-${mode}.log`);
    const { stdout } = await lftp([
      `set ftp:passive-mode ${passive}`,
      `debug -o ${log} 5`,
      `mirror -R tree-${mode} remote-${mode}`,
      `mirror remote-${mode} copy-${mode}`,
      `cls -l remote-${mode}/`,
    ]);

    const expected = snapshot(local);
    assert.equal(Object.values(expected).filter((v) => v !== 'dir').length, count);
    assert.deepEqual(snapshot(join(server.dataDir, 'alice', `remote-${mode}`)), expected, 'server copy: every file byte-exact');
    assert.deepEqual(snapshot(join(work, `copy-${mode}`)), expected, 'round trip: every file byte-exact');

    // lftp sets the server's mtime with MFMT and the local one from the MLSD modify fact.
    assert.equal(statSync(join(server.dataDir, 'alice', `remote-${mode}`, 'docs', 'c.pdf')).mtime.getTime(), when.getTime());
    assert.equal(statSync(join(work, `copy-${mode}`, 'docs', 'deep', 'er', 'y.bin')).mtime.getTime(), when.getTime());

    const listed = stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(/\s+/).slice(-1)[0]);
    assert.ok(listed.includes(`remote-${mode}/big.bin`) && listed.includes(`remote-${mode}/docs/`), `cls -l: ${stdout}`);
    assert.ok(stdout.includes(`${1024 * 1024 + 3}`), 'cls -l shows sizes');

    const sent = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.includes('---> '))
      .map((l) => l.slice(l.indexOf('---> ') + 5).trim());
    const dataCommands = new Set(sent.map((l) => l.split(' ')[0]).filter((v) => ['PASV', 'EPSV', 'PORT', 'EPRT'].includes(v)));
    assert.deepEqual([...dataCommands].sort(), passive ? ['PASV'] : ['PORT'], `data channel commands: ${[...dataCommands]}`);
    assert.equal(sent.filter((l) => l.startsWith('STOR ')).length, count);
    // lftp creates an empty file locally instead of fetching it.
    assert.equal(sent.filter((l) => l.startsWith('RETR ')).length, count - 1);
    assert.ok(existsSync(join(work, `copy-${mode}`, 'empty-dir')), 'empty folders are mirrored too');
  });
}
