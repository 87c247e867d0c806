/**
 * The stores the conformance suite runs against. nestcd and etcd: a 3-member cluster of real processes on
 * loopback; redis: a real redis-server on a free loopback port; embedded: the in-process engine (workers then run
 * in this process, since an in-memory store cannot be shared with other processes).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvClient } from '@nestcd/client';
import { freePort, ServerHandle, ServerKind, startServer } from '../../../test/support/processes';
import { StoreOptions } from './recipes-api';
import { openStore } from '../../src/store';

export type BackendName = 'embedded' | 'nestcd' | 'etcd' | 'redis';

export interface TestBackend {
  name: BackendName;
  /** a new client of the one shared store. */
  connect(): Promise<KvClient>;
  /** how a worker process reaches the store; undefined: workers run in this process. */
  childStore?: StoreOptions;
  /** a description for the report (e.g. "3-member nestcd cluster"). */
  description: string;
  stop(): Promise<void>;
}

/** A view of a shared client whose close() leaves the shared one open. */
function shared(inner: KvClient): KvClient {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'close') return async () => undefined;
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function startCluster(kind: ServerKind, size: number): Promise<ServerHandle[]> {
  const root = mkdtempSync(join(tmpdir(), `recipes-${kind}-`));
  const members: Array<{ name: string; clientPort: number; peerPort: number }> = [];
  for (let i = 1; i <= size; i++) members.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort() });
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const started = await Promise.allSettled(
    members.map((m) =>
      startServer(kind, {
        ...m,
        dataDir: join(root, m.name),
        extraArgs: ['--initial-cluster', initialCluster, '--initial-cluster-token', `recipes-${kind}`],
        readyTimeoutMs: 60_000,
      }),
    ),
  );
  const handles = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(handles.map((h) => h.stop(1000)));
    rmSync(root, { recursive: true, force: true });
    throw failed.reason;
  }
  const stop = handles[0].stop.bind(handles[0]);
  handles[0].stop = async (g) => {
    await stop(g);
    rmSync(root, { recursive: true, force: true });
  };
  return handles;
}

async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'recipes-redis-'));
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (b: Buffer) => (log += b.toString()));
  const deadline = Date.now() + 15_000;
  while (!/Ready to accept connections/.test(log)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startBackend(name: BackendName): Promise<TestBackend> {
  switch (name) {
    case 'embedded': {
      const { client } = await openStore({ embedded: {} });
      return { name, description: 'embedded engine, in memory (workers in-process)', connect: async () => shared(client), stop: () => client.close() };
    }
    case 'nestcd':
    case 'etcd': {
      const size = Number(process.env.NESTCD_TEST_CLUSTER_SIZE ?? 3);
      const members = await startCluster(name, size);
      const endpoints = members.map((m) => m.endpoint);
      const clients: KvClient[] = [];
      return {
        name,
        description: `${size}-member ${name} cluster`,
        childStore: { endpoints },
        connect: async () => {
          const { client } = await openStore({ endpoints });
          clients.push(client);
          return client;
        },
        async stop() {
          await Promise.allSettled(clients.map((c) => c.close()));
          for (const m of [...members].reverse()) await m.stop(2000);
        },
      };
    }
    case 'redis': {
      const redis = await startRedis();
      const clients: KvClient[] = [];
      return {
        name,
        description: 'redis-server on a loopback port',
        childStore: { redis: redis.url },
        connect: async () => {
          const { client } = await openStore({ redis: redis.url });
          clients.push(client);
          return client;
        },
        async stop() {
          await Promise.allSettled(clients.map((c) => c.close()));
          await redis.stop();
        },
      };
    }
  }
}
