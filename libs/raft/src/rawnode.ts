import { NoLeaderError, ProposalDroppedError, StepLocalMsgError, StepPeerNotFoundError } from './errors';
import { ProgressState } from './progress';
import { Raft, RaftConfig } from './raft';
import {
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NodeId,
  None,
  ReadState,
  Snapshot,
  SnapshotStatus,
  SoftState,
  StateType,
  emptyMessage,
  encodeConfChange,
  hardStateEqual,
  isEmptyHardState,
  isLocalMsg,
  isResponseMsg,
} from './types';

/**
 * Everything the application must do after a batch of inputs, in this order:
 *  1. persist `snapshot` (if any), `entries` and `hardState` (fsync if `mustSync`);
 *  2. send `messages` (only after step 1: a vote or an append ack must never be sent before it is durable; with
 *     asyncLeaderPersist a leader's appends and heartbeats may leave before step 1);
 *  3. apply `snapshot` then `committedEntries` to the state machine (call applyConfChange for conf-change entries),
 *     and serve `readStates` once the applied index reaches their index;
 *  4. call advance(rd).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  mustSync: boolean;
}

export interface RaftStatus {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  leadTransferee: NodeId;
  /** Only on the leader: each member's replication progress. */
  progress?: Map<NodeId, { match: number; next: number; state: ProgressState; isLearner: boolean }>;
}

/**
 * The application's handle on a raft node (single-threaded, synchronous; etcd's RawNode).
 * Inputs: tick(), step(msg), propose(), proposeConfChange(), readIndex(), transferLeader(), report*().
 * Output: ready() when hasReady(), then advance().
 */
export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  get id(): NodeId {
    return this.raft.id;
  }

  /** Advance logical time by one tick (the server calls this from its ticker, e.g. every 100ms). */
  tick(): void {
    this.raft.tick();
  }

  /** Start an election now (tests, or a single-node bootstrap). */
  campaign(): void {
    const m = emptyMessage(MessageType.MsgHup);
    m.from = this.raft.id;
    this.raft.step(m);
  }

  /** Propose one entry. Throws NoLeaderError / ProposalDroppedError if it cannot be accepted now. */
  propose(data: Uint8Array): void {
    this.proposeBatch([data]);
  }

  /** Propose many entries in one message (they become one append; far cheaper than one at a time). */
  proposeBatch(datas: Uint8Array[]): void {
    if (datas.length === 0) return;
    const m = emptyMessage(MessageType.MsgProp);
    m.from = this.raft.id;
    m.entries = datas.map((data) => ({ term: 0, index: 0, type: EntryType.Normal, data }));
    this.raft.step(m);
  }

  /** Propose a membership change (one node at a time). Apply it with applyConfChange once committed. */
  proposeConfChange(cc: ConfChange): void {
    const m = emptyMessage(MessageType.MsgProp);
    m.from = this.raft.id;
    m.entries = [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }];
    this.raft.step(m);
  }

  /** Apply a committed conf change; returns the new configuration (store it with the next snapshot). */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Feed a message received from the network. Drops (returns false) requests that cannot proceed here, such as
   * a forwarded proposal reaching a node without a leader; throws on local message types.
   */
  step(m: Message): boolean {
    if (isLocalMsg(m.type)) throw new StepLocalMsgError();
    if (isResponseMsg(m.type) && !this.raft.prs.progress.has(m.from)) {
      // Responses from nodes outside the configuration carry nothing we can use.
      if (this.raft.state === StateType.Leader) return false;
    }
    try {
      this.raft.step(m);
      return true;
    } catch (e) {
      if (e instanceof ProposalDroppedError) return false;
      throw e;
    }
  }

  /**
   * Ask for a linearizable read point. `ctx` identifies the request (unique per request); the answer arrives
   * as a ReadState with the same ctx in a later Ready. Throws NoLeaderError on a follower without leader.
   */
  readIndex(ctx: Uint8Array): void {
    const m = emptyMessage(MessageType.MsgReadIndex);
    m.from = this.raft.id;
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: ctx }];
    if (this.raft.state !== StateType.Leader && this.raft.lead === None) throw new NoLeaderError();
    this.raft.step(m);
  }

  /** Ask the leader to hand leadership to `transferee` (forwarded when called on a follower). */
  transferLeader(transferee: NodeId): void {
    const m = emptyMessage(MessageType.MsgTransferLeader);
    m.from = transferee;
    this.raft.step(m);
  }

  /** The transport could not reach `id`: the leader stops streaming to it and probes instead. */
  reportUnreachable(id: NodeId): void {
    const m = emptyMessage(MessageType.MsgUnreachable);
    m.from = id;
    this.raft.step(m);
  }

  /** Outcome of sending a MsgSnap to `id`. */
  reportSnapshot(id: NodeId, status: SnapshotStatus): void {
    this.raft.reportSnapshot(id, status === SnapshotStatus.Failure);
  }

  hasReady(): boolean {
    const r = this.raft;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardState)) return true;
    if (r.raftLog.unstable.snapshot) return true;
    if (r.msgs.length > 0 || r.raftLog.unstable.entries.length > 0 || r.readStates.length > 0) return true;
    return r.raftLog.hasNextEnts();
  }

  /** Collect the pending work. Call advance(rd) once it has been handled. */
  ready(): Ready {
    const r = this.raft;
    const rd: Ready = {
      // A copy: the unstable log keeps growing while the application persists this Ready.
      entries: r.raftLog.unstableEntries().slice(),
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: false,
    };
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) {
      rd.hardState = hs;
      rd.mustSync = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
      this.prevHardState = hs;
    }
    if (rd.entries.length > 0) rd.mustSync = true;
    if (r.raftLog.unstable.snapshot) rd.snapshot = r.raftLog.unstable.snapshot;
    r.msgs = [];
    r.readStates = [];
    // Heartbeats already queued leave with this Ready: later reads need their own round.
    r.readOnly.seal();
    return rd;
  }

  /** The application finished handling `rd` (persisted, sent, applied). */
  advance(rd: Ready): void {
    const r = this.raft;
    const ce = rd.committedEntries;
    if (ce.length > 0) {
      r.raftLog.appliedTo(ce[ce.length - 1].index);
      r.reduceUncommittedSize(ce);
    } else if (rd.snapshot) {
      r.raftLog.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      const e = rd.entries[rd.entries.length - 1];
      r.raftLog.stableTo(e.index, e.term);
      r.onPersisted(e.index, e.term);
    }
    if (rd.snapshot) r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
    // A leader may have been waiting on the applied index to accept conf changes; nothing else to do here.
  }

  status(): RaftStatus {
    const r = this.raft;
    const s: RaftStatus = {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
    };
    if (r.state === StateType.Leader) {
      s.progress = new Map();
      for (const [id, pr] of r.prs.progress) {
        s.progress.set(id, { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner });
      }
    }
    return s;
  }

  // Read-only views of the in-memory log (tests, the simulator's invariant checks, debugging).
  lastIndex(): number {
    return this.raft.raftLog.lastIndex();
  }
  firstIndex(): number {
    return this.raft.raftLog.firstIndex();
  }
  /** Term of entry i in the in-memory log, or undefined if compacted / beyond the end. */
  logTerm(i: number): number | undefined {
    if (i > this.raft.raftLog.lastIndex()) return undefined;
    return this.raft.raftLog.termOrUndefined(i);
  }
}


