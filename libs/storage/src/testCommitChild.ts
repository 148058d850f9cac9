// Run by local.upload.strace.test.ts under strace (not a test itself): COUNT uploads of 4 KiB into directory `d` of a
// fresh local storage at ROOT, all at once, through the public API. After each commit() resolves it calls
// access("<ROOT>/d/committed-<name>") (which fails: nothing has that name), so the trace shows when.
// Usage: node --import tsx testCommitChild.ts ROOT COUNT fsync|nofsync sync|async
import fs from 'node:fs';
import path from 'node:path';
import { createLocalStorage } from './local';

const [root, count, fsync, metadataIo] = process.argv.slice(2);
const storage = createLocalStorage({ root, fsync: fsync === 'fsync', metadataIo: metadataIo === 'sync' ? 'sync' : 'async' });
await storage.mkdir('/d');
const payload = Buffer.alloc(4096, 0x62);
await Promise.all(
  Array.from({ length: Number(count) }, async (_, i) => {
    const upload = await storage.openUpload(`/d/f-${i}`, { kind: 'replace' });
    upload.stream.end(payload);
    await upload.commit();
    try {
      fs.accessSync(path.join(root, 'd', `committed-f-${i}`));
    } catch {
      // expected: the call is only a marker in the trace
    }
  }),
);
