import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';

/**
 * Aborts the unfinished multipart uploads under `prefix` started more than `olderThanMs` ago: uploads nobody came back
 * to resume, whose parts the store would otherwise keep (and bill) for ever. Safe on every replica at once (an abort of
 * an upload already gone is a no-op). Resolves how many it aborted. A bucket lifecycle rule
 * (AbortIncompleteMultipartUpload) is the backstop for stores and times this does not reach.
 */
export async function abortAbandonedUploads(client: S3Client, bucket: string, prefix: string, olderThanMs: number, now = Date.now()): Promise<number> {
  let aborted = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix || undefined, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
    for (const upload of listed.Uploads ?? []) {
      if (!upload.Key || !upload.UploadId || !upload.Initiated || now - upload.Initiated.getTime() < olderThanMs) continue;
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId })).catch(() => undefined);
      aborted++;
    }
    if (!listed.IsTruncated) break;
    keyMarker = listed.NextKeyMarker;
    uploadIdMarker = listed.NextUploadIdMarker;
  }
  return aborted;
}
