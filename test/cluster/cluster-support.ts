/**
 * A static nestcd cluster of real processes on loopback, for the cluster tests.
 *
 *   const c = await startCluster(3);          // n1..n3, free ports, temp data dirs, one shared --initial-cluster
 *   c.members[0].endpoint                     // http://127.0.0.1:<client port>
 *   c.kill(m) / await c.restart(m)            // SIGKILL; start again on the same data dir and ports
 *   await c.stop()                            // stops every member and removes the data dirs
 *
 * Builds on test/support/processes.ts: its single-member flags come first and the cluster flags after them
 * (the last --initial-cluster wins, as with etcd's flag parser).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdctl, EtcdctlResult, freePort, ServerHandle, startNestcd } from '../support';

export interface ClusterMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  endpoint: string;
  peerUrl: string;
  handle?: ServerHandle;
}

export interface Cluster {
  members: ClusterMember[];
  endpoints: string[];
  initialCluster: string;
  start(m: ClusterMember): Promise<void>;
  /** SIGKILL, no grace: the member's data dir stays as the crash left it. */
  kill(m: ClusterMember): Promise<void>;
  restart(m: ClusterMember): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(size = 3, token = 'nestcd-cluster-test'): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), 'nestcd-cluster-'));
  const members: ClusterMember[] = [];
  for (let i = 1; i <= size; i++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    members.push({
      name: `n${i}`,
      clientPort,
      peerPort,
      dataDir: join(root, `n${i}`),
      endpoint: `http://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const start = async (m: ClusterMember) => {
    m.handle = await startNestcd({
      name: m.name,
      dataDir: m.dataDir,
      clientPort: m.clientPort,
      peerPort: m.peerPort,
      extraArgs: ['--initial-cluster', initialCluster, '--initial-cluster-token', token],
      readyTimeoutMs: 30000,
    });
  };
  const cluster: Cluster = {
    members,
    endpoints: members.map((m) => m.endpoint),
    initialCluster,
    start,
    async kill(m) {
      const h = m.handle;
      if (!h) return;
      m.handle = undefined;
      if (h.isRunning()) {
        const exited = new Promise<void>((r) => h.process.once('exit', () => r()));
        h.process.kill('SIGKILL');
        await exited;
      }
      await h.stop(); // bookkeeping only: the process is gone, the data dir is ours and stays
    },
    restart: (m) => start(m),
    async stop() {
      await Promise.all(members.map(async (m) => {
        const h = m.handle;
        m.handle = undefined;
        await h?.stop(5000);
      }));
      if (!process.env.COMPAT_KEEP_DATA) rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    // Every founding member must be up before any of them can elect a leader and report healthy.
    await Promise.all(members.map(start));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** etcdctl that throws with its output unless it exits 0. */
export async function ctl(endpoints: string | string[], args: string[], timeoutMs = 10000): Promise<string> {
  const r: EtcdctlResult = await etcdctl(endpoints, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} at ${String(endpoints)} exited ${r.code ?? r.signal}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The body rows of an etcdctl `-w table` output, as trimmed cells. */
export function tableRows(out: string): string[][] {
  const lines = out.split('\n').filter((l) => l.startsWith('|'));
  return lines.slice(1).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
}

/** Retries `fn` until it stops throwing or `timeoutMs` passes (then rethrows its last error). */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 10000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

export interface EndpointStatus {
  endpoint: string;
  id: string;
  isLeader: boolean;
  raftTerm: number;
  raftIndex: number;
}

/** `etcdctl endpoint status -w table` rows (ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, IS LEARNER, RAFT TERM, ...). */
export async function endpointStatus(endpoints: string | string[], cluster = false): Promise<EndpointStatus[]> {
  const out = await ctl(endpoints, ['endpoint', 'status', '-w', 'table', '--command-timeout=2s', ...(cluster ? ['--cluster'] : [])]);
  return tableRows(out).map((r) => ({ endpoint: r[0], id: r[1], isLeader: r[4] === 'true', raftTerm: Number(r[6]), raftIndex: Number(r[7]) }));
}
