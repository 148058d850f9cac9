export * from './types';
export { toStorageError } from './errors';
export { statIfExists } from './lookup';
export { resolveVirtualPath, basenameOf, dirnameOf } from './virtualPath';
export { partialNameFor, isPartialName } from './partial';
export { createLocalStorage, type LocalStorageOptions } from './local';
