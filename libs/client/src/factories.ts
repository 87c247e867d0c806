// One way to open each backend. The embedded and Redis backends are loaded only when asked for (require at call
// time), so importing '@nestcd/client' never loads server code or ioredis.
import type { KvClient } from './types';
import { RemoteClient } from './remote/remote-client';
import type { RemoteClientOptions } from './remote/connection';
import type { EmbeddedClientOptions } from './embedded/embedded-client';
import type { RedisClientOptions } from './redis/redis-client';

export type { EmbeddedClientOptions } from './embedded/embedded-client';
export type { RedisClientOptions } from './redis/redis-client';

export function createRemoteClient(options: RemoteClientOptions): RemoteClient {
  return new RemoteClient(options);
}

/** The engine in-process (in memory unless dataDir is given); also `import { EmbeddedClient } from '@nestcd/client/embedded'`. */
export async function createEmbeddedClient(options: EmbeddedClientOptions = {}): Promise<KvClient> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { EmbeddedClient } = require('./embedded') as typeof import('./embedded');
  return EmbeddedClient.open(options);
}

/** Redis through ioredis (a URL or options); also `import { RedisClient } from '@nestcd/client/redis'`. */
export async function createRedisClient(options: RedisClientOptions | string = {}): Promise<KvClient> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { RedisClient } = require('./redis') as typeof import('./redis');
  return RedisClient.open(options);
}

export type ClientBackendOptions =
  | ({ backend: 'remote' } & RemoteClientOptions)
  | ({ backend: 'embedded' } & EmbeddedClientOptions)
  | ({ backend: 'redis' } & RedisClientOptions);

/** Any backend by name. */
export async function createClient(options: ClientBackendOptions): Promise<KvClient> {
  switch (options.backend) {
    case 'remote':
      return createRemoteClient(options);
    case 'embedded':
      return createEmbeddedClient(options);
    case 'redis':
      return createRedisClient(options);
  }
}
