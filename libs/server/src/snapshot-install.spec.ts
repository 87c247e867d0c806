import { parseConfig } from '@nestcd/config';
import type { Event } from '@nestcd/mvcc';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterRaftMember, EtcdServer, openMember } from '.';

// A follower cut off (transport fault switch) while the leader writes past a snapshot and compacts its log
// catches up through a snapshot streamed over the peer transport. Installing it replaces the follower's
// keyspace object: its watchers must carry on (every event once, in order), its leases must still be there,
// and its keyspace must hash like the leader's.

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

const waitFor = async (what: string, ok: () => boolean, timeoutMs = 20000) => {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('a lagging follower installs a snapshot from the leader', () => {
  let root: string;
  let servers: EtcdServer[] = [];

  afterEach(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    servers = [];
    rmSync(root, { recursive: true, force: true });
  });

  it('keeps its watchers and leases, and ends with the same keyspace', async () => {
    root = mkdtempSync(join(tmpdir(), 'nestcd-snapshot-install-'));
    const ports = await Promise.all(Array.from({ length: 6 }, freePort));
    const peer = (i: number) => `http://127.0.0.1:${ports[2 * i]}`;
    const client = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
    const initialCluster = [0, 1, 2].map((i) => `m${i}=${peer(i)}`).join(',');
    const logs: string[][] = [[], [], []];
    for (const i of [0, 1, 2]) {
      const parsed = parseConfig([
        '--name', `m${i}`, '--data-dir', join(root, `m${i}`),
        '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
        '--listen-client-urls', client(i), '--advertise-client-urls', client(i),
        '--initial-cluster', initialCluster, '--heartbeat-interval', '20', '--election-timeout', '500',
        '--snapshot-count', '500',
      ], {});
      if (parsed.kind !== 'run') throw new Error('config');
      servers.push(await openMember(parsed.config, { log: (m) => logs[i].push(m) }));
    }
    await Promise.all(servers.map((s) => s.start()));
    await waitFor('a leader', () => servers.filter((s) => s.proposer.isLeader).length === 1 && servers.every((s) => s.proposer.leader !== 0n));
    const leader = servers.find((s) => s.proposer.isLeader)!;
    const follower = servers.find((s) => s !== leader)!;
    const fi = servers.indexOf(follower);
    const other = servers.find((s) => s !== leader && s !== follower)!;

    const lease = await leader.leaseGrant(600, 0n);
    await leader.put({ key: key('leased'), value: key('x'), lease: lease.id });
    const seen: Event[] = [];
    const startRevision = follower.store.currentRevision + 1;
    follower.store.watch({ key: key('w/'), rangeEnd: key('w0'), startRevision }, (events) => {
      seen.push(...events);
      return true;
    }, () => undefined);
    const storeBefore = follower.store;

    // Cut the follower off, then write well past a snapshot and the entries kept behind it for slow followers.
    const cut = (on: boolean) => {
      const f = (s: EtcdServer) => (s.proposer as ClusterRaftMember).faults;
      f(follower).partitioned = on ? new Set([leader.memberId, other.memberId]) : undefined;
      f(leader).partitioned = on ? new Set([follower.memberId]) : undefined;
      f(other).partitioned = on ? new Set([follower.memberId]) : undefined;
    };
    cut(true);
    const writes = 5600;
    for (let base = 0; base < writes; base += 400) {
      await Promise.all(Array.from({ length: 400 }, (_, j) => leader.put({ key: key(`w/${String(base + j).padStart(5, '0')}`), value: key('v'), lease: 0n })));
    }
    await leader.deleteRange({ key: key('w/00000') });
    await waitFor('the leader to compact its log', () => (leader.proposer as ClusterRaftMember).node.raft.raftLog.firstIndex() > follower.proposer.appliedIndex + 1);
    cut(false);

    await waitFor('the follower to catch up', () => follower.proposer.appliedIndex >= leader.proposer.appliedIndex, 30000);
    expect(logs[fi].some((l) => l.includes('installed the snapshot'))).toBe(true);
    expect(follower.store).not.toBe(storeBefore);

    // The watcher saw every write once, in revision order, and the delete after them.
    await waitFor('every watch event', () => seen.length === writes + 1);
    expect(seen.slice(0, writes).map((e) => e.kv.key.toString())).toEqual(Array.from({ length: writes }, (_, i) => `w/${String(i).padStart(5, '0')}`));
    expect(seen[writes].kv.key.toString()).toBe('w/00000');
    const revs = seen.map((e) => e.kv.modRevision);
    expect(revs).toEqual([...revs].sort((a, b) => a - b));

    expect(follower.store.hasLease(lease.id)).toBe(true);
    expect((await follower.range({ key: key('leased'), serializable: true })).kvs[0]?.value.toString()).toBe('x');
    const revision = leader.store.currentRevision;
    expect(follower.store.currentRevision).toBe(revision);
    expect(follower.hashKV(revision).hash).toBe(leader.hashKV(revision).hash);
    // And it keeps replicating after the snapshot.
    await leader.put({ key: key('w/after'), value: key('snap'), lease: 0n });
    await waitFor('the write after the snapshot', () => seen.length === writes + 2);
  }, 90000);
});
