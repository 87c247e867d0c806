import { RemoteClient } from '@nestcd/client';
import { startServer, type ServerKind } from '../support/processes';
import type { ContractHarness } from './contract';
import { TcpProxy } from './tcp-proxy';

/** A single-member etcd or nestcd process and RemoteClients on it (cuttable ones through a TCP proxy). */
export async function remoteHarness(kind: ServerKind): Promise<ContractHarness> {
  const server = await startServer(kind);
  const proxies: TcpProxy[] = [];
  return {
    historicReads: true,
    client: async () => new RemoteClient({ endpoints: [server.endpoint], dialTimeoutMs: 2000 }),
    cuttableClient: async () => {
      const proxy = await new TcpProxy(server.clientPort).start();
      proxies.push(proxy);
      const client = new RemoteClient({ endpoints: [proxy.endpoint], dialTimeoutMs: 1000 });
      return { client, cut: async () => proxy.block(), restore: async () => proxy.unblock() };
    },
    stop: async () => {
      for (const p of proxies) await p.stop();
      await server.stop();
    },
  };
}
