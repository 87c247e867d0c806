import { createEmbeddedClient, createRedisClient, createRemoteClient } from '@nestcd/client';
import type { KvClient } from '@nestcd/client';
import type { StoreOptions } from './options';

/**
 * The client for `store`, and whether the module owns it (closes it on shutdown). @nestcd/client loads the embedded
 * engine and ioredis only when they are asked for.
 */
export async function openStore(store: StoreOptions): Promise<{ client: KvClient; owned: boolean }> {
  if ('client' in store) return { client: store.client, owned: false };
  if ('factory' in store) return { client: await store.factory(), owned: true };
  if ('endpoints' in store) {
    const { endpoints, dialTimeoutMs, credentials, tls } = store;
    return { client: createRemoteClient({ endpoints, dialTimeoutMs, credentials, tls }), owned: true };
  }
  if ('redis' in store) return { client: await createRedisClient(store.redis), owned: true };
  return { client: await createEmbeddedClient(store.embedded), owned: true };
}
