export * from './types';
export { createMemoryClusterState } from './memory';
export { createRedisClusterState, createRedisConnection, type RedisClusterStateOptions } from './redis';
