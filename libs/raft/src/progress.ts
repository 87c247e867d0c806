import { ConfState, NodeId } from './types';

/**
 * Sliding window of in-flight MsgApp (by last index), bounded by count and bytes: the flow control that
 * lets the leader pipeline appends to a follower without flooding it.
 */
export class Inflights {
  private buf: number[] = [];
  private sizes: number[] = [];
  private start = 0;
  count = 0;
  bytes = 0;
  constructor(
    readonly size: number,
    readonly maxBytes: number,
  ) {}

  add(index: number, bytes: number): void {
    const next = (this.start + this.count) % this.size;
    this.buf[next] = index;
    this.sizes[next] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Free every in-flight message whose last index is <= to (they were acknowledged). */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.buf[this.start]) return;
    let i = 0;
    let idx = this.start;
    for (; i < this.count; i++) {
      if (to < this.buf[idx]) break;
      this.bytes -= this.sizes[idx];
      idx = (idx + 1) % this.size;
    }
    this.count -= i;
    this.start = idx;
    if (this.count === 0) {
      this.start = 0;
      this.bytes = 0;
    }
  }

  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.buf[this.start]);
  }

  full(): boolean {
    return this.count === this.size || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  reset(): void {
    this.count = 0;
    this.start = 0;
    this.bytes = 0;
  }
}

export enum ProgressState {
  /** Send one append at a time and wait for its answer: we do not know where the follower's log ends. */
  Probe = 'Probe',
  /** Stream appends optimistically (pipelining), bounded by Inflights. */
  Replicate = 'Replicate',
  /** A snapshot is in flight; pause appends until it is reported. */
  Snapshot = 'Snapshot',
}

/** The leader's view of one follower. */
export class Progress {
  match = 0;
  state = ProgressState.Probe;
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Probe state: an append was sent; pause until a response (or heartbeat response). */
  probeSent = false;
  readonly inflights: Inflights;

  constructor(
    public next: number,
    public isLearner: boolean,
    maxInflight: number,
    maxInflightBytes: number,
  ) {
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** An append up to n was acknowledged. Returns false for a stale acknowledgement. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * An append at `rejected` was refused; `matchHint` is the highest index that may still match.
   * Returns false if the rejection is stale (out of order).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}

export enum VoteResult {
  Pending = 'Pending',
  Won = 'Won',
  Lost = 'Lost',
}

/**
 * Membership (voters + learners), per-node progress, and quorum arithmetic. Simple majority config: membership
 * changes one node at a time (see raft.ts for why that is safe here).
 */
export class ProgressTracker {
  readonly voters = new Set<NodeId>();
  readonly learners = new Set<NodeId>();
  readonly progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private voterList: NodeId[] = [];
  private matchScratch: number[] = [];

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  static fromConfState(cs: ConfState, next: number, maxInflight: number, maxInflightBytes: number): ProgressTracker {
    const t = new ProgressTracker(maxInflight, maxInflightBytes);
    for (const id of cs.voters) t.add(id, false, next);
    for (const id of cs.learners) t.add(id, true, next);
    return t;
  }

  add(id: NodeId, isLearner: boolean, next: number): Progress {
    const pr = new Progress(next, isLearner, this.maxInflight, this.maxInflightBytes);
    this.progress.set(id, pr);
    (isLearner ? this.learners : this.voters).add(id);
    this.refresh();
    return pr;
  }

  promote(id: NodeId): void {
    const pr = this.progress.get(id);
    if (!pr || !pr.isLearner) return;
    pr.isLearner = false;
    this.learners.delete(id);
    this.voters.add(id);
    this.refresh();
  }

  remove(id: NodeId): void {
    this.progress.delete(id);
    this.voters.delete(id);
    this.learners.delete(id);
    this.votes.delete(id);
    this.refresh();
  }

  private refresh(): void {
    this.voterList = [...this.voters].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.matchScratch = new Array<number>(this.voterList.length).fill(0);
  }

  voterIds(): readonly NodeId[] {
    return this.voterList;
  }

  confState(): ConfState {
    const sort = (a: NodeId, b: NodeId) => (a < b ? -1 : a > b ? 1 : 0);
    return { voters: [...this.voters].sort(sort), learners: [...this.learners].sort(sort) };
  }

  isSingleton(): boolean {
    return this.voterList.length === 1;
  }

  quorum(): number {
    return (this.voterList.length >> 1) + 1;
  }

  /** Highest index replicated on a quorum of voters. */
  committed(): number {
    const n = this.voterList.length;
    if (n === 0) return 0;
    const m = this.matchScratch;
    for (let i = 0; i < n; i++) m[i] = this.progress.get(this.voterList[i])!.match;
    m.sort((a, b) => b - a);
    return m[this.quorum() - 1];
  }

  /** Did a quorum of voters (counting `self`) talk to us recently? */
  quorumActive(self: NodeId): boolean {
    let active = 0;
    for (const id of this.voterList) {
      if (id === self || this.progress.get(id)!.recentActive) active++;
    }
    return active >= this.quorum();
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterList) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = this.quorum();
    let result = VoteResult.Pending;
    if (granted >= q) result = VoteResult.Won;
    else if (this.voterList.length - rejected < q) result = VoteResult.Lost;
    return { granted, rejected, result };
  }

  /** Does the set of ids contain a quorum of voters? (ReadIndex acks) */
  hasQuorum(ids: Set<NodeId>): boolean {
    let n = 0;
    for (const id of this.voterList) if (ids.has(id)) n++;
    return n >= this.quorum();
  }
}
