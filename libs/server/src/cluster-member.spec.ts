import { parseConfig } from '@nestcd/config';
import { EtcdError, Errors } from '@nestcd/errors';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterRaftMember, EtcdServer, openMember } from '.';

// Three members in this process, on loopback peer ports and real data dirs: the Raft messages travel over the
// peer transport, every member publishes its client URLs, and the WALs written under concurrent proposals from
// every member replay after a restart (a regression: entries stepped in while a Ready was being persisted used
// to reach storage without reaching the WAL, leaving a gap the restart refused).

const key = (k: string) => Buffer.from(k);

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });

describe('a 3-member cluster in one process', () => {
  let root: string;
  let servers: EtcdServer[] = [];
  let argvs: string[][] = [];

  const open = async (argv: string[]) => {
    const parsed = parseConfig(argv, {});
    if (parsed.kind !== 'run') throw new Error('config');
    const server = await openMember(parsed.config, {});
    servers.push(server);
    return server;
  };

  const waitFor = async (what: string, ok: () => boolean, timeoutMs = 10000) => {
    const deadline = Date.now() + timeoutMs;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'nestcd-cluster-spec-'));
    const ports = await Promise.all(Array.from({ length: 6 }, freePort));
    const peer = (i: number) => `http://127.0.0.1:${ports[2 * i]}`;
    const client = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
    const initialCluster = [0, 1, 2].map((i) => `m${i}=${peer(i)}`).join(',');
    argvs = [0, 1, 2].map((i) => [
      '--name', `m${i}`, '--data-dir', join(root, `m${i}`),
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
      '--listen-client-urls', client(i), '--advertise-client-urls', client(i),
      '--initial-cluster', initialCluster, '--heartbeat-interval', '20', '--election-timeout', '500',
    ]);
  });

  afterEach(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    servers = [];
    rmSync(root, { recursive: true, force: true });
  });

  it('elects one leader, publishes client URLs, replicates concurrent writes from every member, and replays them after a restart', async () => {
    const members = await Promise.all(argvs.map(open));
    expect(members.every((s) => s.proposer instanceof ClusterRaftMember)).toBe(true);
    await Promise.all(members.map((s) => s.start()));
    await waitFor('a leader', () => members.filter((s) => s.proposer.isLeader).length === 1 && members.every((s) => s.proposer.leader !== 0n));
    await waitFor('every publish', () => members.every((s) => s.state.members.every((m) => m.clientUrls.length === 1)));
    const leader = members.find((s) => s.proposer.isLeader)!;
    for (const s of members) {
      expect(s.status().leader).toBe(leader.memberId);
      expect(s.memberList().map((m) => m.clientUrls[0]).sort()).toEqual(members.map((x) => x.config.advertiseClientUrls[0]).sort());
    }

    // Concurrent writes through all three members: followers forward their proposals to the leader.
    // A proposal refused with "no leader" never entered the log (an election can start if a loaded machine stalls
    // the shared event loop past the election timeout), so it is retried, as a client would; nothing else is.
    const put = async (s: EtcdServer, k: string, v: string): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        try {
          await s.put({ key: key(k), value: key(v), lease: 0n });
          return;
        } catch (err) {
          if (!(err instanceof EtcdError && err.message === Errors.noLeader().message) || attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    await Promise.all(members.flatMap((s, i) => Array.from({ length: 60 }, (_, j) => put(s, `k${i}/${j}`, `v${j}`))));
    const revision = leader.store.currentRevision;
    expect(revision).toBe(181);
    for (const s of members) {
      expect((await s.range({ key: key('k'), rangeEnd: key('l'), countOnly: true })).count).toBe(180);
      expect(s.store.currentRevision).toBe(revision);
    }
    // Linearizable reads on every member at once, in waves: every member's ReadIndex rounds reach the leader
    // together, so their contexts must not collide (a duplicate used to be dropped, and its reads hung forever).
    for (let wave = 0; wave < 5; wave++) {
      const reads = members.flatMap((s) => Array.from({ length: 50 }, (_, j) => s.range({ key: key(`k${wave % 3}/${j}`) })));
      const all = Promise.all(reads);
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`wave ${wave}: reads hung`)), 5000).unref());
      const results = (await Promise.race([all, timeout])) as Awaited<typeof all>;
      expect(results.every((r) => r.kvs.length === 1)).toBe(true);
    }
    const hashes = members.map((s) => s.hashKV(revision).hash);
    expect(new Set(hashes).size).toBe(1);

    // Restart every member from its data dir: each WAL replays without a gap, to the same keyspace.
    await Promise.all(servers.map((s) => s.stop()));
    servers = [];
    const again = await Promise.all(argvs.map(open));
    await Promise.all(again.map((s) => s.start()));
    for (const s of again) {
      expect(s.store.currentRevision).toBe(revision);
      expect(s.hashKV(revision).hash).toBe(hashes[0]);
    }
    await waitFor('a leader after the restart', () => again.filter((s) => s.proposer.isLeader).length === 1);
    const res = await again[2].put({ key: key('after'), value: key('restart'), lease: 0n });
    expect(res.revision).toBe(revision + 1);
  }, 30000);
});
