export * from './types';
export { toStorageError } from './errors';
export { statIfExists } from './lookup';
export { resolveVirtualPath, basenameOf, dirnameOf } from './virtualPath';
export { partialNameFor, isPartialName } from './partial';
export { createLocalStorage, type LocalStorageOptions } from './local';
export { createS3Storage, type S3StorageOptions } from './s3/s3Storage';
export { checkBucket, createS3Client, type S3ClientSettings } from './s3/client';
export { abortAbandonedUploads } from './s3/abandoned';
