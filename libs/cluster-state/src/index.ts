export * from './types';
export { createMemoryClusterState } from './memory';
