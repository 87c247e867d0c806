import {
  CompactedError,
  NoLeaderError,
  ProposalDroppedError,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
  invariant,
} from './errors';
import { RaftLog } from './log';
import { ProgressState, ProgressTracker, VoteResult } from './progress';
import { ReadOnly } from './readonly';
import { Storage } from './storage';
import {
  ConfChange,
  ConfChangeType,
  ConfState,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NodeId,
  None,
  PlantedBugs,
  ReadOnlyOption,
  ReadState,
  Snapshot,
  SoftState,
  StateType,
  emptyMessage,
  entrySize,
  isEmptyHardState,
} from './types';

/** Marker in MsgVote.context: a leadership transfer, so voters must not ignore it because of their lease. */
const CAMPAIGN_TRANSFER = new Uint8Array([0x43, 0x54]); // "CT"

function isTransferCtx(ctx: Uint8Array | undefined): boolean {
  return !!ctx && ctx.length === 2 && ctx[0] === 0x43 && ctx[1] === 0x54;
}

export interface RaftConfig {
  /** This node's id (non-zero). */
  id: NodeId;
  /** Ticks without hearing from a leader before campaigning (randomized in [electionTick, 2*electionTick)). */
  electionTick: number;
  /** Ticks between leader heartbeats. Must be < electionTick. */
  heartbeatTick: number;
  storage: Storage;
  /** Last applied index when restarting (entries up to it are not handed out again). */
  applied?: number;
  /** Max bytes of entries per MsgApp (default 1 MiB). */
  maxSizePerMsg?: number;
  /** Max bytes of committed entries per Ready (default unlimited). */
  maxCommittedSizePerReady?: number;
  /** Max bytes of uncommitted entry payloads on the leader before proposals are dropped (default unlimited). */
  maxUncommittedEntriesSize?: number;
  /** Max in-flight MsgApp per follower in Replicate state (default 256). */
  maxInflightMsgs?: number;
  /** Max in-flight bytes per follower (default 0 = unlimited). */
  maxInflightBytes?: number;
  /** Leader steps down when it has not heard from a quorum in an election timeout; enables vote leases. */
  checkQuorum?: boolean;
  /** Run a pre-election first so a partitioned node rejoining does not bump everyone's term. */
  preVote?: boolean;
  readOnlyOption?: ReadOnlyOption;
  /** Followers drop proposals instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /**
   * The application may send a leader's messages before it has persisted the same Ready's entries (the leader
   * writes its log in parallel with replicating it, Raft thesis 10.2.1). The leader then counts its own log
   * towards commitment only up to what advance() reported persisted, so an entry is committed only once it is
   * durable on a quorum, the leader's copy included or not.
   */
  asyncLeaderPersist?: boolean;
  /** Source of randomness in [0, 1) for election timeouts (inject a seeded PRNG for determinism). */
  rand: () => number;
  /** Testing only: plant known bugs so the simulator can prove it catches them. */
  plantedBugs?: PlantedBugs;
}

type StepFn = (r: Raft, m: Message) => void;

enum CampaignType {
  PreElection = 'PreElection',
  Election = 'Election',
  Transfer = 'Transfer',
}

function voteRespType(t: MessageType): MessageType {
  return t === MessageType.MsgVote ? MessageType.MsgVoteResp : MessageType.MsgPreVoteResp;
}

function payloadSize(ents: Entry[]): number {
  let s = 0;
  for (let i = 0; i < ents.length; i++) s += ents[i].data.byteLength;
  return s;
}

/**
 * The raft state machine. Not thread-aware, no I/O: everything arrives through step()/tick(), everything leaves
 * through `msgs`, `readStates` and the log's unstable/committed entries (collected by RawNode.ready()).
 *
 * Membership changes: one voter/learner at a time (etcd 3.4's ConfChange). A change takes effect when the
 * application applies its entry (applyConfChange). The leader refuses a new change while an earlier one is not
 * yet applied (pendingConfIndex), and a new leader first must apply everything up to its first own-term entry,
 * which closes the known single-server-change hole (Ongaro's bug). Since any two majorities of configurations
 * differing by one node intersect, one-at-a-time changes are safe without joint consensus.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = None;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  prs: ProgressTracker;
  state = StateType.Follower;
  isLearner = false;
  msgs: Message[] = [];
  lead: NodeId = None;
  /** Target of an in-progress leadership transfer. */
  leadTransferee: NodeId = None;
  /** Index of the latest conf change proposed; no new one until applied >= this. */
  pendingConfIndex = 0;
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  /** ReadIndex requests received before this leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  private heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  private readonly heartbeatTimeout: number;
  private readonly electionTimeout: number;
  private randomizedElectionTimeout = 0;
  private readonly maxMsgSize: number;
  private readonly maxUncommittedSize: number;
  private readonly readOnlyOption: ReadOnlyOption;
  private readonly disableProposalForwarding: boolean;
  readonly asyncLeaderPersist: boolean;
  private readonly rand: () => number;
  private readonly bugs: PlantedBugs;
  private stepFn: StepFn = stepFollower;

  constructor(c: RaftConfig) {
    invariant(c.id !== None, 'cannot use none as id');
    invariant(c.heartbeatTick > 0, 'heartbeat tick must be greater than 0');
    invariant(c.electionTick > c.heartbeatTick, 'election tick must be greater than heartbeat tick');
    this.id = c.id;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = c.maxUncommittedEntriesSize ?? Infinity;
    this.checkQuorum = c.checkQuorum ?? false;
    this.preVote = c.preVote ?? false;
    this.readOnlyOption = c.readOnlyOption ?? ReadOnlyOption.Safe;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.asyncLeaderPersist = c.asyncLeaderPersist ?? false;
    this.rand = c.rand;
    this.bugs = c.plantedBugs ?? {};
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? Infinity);
    const { hardState, confState } = c.storage.initialState();
    this.prs = ProgressTracker.fromConfState(confState, 1, c.maxInflightMsgs ?? 256, c.maxInflightBytes ?? 0);
    this.isLearner = this.prs.learners.has(this.id);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, None);
  }

  // ---------------------------------------------------------------- state accessors

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  private loadState(hs: HardState): void {
    invariant(
      hs.commit >= this.raftLog.committed && hs.commit <= this.raftLog.lastIndex(),
      `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  /** Can this node campaign? Only a voter that knows it is in the configuration. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return !!pr && !pr.isLearner && !this.raftLog.unstable.snapshot;
  }

  private pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.rand() * this.electionTimeout);
  }

  // ---------------------------------------------------------------- sending

  send(m: Message): void {
    m.from = this.id;
    const t = m.type;
    if (t === MessageType.MsgVote || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVote || t === MessageType.MsgPreVoteResp) {
      // Vote messages carry the term they are about (a pre-vote asks for term+1 without adopting it).
      invariant(m.term !== 0, `term should be set when sending ${t}`);
    } else {
      invariant(m.term === 0, `term should not be set when sending ${t} (was ${m.term})`);
      // Proposals and read-index requests forwarded to the leader are term-less "local" messages.
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Send entries (or a snapshot) to `to` if its progress allows. Returns whether a message was sent. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const m = emptyMessage(MessageType.MsgApp, to);
    let term: number | undefined;
    let ents: Entry[] | undefined;
    try {
      term = this.raftLog.term(pr.next - 1);
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch (e) {
      if (!(e instanceof CompactedError || e instanceof UnavailableError)) throw e;
      term = undefined;
    }
    if (ents !== undefined && term !== undefined) {
      if (ents.length === 0 && !sendIfEmpty) return false;
      m.index = pr.next - 1;
      m.logTerm = term;
      m.entries = ents;
      m.commit = this.raftLog.committed;
      const n = ents.length;
      if (n !== 0) {
        if (pr.state === ProgressState.Replicate) {
          const last = ents[n - 1].index;
          pr.optimisticUpdate(last);
          let bytes = 0;
          for (let i = 0; i < n; i++) bytes += entrySize(ents[i]);
          pr.inflights.add(last, bytes);
        } else if (pr.state === ProgressState.Probe) {
          pr.probeSent = true;
        }
      }
    } else {
      // The entries the follower needs were compacted: send the snapshot instead.
      if (!pr.recentActive) return false;
      let snap: Snapshot;
      try {
        snap = this.raftLog.snapshot();
      } catch (e) {
        if (e instanceof SnapshotTemporarilyUnavailableError) return false;
        throw e;
      }
      invariant(snap.metadata.index !== 0, 'need non-empty snapshot');
      m.type = MessageType.MsgSnap;
      m.snapshot = snap;
      pr.becomeSnapshot(snap.metadata.index);
    }
    this.send(m);
    return true;
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array | undefined): void {
    const pr = this.prs.progress.get(to)!;
    // Never tell a follower to commit beyond what it is known to have: it might not have those entries yet.
    const m = emptyMessage(MessageType.MsgHeartbeat, to);
    m.commit = Math.min(pr.match, this.raftLog.committed);
    if (ctx) m.context = ctx;
    this.send(m);
  }

  bcastAppend(): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  // ---------------------------------------------------------------- commit

  maybeCommit(): boolean {
    const mci = this.prs.committed();
    return this.raftLog.maybeCommit(mci, this.term, !!this.bugs.commitOldTermByCounting);
  }

  // ---------------------------------------------------------------- state transitions

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, old] of this.prs.progress) {
      const pr = this.prs.add(id, old.isLearner, last + 1);
      if (id === this.id) pr.match = this.asyncLeaderPersist ? this.persistedLastIndex() : last;
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  /** Append locally proposed entries (setting term/index). False if the uncommitted-size limit refuses them. */
  private appendEntry(es: Entry[]): boolean {
    let li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i].term = this.term;
      es[i].index = li + 1 + i;
    }
    if (!this.increaseUncommittedSize(es)) return false;
    li = this.raftLog.append(es);
    if (!this.asyncLeaderPersist) {
      this.prs.progress.get(this.id)?.maybeUpdate(li);
      this.maybeCommit();
    }
    return true;
  }

  /**
   * The last index of the log prefix that is durable here: what storage holds, below the first entry still
   * waiting in the unstable log (a conflicting unstable suffix replaces storage's entries from there on).
   */
  private persistedLastIndex(): number {
    const u = this.raftLog.unstable;
    const stored = this.raftLog.storage.lastIndex();
    return u.entries.length > 0 ? Math.min(stored, u.offset - 1) : stored;
  }

  /**
   * asyncLeaderPersist: the application made the log durable up to (index, term). A leader now counts its own
   * copy for those entries, unless the log has since replaced them (then a later advance reports the new ones).
   */
  onPersisted(index: number, term: number): void {
    if (!this.asyncLeaderPersist || this.state !== StateType.Leader) return;
    if (this.raftLog.termOrUndefined(index) !== term) return;
    const self = this.prs.progress.get(this.id);
    if (self?.maybeUpdate(index) && this.maybeCommit()) this.bcastAppend();
  }

  private increaseUncommittedSize(ents: Entry[]): boolean {
    const s = payloadSize(ents);
    if (this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) return false;
    this.uncommittedSize += s;
    return true;
  }

  reduceUncommittedSize(ents: Entry[]): void {
    if (this.uncommittedSize === 0) return;
    const s = payloadSize(ents);
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepFn = stepFollower;
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
  }

  private becomeCandidate(): void {
    invariant(this.state !== StateType.Leader, 'invalid transition [leader -> candidate]');
    this.stepFn = stepCandidate;
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
  }

  private becomePreCandidate(): void {
    invariant(this.state !== StateType.Leader, 'invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote: losing the pre-election leaves no trace.
    this.stepFn = stepCandidate;
    this.prs.resetVotes();
    this.lead = None;
    this.state = StateType.PreCandidate;
  }

  private becomeLeader(): void {
    invariant(this.state !== StateType.Follower, 'invalid transition [follower -> leader]');
    this.stepFn = stepLeader;
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.prs.progress.get(this.id);
    if (self) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Conservatively treat every uncommitted entry as a possible conf change: no new change until all applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // An empty entry of the new term: committing it commits everything before it (figure-8 rule) and
    // enables ReadIndex. It does not count against the uncommitted-size limit.
    const empty: Entry = { term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) };
    this.appendEntry([empty]);
    this.uncommittedSize = 0;
  }

  private campaign(t: CampaignType): void {
    if (!this.promotable()) return;
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      term = this.term + 1; // ask about the term we would use, without adopting it
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    if (this.poll(this.id, voteRespType(voteMsg), true) === VoteResult.Won) {
      // Single-voter cluster: we won on our own vote.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    for (const id of this.prs.voterIds()) {
      if (id === this.id) continue;
      const m = emptyMessage(voteMsg, id);
      m.term = term;
      m.index = this.raftLog.lastIndex();
      m.logTerm = this.raftLog.lastTerm();
      if (t === CampaignType.Transfer) m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  private poll(id: NodeId, _t: MessageType, granted: boolean): VoteResult {
    this.prs.recordVote(id, granted);
    return this.prs.tallyVotes().result;
  }

  // ---------------------------------------------------------------- tick

  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step({ ...emptyMessage(MessageType.MsgHup), from: this.id });
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step({ ...emptyMessage(MessageType.MsgCheckQuorum), from: this.id });
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== None) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step({ ...emptyMessage(MessageType.MsgBeat), from: this.id });
    }
  }

  // ---------------------------------------------------------------- step

  /** Process one message. Throws ProposalDroppedError/NoLeaderError for proposals and reads that cannot proceed. */
  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = isTransferCtx(m.context);
        // Lease: a node that heard from a live leader recently ignores (pre)votes, so a removed or partitioned
        // node cannot disrupt a healthy cluster.
        const inLease = this.checkQuorum && this.lead !== None && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) return;
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change our term in response to a pre-vote.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // The pre-vote was granted for term+1; we adopt the term when we win the pre-election.
      } else if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, None);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
        // A stale leader (e.g. healed from a partition) would otherwise never learn our term when we ignore its
        // messages, since with CheckQuorum/PreVote we may never send it a vote request with a higher term.
        this.send(emptyMessage(MessageType.MsgAppResp, m.from));
      } else if (m.type === MessageType.MsgPreVote) {
        const r = emptyMessage(MessageType.MsgPreVoteResp, m.from);
        r.term = this.term;
        r.reject = true;
        this.send(r);
      }
      return;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(CampaignType.Election);
        return;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote: {
        const canVote =
          this.vote === m.from ||
          (this.vote === None && this.lead === None) ||
          (m.type === MessageType.MsgPreVote && m.term > this.term);
        const upToDate = this.bugs.voteWithoutLogCheck || this.raftLog.isUpToDate(m.index, m.logTerm);
        const r = emptyMessage(voteRespType(m.type), m.from);
        if (canVote && upToDate) {
          // Reply in the message's term: a granted pre-vote is for term+1, which we have not adopted.
          r.term = m.term;
          this.send(r);
          if (m.type === MessageType.MsgVote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          r.term = this.term;
          r.reject = true;
          this.send(r);
        }
        return;
      }
      default:
        this.stepFn(this, m);
    }
  }

  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) return;
    // Do not campaign with an unapplied committed conf change: we might not be in the config we think.
    if (this.raftLog.committed > this.raftLog.applied && this.hasUnappliedConfChange()) return;
    this.campaign(this.preVote && t === CampaignType.Election ? CampaignType.PreElection : t);
  }

  private hasUnappliedConfChange(): boolean {
    let lo = this.raftLog.applied + 1;
    const hi = this.raftLog.committed + 1;
    // Page through so a huge backlog does not allocate one big array.
    while (lo < hi) {
      const ents = this.raftLog.slice(lo, hi, 1024 * 1024);
      for (const e of ents) if (e.type === EntryType.ConfChange) return true;
      lo += ents.length;
    }
    return false;
  }

  /** Campaign now, as when MsgTimeoutNow arrives (transfer). */
  campaignTransfer(): void {
    this.hup(CampaignType.Transfer);
  }

  // ---------------------------------------------------------------- follower handlers

  handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      const r = emptyMessage(MessageType.MsgAppResp, m.from);
      r.index = this.raftLog.committed;
      this.send(r);
      return;
    }
    const mlast = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    const r = emptyMessage(MessageType.MsgAppResp, m.from);
    if (mlast !== undefined) {
      r.index = mlast;
      this.send(r);
      return;
    }
    // Mismatch. Hint: the largest index <= m.index whose term is <= m.logTerm. Every entry of ours after it has
    // a higher term than the leader's entry at m.index and so cannot match; the leader skips them all at once.
    let hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    hintIndex = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hintIndex;
    r.logTerm = this.raftLog.termOrUndefined(hintIndex) ?? 0;
    this.send(r);
  }

  handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const r = emptyMessage(MessageType.MsgHeartbeatResp, m.from);
    if (m.context) r.context = m.context;
    this.send(r);
  }

  handleSnapshot(m: Message): void {
    const r = emptyMessage(MessageType.MsgAppResp, m.from);
    if (m.snapshot && this.restore(m.snapshot)) {
      r.index = this.raftLog.lastIndex();
    } else {
      r.index = this.raftLog.committed;
    }
    this.send(r);
  }

  /** Install a snapshot from the leader. False if it is stale or our log already contains its index. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defensive: only followers receive snapshots (the sender is the leader of our term).
      this.becomeFollower(this.term + 1, None);
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the entries: just fast-forward the commit index.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.prs = ProgressTracker.fromConfState(
      s.metadata.confState,
      this.raftLog.lastIndex() + 1,
      this.prs.maxInflight,
      this.prs.maxInflightBytes,
    );
    const self = this.prs.progress.get(this.id);
    if (self) self.match = this.raftLog.lastIndex();
    this.isLearner = this.prs.learners.has(this.id);
    return true;
  }

  // ---------------------------------------------------------------- leader helpers

  private abortLeaderTransfer(): void {
    this.leadTransferee = None;
  }

  sendTimeoutNow(to: NodeId): void {
    this.send(emptyMessage(MessageType.MsgTimeoutNow, to));
  }

  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrUndefined(this.raftLog.committed) === this.term;
  }

  /** Answer a read request at `readIndex`: locally as a ReadState, or to the follower that forwarded it. */
  responseToReadIndexReq(req: Message, readIndex: number): Message | undefined {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0].data });
      return undefined;
    }
    const r = emptyMessage(MessageType.MsgReadIndexResp, req.from);
    r.index = readIndex;
    r.entries = req.entries;
    return r;
  }

  sendMsgReadIndexResponse(m: Message): void {
    if (this.readOnlyOption === ReadOnlyOption.LeaseBased || this.bugs.readWithoutQuorumCheck) {
      const resp = this.responseToReadIndexReq(m, this.raftLog.committed);
      if (resp) this.send(resp);
      return;
    }
    const added = this.readOnly.addRequest(this.raftLog.committed, m);
    if (!added) return;
    this.readOnly.recvAck(this.id, added.round.ctx);
    if (added.isNew) this.bcastHeartbeatWithCtx(added.round.ctx);
  }

  releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendMsgReadIndexResponse(m);
  }

  queuePendingReadIndex(m: Message): void {
    this.pendingReadIndexMessages.push(m);
  }

  // ---------------------------------------------------------------- membership

  /** Apply a committed conf change (called by the application when it applies the entry). */
  applyConfChange(cc: ConfChange): ConfState {
    const next = this.raftLog.lastIndex() + 1;
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        const asLearner = cc.type === ConfChangeType.AddLearnerNode;
        const pr = this.prs.progress.get(cc.nodeId);
        if (!pr) {
          const np = this.prs.add(cc.nodeId, asLearner, next);
          // Give the new node an election timeout to respond before CheckQuorum counts it as dead.
          np.recentActive = true;
          if (cc.nodeId === this.id) np.match = this.raftLog.lastIndex();
        } else if (pr.isLearner && !asLearner) {
          this.prs.promote(cc.nodeId);
        }
        // (Demoting a voter to learner is not supported; re-adding an existing member is a no-op.)
        if (cc.nodeId === this.id) this.isLearner = this.prs.learners.has(this.id);
        break;
      }
      case ConfChangeType.RemoveNode:
        this.removeNode(cc.nodeId);
        break;
      case ConfChangeType.UpdateNode:
        break;
    }
    return this.prs.confState();
  }

  private removeNode(id: NodeId): void {
    this.prs.remove(id);
    if (this.leadTransferee === id) this.abortLeaderTransfer();
    if (this.state !== StateType.Leader) return;
    if (id === this.id) {
      // The leader was removed: hand leadership to the most caught-up voter at once (it is fully replicated
      // if its match equals our last index), then step down. Remaining voters elect a leader either way.
      let best: NodeId = None;
      let bestMatch = -1;
      for (const v of this.prs.voterIds()) {
        const pr = this.prs.progress.get(v)!;
        if (pr.match > bestMatch) {
          best = v;
          bestMatch = pr.match;
        }
      }
      if (best !== None && bestMatch === this.raftLog.lastIndex()) this.sendTimeoutNow(best);
      this.becomeFollower(this.term, None);
      return;
    }
    if (this.prs.voterIds().length === 0) return;
    // The quorum may have shrunk: entries may now be committed.
    if (this.maybeCommit()) this.bcastAppend();
  }

  /** Status of a snapshot sent to `to` (from the transport). */
  reportSnapshot(to: NodeId, failed: boolean): void {
    const m = emptyMessage(MessageType.MsgSnapStatus, this.id);
    m.from = to;
    m.reject = failed;
    this.step(m);
  }
}

// -------------------------------------------------------------------- per-role step functions

function stepLeader(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.MsgBeat:
      r['bcastHeartbeat']();
      return;
    case MessageType.MsgCheckQuorum:
      if (!r.prs.quorumActive(r.id)) r.becomeFollower(r.term, None);
      for (const [id, pr] of r.prs.progress) if (id !== r.id) pr.recentActive = false;
      return;
    case MessageType.MsgProp: {
      invariant(m.entries.length > 0, 'stepped empty MsgProp');
      if (!r.prs.progress.has(r.id)) throw new ProposalDroppedError('raft: leader was removed from the configuration');
      if (r.leadTransferee !== None) throw new ProposalDroppedError('raft: leadership transfer in progress');
      // Copy: the same message object may be delivered twice (duplication) and appendEntry sets term/index.
      const es: Entry[] = new Array(m.entries.length);
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i];
        if (e.type === EntryType.ConfChange) {
          if (r.pendingConfIndex > r.raftLog.applied) {
            throw new ProposalDroppedError('raft: a configuration change is already pending');
          }
          r.pendingConfIndex = r.raftLog.lastIndex() + i + 1;
        }
        es[i] = { term: 0, index: 0, type: e.type, data: e.data };
      }
      if (!r['appendEntry'](es)) throw new ProposalDroppedError('raft: too many uncommitted entries');
      r.bcastAppend();
      return;
    }
    case MessageType.MsgReadIndex:
      if (r.prs.isSingleton()) {
        const resp = r.responseToReadIndexReq(m, r.raftLog.committed);
        if (resp) r.send(resp);
        return;
      }
      // Until we commit an entry of our term we do not know the true commit index (figure 8): wait.
      if (!r.committedEntryInCurrentTerm()) {
        r.queuePendingReadIndex(m);
        return;
      }
      r.sendMsgReadIndexResponse(m);
      return;
  }

  const pr = r.prs.progress.get(m.from);
  if (!pr) return;
  switch (m.type) {
    case MessageType.MsgAppResp: {
      pr.recentActive = true;
      if (m.reject) {
        let nextProbeIdx = m.rejectHint;
        if (m.logTerm > 0) {
          // The follower's entries after rejectHint have terms > m.logTerm; skip our entries with terms
          // > m.logTerm too: the highest index where both logs could agree is found in one round trip.
          nextProbeIdx = r.raftLog.findConflictByTerm(m.rejectHint, m.logTerm);
        }
        if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
          if (pr.state === ProgressState.Replicate) pr.becomeProbe();
          r.sendAppend(m.from);
        }
        return;
      }
      const oldPaused = pr.isPaused();
      if (!pr.maybeUpdate(m.index)) return;
      if (pr.state === ProgressState.Probe) pr.becomeReplicate();
      else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) pr.becomeProbe();
      else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);

      if (r.maybeCommit()) {
        r.releasePendingReadIndexMessages();
        r.bcastAppend();
      } else if (oldPaused) {
        r.sendAppend(m.from);
      }
      // Pipelining: keep sending while the flow-control window has room.
      while (r.maybeSendAppend(m.from, false)) {
        /* keep going */
      }
      if (m.from === r.leadTransferee && pr.match === r.raftLog.lastIndex()) r.sendTimeoutNow(m.from);
      return;
    }
    case MessageType.MsgHeartbeatResp: {
      pr.recentActive = true;
      pr.probeSent = false;
      // Free one slot so a follower that lost appends is not stuck forever with a full window.
      if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
      if (pr.match < r.raftLog.lastIndex()) r.sendAppend(m.from);
      if (!m.context) return;
      const acks = r.readOnly.recvAck(m.from, m.context);
      if (!acks || !r.prs.hasQuorum(acks)) return;
      for (const round of r.readOnly.advance(m.context)) {
        for (const req of round.requests) {
          const resp = r.responseToReadIndexReq(req, round.index);
          if (resp) r.send(resp);
        }
      }
      return;
    }
    case MessageType.MsgSnapStatus:
      if (pr.state !== ProgressState.Snapshot) return;
      if (m.reject) pr.pendingSnapshot = 0;
      pr.becomeProbe();
      // Wait for the next heartbeat response (or append response) before probing: the snapshot may still be
      // being applied on the follower.
      pr.probeSent = true;
      return;
    case MessageType.MsgUnreachable:
      // The transport could not deliver: stop optimistic streaming and probe again.
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      return;
    case MessageType.MsgTransferLeader: {
      if (pr.isLearner) return;
      const transferee = m.from;
      if (r.leadTransferee !== None) {
        if (r.leadTransferee === transferee) return;
        r['abortLeaderTransfer']();
      }
      if (transferee === r.id) return;
      // The transfer should finish within an election timeout.
      r.electionElapsed = 0;
      r.leadTransferee = transferee;
      if (pr.match === r.raftLog.lastIndex()) r.sendTimeoutNow(transferee);
      else r.sendAppend(transferee);
      return;
    }
  }
}

function stepCandidate(r: Raft, m: Message): void {
  const myVoteResp = r.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
  switch (m.type) {
    case MessageType.MsgProp:
      throw new NoLeaderError();
    case MessageType.MsgReadIndex:
      throw new NoLeaderError();
    case MessageType.MsgApp:
      r.becomeFollower(m.term, m.from);
      r.handleAppendEntries(m);
      return;
    case MessageType.MsgHeartbeat:
      r.becomeFollower(m.term, m.from);
      r.handleHeartbeat(m);
      return;
    case MessageType.MsgSnap:
      r.becomeFollower(m.term, m.from);
      r.handleSnapshot(m);
      return;
    case MessageType.MsgTransferLeader:
      throw new NoLeaderError();
    case MessageType.MsgTimeoutNow:
      return;
    case myVoteResp: {
      const res = r['poll'](m.from, m.type, !m.reject);
      if (res === VoteResult.Won) {
        if (r.state === StateType.PreCandidate) r['campaign'](CampaignType.Election);
        else {
          r['becomeLeader']();
          r.bcastAppend();
        }
      } else if (res === VoteResult.Lost) {
        // A pre-candidate (or candidate) that lost goes back to follower in its current term.
        r.becomeFollower(r.term, None);
      }
      return;
    }
  }
}

function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.MsgProp:
      if (r.lead === None) throw new NoLeaderError();
      if (r['disableProposalForwarding']) throw new ProposalDroppedError('raft: proposal forwarding disabled');
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.MsgApp:
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleAppendEntries(m);
      return;
    case MessageType.MsgHeartbeat:
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleHeartbeat(m);
      return;
    case MessageType.MsgSnap:
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleSnapshot(m);
      return;
    case MessageType.MsgTransferLeader:
      if (r.lead === None) throw new NoLeaderError();
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.MsgTimeoutNow:
      // The leader picked us: campaign immediately, skipping pre-vote and the voters' leases.
      r.campaignTransfer();
      return;
    case MessageType.MsgReadIndex:
      if (r.lead === None) throw new NoLeaderError();
      m.to = r.lead;
      r.send(m);
      return;
    case MessageType.MsgReadIndexResp:
      if (m.entries.length !== 1) return;
      r.readStates.push({ index: m.index, requestCtx: m.entries[0].data });
      return;
  }
}
