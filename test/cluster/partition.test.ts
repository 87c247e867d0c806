/**
 * Partition and failover of a 3-member cluster (members in this process, Raft over the real peer transport on
 * loopback, the transport's fault switch cutting links), while several clients run get / put / compare-and-swap
 * on a few keys. The minority side's old leader steps down and refuses linearizable reads instead of answering
 * with stale data; the majority keeps taking writes; the whole recorded history is linearizable.
 */
import { parseConfig } from '@nestcd/config';
import { CompareResult, CompareTarget } from '@nestcd/mvcc';
import { ClusterRaftMember, EtcdServer, openMember } from '@nestcd/server';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support';
import { assertLinearizable, History, kv, KvDriver, KvInput, kvModel, KvOutput, recordKvOp } from '../support/linearizability';

jest.setTimeout(120000);

const b = (s: string) => Buffer.from(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const waitFor = async (what: string, ok: () => boolean, timeoutMs = 20000) => {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

/** A history client's view of one in-process member. */
function driverFor(server: EtcdServer): KvDriver {
  return {
    get: async (key) => {
      const r = await server.range({ key: b(key) });
      return r.kvs[0] ? r.kvs[0].value.toString() : null;
    },
    put: async (key, value) => {
      await server.put({ key: b(key), value: b(value), lease: 0n });
    },
    cas: async (key, expected, value) => {
      const compare = expected === null
        ? { result: CompareResult.EQUAL, target: CompareTarget.VERSION, key: b(key), version: 0 }
        : { result: CompareResult.EQUAL, target: CompareTarget.VALUE, key: b(key), value: b(expected) };
      return (await server.txn({ compare: [compare], success: [{ requestPut: { key: b(key), value: b(value), lease: 0n } }], failure: [] })).succeeded;
    },
  };
}

describe('partition and failover of a 3-member cluster, checked for linearizability', () => {
  let root: string;
  let servers: EtcdServer[] = [];

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    rmSync(root, { recursive: true, force: true });
  });

  it('the minority leader steps down and refuses linearizable reads; the majority goes on; the history is linearizable', async () => {
    root = mkdtempSync(join(tmpdir(), 'nestcd-partition-'));
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const peer = (i: number) => `http://127.0.0.1:${ports[2 * i]}`;
    const client = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
    const initialCluster = [0, 1, 2].map((i) => `m${i}=${peer(i)}`).join(',');
    for (const i of [0, 1, 2]) {
      const parsed = parseConfig([
        '--name', `m${i}`, '--data-dir', join(root, `m${i}`),
        '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
        '--listen-client-urls', client(i), '--advertise-client-urls', client(i),
        '--initial-cluster', initialCluster, '--heartbeat-interval', '50', '--election-timeout', '500',
      ], {});
      if (parsed.kind !== 'run') throw new Error('config');
      servers.push(await openMember(parsed.config, {}));
    }
    await Promise.all(servers.map((s) => s.start()));
    const leaderNow = () => servers.find((s) => s.proposer.isLeader && !stopped.has(s));
    const stopped = new Set<EtcdServer>();
    await waitFor('a leader', () => !!leaderNow() && servers.every((s) => s.proposer.leader !== 0n));

    const history = new History<KvInput, KvOutput>();
    const keys = ['a', 'b', 'c'];
    let running = true;
    let seq = 0;
    const okDuring = { partition: 0 };
    let phase: 'before' | 'partition' | 'after' = 'before';
    // Five clients; client i talks to member i % 3 and moves on when its member is stopped.
    const clients = Array.from({ length: 5 }, async (_, c) => {
      let rand = c * 7919 + 1;
      const next = () => (rand = (rand * 1103515245 + 12345) & 0x7fffffff);
      for (let n = 0; running && n < 5000; n++) {
        const member = servers.filter((s) => !stopped.has(s))[c % (3 - stopped.size)];
        const key = keys[next() % keys.length];
        const roll = next() % 10;
        const value = `c${c}-${seq++}`;
        const op = roll < 4 ? kv.get(key) : roll < 7 ? kv.put(key, value) : kv.cas(key, next() % 2 ? null : `c${next() % 5}-${next() % seq}`, value);
        const ok = await recordKvOp(history, c, driverFor(member), op);
        if (ok && phase === 'partition' && op.type !== 'get') okDuring.partition++;
        await sleep(ok ? 2 : 50);
      }
    });

    try {
      await sleep(800);
      // Partition the leader away from the other two.
      const old = leaderNow()!;
      const majority = servers.filter((s) => s !== old);
      const faults = (s: EtcdServer) => (s.proposer as ClusterRaftMember).faults;
      faults(old).partitioned = new Set(majority.map((s) => s.memberId));
      for (const s of majority) faults(s).partitioned = new Set([old.memberId]);
      phase = 'partition';

      // The majority elects a leader of its own; the old one notices it lost its quorum and steps down.
      await waitFor('a majority leader', () => majority.some((s) => s.proposer.isLeader));
      await waitFor('the old leader to step down', () => !old.proposer.isLeader);
      // A write through the majority, then a linearizable read on the minority: refused, never stale.
      await majority[0].put({ key: b('fresh'), value: b('new'), lease: 0n });
      await expect(old.range({ key: b('fresh') })).rejects.toThrow(/etcdserver: (no leader|request timed out|leader changed)/);
      // A serializable read there is allowed to be stale, and is.
      expect((await old.range({ key: b('fresh'), serializable: true })).kvs).toHaveLength(0);
      await waitFor('writes through the majority during the partition', () => okDuring.partition >= 10);

      // Heal: the old leader rejoins as a follower and catches up.
      faults(old).partitioned = undefined;
      for (const s of majority) faults(s).partitioned = undefined;
      phase = 'after';
      await waitFor('the old leader to catch up', () => old.store.currentRevision === leaderNow()?.store.currentRevision, 20000);
      expect((await old.range({ key: b('fresh') })).kvs[0].value.toString()).toBe('new');
      await sleep(500);

      // Failover: the leader stops abruptly; clients move to the survivors.
      const victim = leaderNow()!;
      stopped.add(victim);
      await victim.stop();
      await waitFor('a new leader', () => !!leaderNow(), 20000);
      await sleep(800);
    } finally {
      running = false;
      await Promise.all(clients);
    }

    const ops = history.operations();
    const okOps = ops.filter((o) => o.status === 'ok').length;
    expect(okOps).toBeGreaterThan(100);
    assertLinearizable(history, kvModel, { timeoutMs: 60000 });
    // eslint-disable-next-line no-console
    console.log(`partition + failover history: ${ops.length} operations (${okOps} ok, ${ops.filter((o) => o.status === 'info').length} unknown), linearizable`);
  });
});
