import { parseConfig } from '@nestcd/config';
import type { Event } from '@nestcd/mvcc';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterRaftMember, EtcdServer, openMember } from '.';

// A follower cut off (transport fault switch) while the leader writes past a snapshot and compacts its log
// catches up through a snapshot streamed over the peer transport. Installing it replaces the follower's
// keyspace object: its watchers must carry on (every event once, in order), its leases must still be there,
// and its keyspace must hash like the leader's.

const key = (k: string) => Buffer.from(k);
const SNAPSHOT_COUNT = 500;

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });

/** What the running cluster looks like, for a timeout's message: who leads, how far each has applied, its last log lines. */
let describeCluster: (() => string) | undefined;

const waitFor = async (what: string, ok: () => boolean, timeoutMs = 20000) => {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${describeCluster?.() ?? ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('a lagging follower installs a snapshot from the leader', () => {
  let root: string;
  let servers: EtcdServer[] = [];

  afterEach(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    servers = [];
    describeCluster = undefined;
    rmSync(root, { recursive: true, force: true });
  });

  /** Three members on loopback (snapshot every 500 entries), started, with a leader; `cut` isolates one follower. */
  const startCluster = async () => {
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
        '--snapshot-count', String(SNAPSHOT_COUNT),
      ], {});
      if (parsed.kind !== 'run') throw new Error('config');
      servers.push(await openMember(parsed.config, { log: (m) => logs[i].push(m) }));
    }
    describeCluster = () =>
      servers
        .map((s, i) => `m${i}: ${s.proposer.isLeader ? 'leader' : 'follower'}, applied ${s.proposer.appliedIndex}\n  ${logs[i].slice(-8).join('\n  ')}`)
        .join('\n');
    await Promise.all(servers.map((s) => s.start()));
    await waitFor('a leader', () => servers.filter((s) => s.proposer.isLeader).length === 1 && servers.every((s) => s.proposer.leader !== 0n));
    const leader = servers.find((s) => s.proposer.isLeader)!;
    const follower = servers.find((s) => s !== leader)!;
    const other = servers.find((s) => s !== leader && s !== follower)!;
    const cut = (on: boolean) => {
      const f = (s: EtcdServer) => (s.proposer as ClusterRaftMember).faults;
      f(follower).partitioned = on ? new Set([leader.memberId, other.memberId]) : undefined;
      f(leader).partitioned = on ? new Set([follower.memberId]) : undefined;
      f(other).partitioned = on ? new Set([follower.memberId]) : undefined;
    };
    /** writes n keys `prefix` + number, 400 at a time */
    const writeMany = async (prefix: string, n: number) => {
      for (let base = 0; base < n; base += 400) {
        const count = Math.min(400, n - base);
        await Promise.all(Array.from({ length: count }, (_, j) => leader.put({ key: key(`${prefix}${String(base + j).padStart(5, '0')}`), value: key('v'), lease: 0n })));
      }
    };
    const leaderLog = () => (leader.proposer as ClusterRaftMember).node.raft.raftLog;
    const compacted = () => waitFor('the leader to compact its log', () => leaderLog().firstIndex() > follower.proposer.appliedIndex + 1);
    // A snapshot is written in the background; it is due while the applied index is a snapshot count or more past
    // the last saved one. Only then is no snapshot file still on its way to the disk.
    const snapshotsSaved = () =>
      waitFor('the leader to save its last snapshot', () => leader.proposer.appliedIndex - leaderLog().storage.snapshot().metadata.index < SNAPSHOT_COUNT);
    return { logs, leader, follower, fi: servers.indexOf(follower), li: servers.indexOf(leader), cut, writeMany, compacted, snapshotsSaved };
  };

  it('keeps its watchers and leases, and ends with the same keyspace', async () => {
    const { logs, leader, follower, fi, li, cut, writeMany, compacted } = await startCluster();

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
    cut(true);
    const writes = 5600;
    await writeMany('w/', writes);
    await leader.deleteRange({ key: key('w/00000') });
    await compacted();
    cut(false);

    await waitFor('the follower to catch up', () => follower.proposer.appliedIndex >= leader.proposer.appliedIndex, 30000);
    expect(logs[fi].some((l) => l.includes('installed the snapshot'))).toBe(true);
    expect(follower.store).not.toBe(storeBefore);
    // The leader read the snapshot it sent back from its file; neither member keeps snapshot data in memory.
    const sent = logs[li].map((l) => /sent snapshot \[index (\d+), (\d+) bytes\]/.exec(l)).find((m) => m);
    expect(Number(sent?.[2])).toBeGreaterThan(writes * 10);
    for (const s of [leader, follower]) {
      const kept = (s.proposer as ClusterRaftMember).node.raft.raftLog.storage.snapshot();
      expect(kept.metadata.index).toBeGreaterThanOrEqual(Number(sent?.[1]));
      expect(kept.data.byteLength).toBe(0);
    }

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

  it('a snapshot file that cannot be read back is not sent: the leader goes on and sends its next snapshot', async () => {
    const { logs, leader, follower, fi, li, cut, writeMany, compacted, snapshotsSaved } = await startCluster();
    cut(true);
    await writeMany('a/', 5600);
    await compacted();
    await snapshotsSaved(); // else a snapshot saved after the purge below would be sent instead
    // Lose the leader's snapshot files (as a --max-snapshots purge racing the send might): the send must fail cleanly.
    const snapDir = join(root, `m${li}`, 'member', 'snap');
    for (const f of readdirSync(snapDir)) rmSync(join(snapDir, f));
    cut(false);
    await waitFor('a failed read', () => logs[li].some((l) => l.includes('could not read the snapshot')));
    expect(follower.proposer.appliedIndex).toBeLessThan(leader.proposer.appliedIndex);
    // The leader still serves, and once it has saved a newer snapshot the follower gets that one.
    await writeMany('b/', 1200);
    await waitFor('the follower to catch up', () => follower.proposer.appliedIndex >= leader.proposer.appliedIndex, 30000);
    expect(logs[fi].some((l) => l.includes('installed the snapshot'))).toBe(true);
    const revision = leader.store.currentRevision;
    expect(follower.hashKV(revision).hash).toBe(leader.hashKV(revision).hash);
  }, 90000);
});
