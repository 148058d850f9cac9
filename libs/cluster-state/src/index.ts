export * from './types';
export { createMemoryClusterState } from './memory';
export { createRedisClusterState, type RedisClusterStateOptions } from './redis';
