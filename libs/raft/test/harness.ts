/** A tiny synchronous in-memory cluster for raft unit tests (the randomized one lives in test/sim). */
import { MemoryStorage } from '../src/storage';
import { RawNode } from '../src/rawnode';
import { RaftConfig } from '../src/raft';
import { seededRandom } from '../src/rand';
import { ConfState, Entry, EntryType, Message, MessageType, NodeId, ReadState, StateType, decodeConfChange } from '../src/types';

export interface TestNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
  confState: ConfState;
}

export class TestCluster {
  nodes = new Map<NodeId, TestNode>();
  /** Messages matching this are dropped. */
  drop: (m: Message) => boolean = () => false;
  sent: Message[] = [];

  constructor(ids: NodeId[], cfg: Partial<RaftConfig> = {}, learners: NodeId[] = []) {
    for (const id of [...ids, ...learners]) {
      const storage = new MemoryStorage();
      storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: ids, learners } } });
      storage.setHardState({ term: 1, vote: 0n, commit: 1 });
      this.add(id, storage, cfg);
    }
  }

  add(id: NodeId, storage: MemoryStorage, cfg: Partial<RaftConfig> = {}): TestNode {
    const raw = new RawNode({ id, electionTick: 10, heartbeatTick: 1, storage, applied: storage.snapshot().metadata.index, rand: seededRandom(Number(id)), ...cfg });
    const n: TestNode = { id, raw, storage, applied: [], readStates: [], confState: storage.snapshot().metadata.confState };
    this.nodes.set(id, n);
    return n;
  }

  get(id: NodeId): TestNode {
    return this.nodes.get(id)!;
  }

  isolate(id: NodeId): void {
    this.drop = (m) => m.from === id || m.to === id;
  }

  heal(): void {
    this.drop = () => false;
  }

  /** Process Readies and deliver messages until nothing is left. */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false;
      for (const n of this.nodes.values()) {
        if (!n.raw.hasReady()) continue;
        busy = true;
        const rd = n.raw.ready();
        if (rd.snapshot) {
          n.storage.applySnapshot(rd.snapshot);
          n.confState = rd.snapshot.metadata.confState;
        }
        n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        for (const e of rd.committedEntries) {
          n.applied.push(e);
          if (e.type === EntryType.ConfChange) n.confState = n.raw.applyConfChange(decodeConfChange(e.data));
        }
        n.readStates.push(...rd.readStates);
        n.raw.advance(rd);
        for (const m of rd.messages) {
          this.sent.push(m);
          if (this.drop(m)) continue;
          this.nodes.get(m.to)?.raw.step({ ...m });
        }
      }
      if (!busy) return;
    }
    throw new Error('cluster did not stabilize');
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.get(id).raw.tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const x of this.nodes.values()) x.raw.tick();
      this.stabilize();
    }
  }

  leader(): TestNode | undefined {
    return [...this.nodes.values()].find((n) => n.raw.raft.state === StateType.Leader);
  }

  elect(id: NodeId): void {
    this.get(id).raw.campaign();
    this.stabilize();
  }

  count(type: MessageType, since = 0): number {
    return this.sent.slice(since).filter((m) => m.type === type).length;
  }
}
