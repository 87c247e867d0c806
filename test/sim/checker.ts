/**
 * Safety invariants, checked incrementally as the simulation runs (cheap enough to run after every step).
 * The checker only looks at what is externally observable or durable: persisted hard states and entries,
 * messages sent, entries applied, reads served.
 */
import { Entry, HardState, MemoryStorage, Message, MessageType, NodeId, RawNode, Ready } from '@nestcd/raft';

export class InvariantViolation extends Error {}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface CommittedEntry {
  term: number;
  data: Uint8Array;
  /** Term of the first node seen durably committing it (>= the term of the leader that committed it). */
  commitTerm: number;
}

export class Checker {
  /** index -> term -> data of every entry ever persisted anywhere (log matching, entry identity). */
  private persisted = new Map<number, Map<number, Uint8Array>>();
  /** Entries known committed (from durable commit indexes). */
  private committed: CommittedEntry[] = [];
  private maxCommitted = 0;
  /** Per node: highest durable commit index checked. */
  private durableCommit = new Map<NodeId, number>();
  /** Per node: in-memory commit index in the current life. */
  private memCommit = new Map<NodeId, number>();
  /** Per node: durable (term, vote). */
  private durableVote = new Map<NodeId, { term: number; vote: NodeId }>();
  private grantedVotes = new Map<string, NodeId>();
  private leaderOfTerm = new Map<number, NodeId>();
  /** index -> {term, data, hash after applying} of applied entries. */
  private applied: { term: number; data: Uint8Array; hash: number }[] = [];

  maxDurableCommit(): number {
    return this.maxCommitted;
  }

  onRestart(id: NodeId, hs: HardState): void {
    this.memCommit.set(id, hs.commit);
  }

  onPersist(id: NodeId, rd: Ready, storage: MemoryStorage): void {
    for (const e of rd.entries) {
      let byTerm = this.persisted.get(e.index);
      if (!byTerm) this.persisted.set(e.index, (byTerm = new Map()));
      const prev = byTerm.get(e.term);
      if (prev === undefined) byTerm.set(e.term, e.data);
      else if (!sameBytes(prev, e.data)) {
        throw new InvariantViolation(`log matching: two different entries at index ${e.index} term ${e.term} (node ${id})`);
      }
    }
    const hs = rd.hardState;
    if (!hs) return;
    const dv = this.durableVote.get(id);
    if (dv && dv.term === hs.term && dv.vote !== 0n && hs.vote !== dv.vote) {
      throw new InvariantViolation(`node ${id} voted twice in term ${hs.term}: ${dv.vote} then ${hs.vote}`);
    }
    if (dv && hs.term < dv.term) throw new InvariantViolation(`node ${id} durable term went back ${dv.term} -> ${hs.term}`);
    this.durableVote.set(id, { term: hs.term, vote: hs.vote });

    const prevCommit = this.durableCommit.get(id) ?? 0;
    if (hs.commit < prevCommit) throw new InvariantViolation(`node ${id} durable commit went back ${prevCommit} -> ${hs.commit}`);
    const first = storage.firstIndex();
    for (let i = Math.max(prevCommit + 1, first); i <= hs.commit; i++) {
      const term = storage.term(i);
      const data = storage.entries(i, i + 1, Infinity)[0].data;
      const c = this.committed[i];
      if (!c) {
        this.committed[i] = { term, data, commitTerm: hs.term };
      } else {
        if (c.term !== term || !sameBytes(c.data, data)) {
          throw new InvariantViolation(`committed entry changed at index ${i}: term ${c.term} -> ${term} (node ${id})`);
        }
        if (hs.term < c.commitTerm) c.commitTerm = hs.term;
      }
    }
    this.durableCommit.set(id, hs.commit);
    if (hs.commit > this.maxCommitted) this.maxCommitted = hs.commit;
  }

  onCommitIndex(id: NodeId, commit: number): void {
    const prev = this.memCommit.get(id) ?? 0;
    if (commit < prev) throw new InvariantViolation(`node ${id} commit index went back ${prev} -> ${commit}`);
    this.memCommit.set(id, commit);
  }

  onSend(m: Message): void {
    if (m.type === MessageType.MsgVoteResp && !m.reject) {
      const k = `${m.from}@${m.term}`;
      const prev = this.grantedVotes.get(k);
      if (prev !== undefined && prev !== m.to) {
        throw new InvariantViolation(`node ${m.from} granted two votes in term ${m.term}: ${prev} and ${m.to}`);
      }
      this.grantedVotes.set(k, m.to);
    }
  }

  onLeader(id: NodeId, term: number, raw: RawNode): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev !== undefined && prev !== id) throw new InvariantViolation(`two leaders in term ${term}: ${prev} and ${id}`);
    this.leaderOfTerm.set(term, id);
    // Leader completeness: everything committed in an earlier term is in the new leader's log.
    const first = raw.firstIndex();
    for (let i = Math.max(first, 2); i <= this.maxCommitted; i++) {
      const c = this.committed[i];
      if (!c || c.commitTerm >= term) continue;
      const t = raw.logTerm(i);
      if (t !== c.term) {
        throw new InvariantViolation(`leader completeness: leader ${id} of term ${term} lacks committed entry ${i} (term ${c.term}, has ${t})`);
      }
    }
  }

  onApply(id: NodeId, e: Entry, hashAfter: number): void {
    const a = this.applied[e.index];
    if (!a) {
      this.applied[e.index] = { term: e.term, data: e.data, hash: hashAfter };
      return;
    }
    if (a.term !== e.term || !sameBytes(a.data, e.data) || a.hash !== hashAfter) {
      throw new InvariantViolation(`state machine safety: node ${id} applied a different entry at index ${e.index} (term ${e.term} vs ${a.term})`);
    }
  }

  onApplySnapshot(id: NodeId, index: number, hash: number): void {
    const a = this.applied[index];
    if (a && a.hash !== hash) throw new InvariantViolation(`node ${id} installed a snapshot at ${index} whose state differs from what others applied`);
  }

  onReadServed(ctx: string, readIndex: number, startMaxCommit: number): void {
    if (readIndex < startMaxCommit) {
      throw new InvariantViolation(`linearizability: read ${ctx} served at index ${readIndex} but index ${startMaxCommit} was committed before it began`);
    }
  }

  /** Full pairwise log matching on the live nodes' in-memory logs. */
  finalCheck(nodes: { id: NodeId; raw: RawNode }[]): void {
    for (let a = 0; a < nodes.length; a++) {
      for (let b = a + 1; b < nodes.length; b++) {
        const x = nodes[a].raw;
        const y = nodes[b].raw;
        const lo = Math.max(x.firstIndex(), y.firstIndex());
        const hi = Math.min(x.lastIndex(), y.lastIndex());
        let matchedAbove = false;
        for (let i = hi; i >= lo; i--) {
          const tx = x.logTerm(i);
          const ty = y.logTerm(i);
          if (matchedAbove && tx !== ty) {
            throw new InvariantViolation(`log matching: nodes ${nodes[a].id} and ${nodes[b].id} share a later entry but differ at ${i}`);
          }
          if (tx !== undefined && tx === ty) matchedAbove = true;
        }
      }
    }
  }
}
