export * from './types';
export { utcDay } from './windows';
export { createMemoryClusterState } from './memory';
export { createRedisClusterState, createRedisConnection, type RedisClusterStateOptions } from './redis';
export { connectRedis, parseRedisUrl, type RedisTarget } from './redisTarget';
