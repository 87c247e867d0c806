export { RedisClient, createRedisClient } from './redis-client';
export type { RedisClientOptions } from './redis-client';
