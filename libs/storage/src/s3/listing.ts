import { ListObjectsV2Command, type _Object } from '@aws-sdk/client-s3';
import { limitError, storageError } from '../errors';
import { isPartialName } from '../partial';
import type { FileStat, StoredUsage } from '../types';
import { basenameOf } from '../virtualPath';
import { dirStat, fileStat, headObject, send, type S3Context } from './objects';
import type { Location } from './keys';

/** One page of a folder as S3 returned it: files and subfolders, each list in key order. */
interface FolderPage {
  files: _Object[];
  folders: string[];
  next?: string;
}

async function folderPage(ctx: S3Context, folder: string, pageSize: number, token?: string): Promise<FolderPage> {
  const page = await send(
    ctx.client.send(new ListObjectsV2Command({ Bucket: ctx.bucket, Prefix: folder, Delimiter: '/', MaxKeys: pageSize, ContinuationToken: token })),
  );
  return {
    files: page.Contents ?? [],
    folders: (page.CommonPrefixes ?? []).map((p) => p.Prefix ?? ''),
    next: page.IsTruncated ? page.NextContinuationToken : undefined,
  };
}

/**
 * A page's entries in S3's order (UTF-8 bytes of the key: a folder `a/` sorts after a file `a-b`), merging the two
 * sorted lists S3 returns. The folder's own marker and names no client could address are left out.
 */
function entriesOf(ctx: S3Context, folder: string, page: FolderPage): FileStat[] {
  const out: FileStat[] = [];
  let f = 0;
  let d = 0;
  while (f < page.files.length || d < page.folders.length) {
    const file = page.files[f];
    const sub = page.folders[d];
    if (sub === undefined || (file !== undefined && utf8Before(file.Key ?? '', sub))) {
      f += 1;
      const key = file.Key ?? '';
      const name = ctx.keys.nameIn(folder, key);
      if (name !== undefined && !key.endsWith('/')) out.push(fileStat(name, key, file.Size ?? 0, file.LastModified));
    } else {
      d += 1;
      const name = ctx.keys.nameIn(folder, sub);
      if (name !== undefined) out.push(dirStat(name, sub));
    }
  }
  return out;
}

/** S3's key order: UTF-8 bytes (JavaScript's `<` compares UTF-16 units, which differs past U+D7FF). */
function utf8Before(a: string, b: string): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) < 0;
}

/**
 * Storage.listEntries over S3: the folder is read page by page (ListObjectsV2, delimiter '/'). The first page is kept;
 * when there are more, the rest are read once only to count them (so 'too-many-entries' and 'not-found' fail before
 * the reply starts, as the contract wants) and read again while the batches are consumed: never more than one page of
 * keys in memory, at the price of listing a folder of more than one page twice.
 */
export async function listFolder(ctx: S3Context, at: Location, pageSize: number, maxEntries: number): Promise<AsyncIterable<FileStat[]>> {
  const first = await folderPage(ctx, at.folder, pageSize);
  const firstEntries = entriesOf(ctx, at.folder, first);
  if (first.files.length === 0 && first.folders.length === 0 && !at.isRoot) {
    // Nothing under the prefix, not even a marker: no folder. A file of that name is not one.
    throw storageError((await headObject(ctx, at.key)) ? 'not-a-directory' : 'not-found');
  }
  let count = firstEntries.length;
  for (let token = first.next; token !== undefined; ) {
    if (count > maxEntries) break;
    const page = await folderPage(ctx, at.folder, pageSize, token);
    count += entriesOf(ctx, at.folder, page).length;
    token = page.next;
  }
  if (count > maxEntries) throw limitError('too-many-entries', `directory has more than ${maxEntries} entries`);
  return (async function* batches() {
    yield firstEntries;
    for (let token = first.next; token !== undefined; ) {
      const page = await folderPage(ctx, at.folder, pageSize, token);
      yield entriesOf(ctx, at.folder, page);
      token = page.next;
    }
  })();
}

/**
 * Published files under the whole prefix and their bytes, read 1000 keys a page. Folder markers (`name/`) are not
 * files; interrupted uploads are not objects at all (they are multipart uploads), so they are not counted either.
 */
export async function usageOf(ctx: S3Context): Promise<StoredUsage> {
  const usage: StoredUsage = { bytes: 0, files: 0 };
  let token: string | undefined;
  do {
    const page = await send(ctx.client.send(new ListObjectsV2Command({ Bucket: ctx.bucket, Prefix: ctx.keys.prefix, ContinuationToken: token })));
    for (const o of page.Contents ?? []) {
      const key = o.Key ?? '';
      if (key.endsWith('/') || isPartialName(basenameOf(key))) continue;
      usage.files += 1;
      usage.bytes += o.Size ?? 0;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return usage;
}
