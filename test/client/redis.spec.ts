import { RedisClient } from '@nestcd/client/redis';
import { kvClientContract } from './contract';
import { startRedisServer } from './redis-server';
import { TcpProxy } from './tcp-proxy';

kvClientContract(
  'redis (real redis-server)',
  async () => {
    const server = await startRedisServer();
    const proxies: TcpProxy[] = [];
    return {
      historicReads: false,
      client: async () => RedisClient.open(server.url),
      cuttableClient: async () => {
        const proxy = await new TcpProxy(server.port).start();
        proxies.push(proxy);
        const client = await RedisClient.open({ port: proxy.port, redis: { retryStrategy: () => 100 } });
        return { client, cut: async () => proxy.block(), restore: async () => proxy.unblock() };
      },
      stop: async () => {
        for (const p of proxies) await p.stop();
        await server.stop();
      },
    };
  },
  { cuttable: true },
);
