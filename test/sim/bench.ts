/**
 * Throughput of the raft core alone: a 3-node cluster in memory (no disk, no network latency), proposals in
 * batches on the leader, every Ready handled synchronously. Counts entries committed and applied on all nodes.
 */
import { MemoryStorage, NodeId, RawNode, StateType, seededRandom } from '@nestcd/raft';

export function runBench(total: number, batch: number): number {
  const ids: NodeId[] = [1n, 2n, 3n];
  const nodes = new Map<NodeId, { raw: RawNode; storage: MemoryStorage; applied: number }>();
  for (const id of ids) {
    const storage = new MemoryStorage();
    storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: ids, learners: [] } } });
    const raw = new RawNode({ id, electionTick: 10, heartbeatTick: 1, storage, applied: 1, rand: seededRandom(Number(id)), maxInflightMsgs: 256, maxSizePerMsg: 1 << 20 });
    nodes.set(id, { raw, storage, applied: 1 });
  }
  const leader = nodes.get(1n)!;
  leader.raw.campaign();
  const pump = (): void => {
    for (let busy = true; busy; ) {
      busy = false;
      for (const n of nodes.values()) {
        if (!n.raw.hasReady()) continue;
        busy = true;
        const rd = n.raw.ready();
        if (rd.entries.length) n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        for (const m of rd.messages) nodes.get(m.to)!.raw.step(m);
        if (rd.committedEntries.length) n.applied = rd.committedEntries[rd.committedEntries.length - 1].index;
        n.raw.advance(rd);
      }
    }
  };
  pump();
  if (leader.raw.raft.state !== StateType.Leader) throw new Error('bench: no leader');
  const payload = new Uint8Array(64);
  const datas: Uint8Array[] = new Array(batch).fill(payload);
  const start = leader.applied;
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += batch) {
    leader.raw.proposeBatch(datas);
    pump();
  }
  const ns = Number(process.hrtime.bigint() - t0);
  for (const n of nodes.values()) if (n.applied - start < total) throw new Error('bench: not everything applied');
  const rate = total / (ns / 1e9);
  console.log(`raft bench: ${total} entries (64 B, batches of ${batch}) committed on 3 in-memory nodes in ${(ns / 1e6).toFixed(0)} ms = ${Math.round(rate).toLocaleString('en-US')} entries/s`);
  return rate;
}
