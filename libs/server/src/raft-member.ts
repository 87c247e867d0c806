import { Errors, EtcdError } from '@nestcd/errors';
import {
  ConfChange, ConfChangeType, ConfState, decodeConfChange, Entry, EntryType, HardState, MemoryStorage, Message, NodeId, None, leaderMaySendBeforePersist,
  MessageType, NoLeaderError, ProposalDroppedError, RawNode, Ready, Snapshot, SnapshotMetadata, SnapshotStatus, StateType,
} from '@nestcd/raft';
import type { Proposer } from './etcd-server';

/** Where a member makes its Raft state durable (the WAL and snapshot files); absent for an in-memory member. */
export interface RaftPersistence {
  /**
   * Resolves only when the hard state and entries are durable (group commit happens below this call). `syncHere`:
   * the caller has nothing else to do until then, so the fdatasync may wait on this thread (Wal's SaveOptions).
   */
  save(hardState: HardState | undefined, entries: Entry[], opts?: { syncHere?: boolean }): Promise<void>;
  /** Persists a snapshot and may then release WAL segments and old snapshots it makes redundant. */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /**
   * Reads back the data of a snapshot saved here. With it the member keeps only the metadata of its newest snapshot
   * in memory (the data is SNAPSHOT_DATA_ON_DISK) and reads the data when a follower needs it, as etcd streams its
   * snapshot from the backend file: a keyspace of hundreds of MB is not held twice.
   */
  loadSnapshotData?(metadata: SnapshotMetadata): Promise<Uint8Array>;
  /**
   * Starts a snapshot to be written a piece at a time as it is encoded (with loadSnapshotData: the member never
   * holds the whole of it). Its commit() is saveSnapshot's: durable, then WAL segments and old snapshots released.
   */
  createSnapshot?(metadata: SnapshotMetadata): Promise<SnapshotSink>;
}

/** A snapshot being written as it is encoded (RaftPersistence.createSnapshot). */
export interface SnapshotSink {
  /** Appends a piece of the data; the caller may reuse `bytes` once this resolves. */
  write(bytes: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  /** Gives the snapshot up: nothing of it becomes visible. */
  abort(): Promise<void>;
}

/** The data of a snapshot in the log storage whose bytes are only in its snapshot file (see loadSnapshotData). */
export const SNAPSHOT_DATA_ON_DISK: Uint8Array = new Uint8Array(0);

/** How Raft messages reach other members (the cluster issue provides one; a lone member needs none). */
export interface RaftTransport {
  send(messages: Message[]): void;
}

export interface RaftMemberOptions {
  id: NodeId;
  /** Loaded by the caller: the bootstrap or recovered snapshot, hard state and entries. */
  storage: MemoryStorage;
  /** The state machine, already restored to `storage`'s snapshot. */
  stateMachine: StateMachine;
  persistence?: RaftPersistence;
  transport?: RaftTransport;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks?: number;
  /** Applied entries between snapshots (etcd's --snapshot-count). */
  snapshotCount: number;
  /** Entries kept behind a snapshot so slow followers can catch up without one (etcd keeps 5000). */
  catchUpEntries?: number;
  requestTimeoutMs: number;
  rand: () => number;
  log?: (msg: string) => void;
  /** Called on this member's leadership changes (e.g. to renew leases when it becomes leader). */
  onLeaderChange?: (leader: NodeId, isSelf: boolean) => void;
  /** A membership change was applied (the state machine accepted it); `context` is the application's part. */
  onConfChange?: (cc: ConfChange, confState: ConfState, context: Buffer) => void;
  /** A snapshot from the leader replaced the state machine (membership may have changed with it). */
  onSnapshotInstalled?: (confState: ConfState) => void;
}

/**
 * What the log is applied to. Normal entries carry a kind byte, an 8-byte request ID and a payload; the
 * state machine interprets kind and payload, deterministically, the same on every member.
 */
export interface StateMachine {
  /** Returns the result for the proposer; throws EtcdError for a deterministic refusal. */
  apply(kind: number, payload: Buffer, index: number): unknown;
  snapshot(): Uint8Array;
  /**
   * The same bytes as snapshot() now, encoded a step at a time so the event loop keeps turning (optional).
   * `chunkBytes`: streamed, each step ending once about that many bytes are pending, for take() (see SnapshotSteps).
   */
  captureSnapshot?(opts?: { chunkBytes?: number }): SnapshotSteps;
  restore(data: Uint8Array): void;
  /** restore() a step at a time, so the event loop keeps turning; the state changes only in finish() (optional). */
  restoreInSteps?(data: Uint8Array): RestoreSteps;
  /** Validates and applies a committed membership change; throws EtcdError to refuse it (then raft ignores it too). */
  applyConfChange?(cc: ConfChange, context: Buffer): void;
}

/**
 * A snapshot being encoded in steps: step() until it returns true, then finish(). A streamed capture instead hands
 * out its bytes with take() after every step.
 */
export interface SnapshotSteps {
  step(budget: number): boolean;
  finish(): Uint8Array;
  /** The bytes encoded since the last take(): a view valid until the next step (a streamed capture's buffer is reused). */
  take(): Uint8Array;
  /** Gives up an unfinished capture (what it holds is released). */
  cancel(): void;
}

/** A MsgSnap whose data must be read from the snapshot file before it can be sent. */
function snapshotOnDisk(m: Message): boolean {
  return m.type === MessageType.MsgSnap && m.snapshot?.data === SNAPSHOT_DATA_ON_DISK;
}

function appliedBytes(rd: Ready): number {
  let n = 0;
  for (const e of rd.committedEntries) n += e.data.byteLength;
  return n;
}

/** A snapshot being restored in steps: step() until it returns true, then finish() puts the state in place. */
export interface RestoreSteps {
  step(budget: number): boolean;
  finish(): void;
}

/** Revisions encoded or decoded per turn of the event loop while a snapshot is captured or restored (a few ms of work). */
export const SNAPSHOT_REVISIONS_PER_STEP = 2000;
/**
 * Bytes a streamed snapshot capture encodes before it hands them to the disk (and the event loop turns): one
 * buffer of this size is reused, where a capture held whole took a fresh buffer of the state's size (first
 * touching 50-130 MB of new memory at once, on every member at the same index, stalled a 3-member cluster).
 */
export const SNAPSHOT_CHUNK_BYTES = 1 << 20;

/**
 * Runs a capture to the end, one step per turn of the event loop, so heartbeats, client calls and disk
 * completions go on meanwhile. Undefined if `cancelled` turns true first.
 */
export async function finishInSteps(capture: SnapshotSteps, cancelled: () => boolean = () => false, revisionsPerStep = SNAPSHOT_REVISIONS_PER_STEP): Promise<Uint8Array | undefined> {
  if (await stepThrough((n) => capture.step(n), cancelled, revisionsPerStep)) return capture.finish();
  capture.cancel();
  return undefined;
}

/** An append with no entries: it tells a follower the commit index (or probes its log). */
const onlyCommitIndex = (m: Message): boolean => m.type === MessageType.MsgApp && m.entries.length === 0;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** step(revisionsPerStep) once per turn of the event loop until it returns true (then true) or cancelled() (then false). */
async function stepThrough(step: (budget: number) => boolean, cancelled: () => boolean, revisionsPerStep: number): Promise<boolean> {
  while (!step(revisionsPerStep)) {
    await nextTurn();
    if (cancelled()) return false;
  }
  return true;
}

/** A conf change's context: the proposal's request ID, then the application's bytes. */
const CONF_CONTEXT_HEADER_BYTES = 8;

const ENVELOPE_HEADER_BYTES = 9;
/** Bursts of at least twice this many proposals are proposed in two halves (see flushInputs). */
const MIN_SPLIT_PROPOSALS = 32;
/**
 * Committed entries handed out per Ready, in bytes (etcd's MaxCommittedSizePerReady, which defaults to its 1 MiB
 * MaxSizePerMsg). A member far behind (after a snapshot, a pause, a restart) applies its backlog in slices of this.
 */
const MAX_COMMITTED_BYTES_PER_READY = 1024 * 1024;
/**
 * A lone voter fdatasyncs on the event loop's thread (see RaftPersistence) once this many writes in a row carried at
 * most SYNC_HERE_MAX_ENTRIES entries each: few clients, all waiting on the write, nothing to overlap it with. With
 * 1 client that gave 11-15% more puts/s, with 4 clients 4%. Batch size alone is the wrong test: with 64 clients the
 * first write after a quiet moment is small too, and syncing it here kept the loop from reading the other 63 calls
 * meanwhile (8% fewer puts/s); a run of small writes never happens there.
 */
const SYNC_HERE_MAX_ENTRIES = 4;
const SYNC_HERE_AFTER_SMALL_WRITES = 8;
const SYNC_HERE = { syncHere: true };
/** After applying at least this much in one Ready, the drain loop lets the event loop turn before the next one. */
const YIELD_AFTER_APPLIED_BYTES = MAX_COMMITTED_BYTES_PER_READY / 2;

interface PendingProposal {
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
  /** performance.now() past which the proposal fails with etcd's timeout (checked on every tick, see expireProposals) */
  deadline: number;
}

interface ReadRound {
  ctx: bigint;
  /** An unanswered round fails its reads with etcd's timeout (the request or answer was lost) and frees the way. */
  timer?: NodeJS.Timeout;
  waiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
  /** known once Raft answers the round: serve when applied reaches it. */
  index?: number;
}

/**
 * Drives a RawNode for one member: ticks on a timer, turns each Ready into "persist, send, apply, advance"
 * and resolves each proposal when its entry is applied here. Proposals made while a Ready is being persisted
 * wait in Raft's log and go out together in the next Ready, so one fsync commits many of them.
 */
export class RaftMember implements Proposer {
  readonly node: RawNode;
  private readonly storage: MemoryStorage;
  private readonly pending = new Map<bigint, PendingProposal>();
  private nextRequestId: bigint;
  private queued: Uint8Array[] = [];
  private queuedIds: bigint[] = [];
  private readWaiters: ReadRound['waiters'] = [];
  private readRounds: ReadRound[] = [];
  private nextReadCtx = 1n;
  private appliedIndexValue: number;
  private lastSnapshotIndex: number;
  private confStateValue: ConfState;
  private leaderId: NodeId = None;
  private termValue = 0;
  private ticker?: NodeJS.Timeout;
  private draining = false;
  private drainAgain = false;
  private scheduled = false;
  private stopped = false;
  private failure?: Error;
  private snapshotInFlight?: Promise<void>;
  /** a snapshot being read back from disk to be sent (see sendSnapshotFromDisk) */
  private snapshotRead?: { index: number; term: number; data: Promise<Uint8Array> };
  private whenApplied?: { index: number; resolve: () => void };
  /** writes of at most SYNC_HERE_MAX_ENTRIES entries since the last bigger one */
  private smallWritesInARow = 0;

  constructor(private readonly opts: RaftMemberOptions) {
    this.storage = opts.storage;
    const snap = this.storage.snapshot();
    this.appliedIndexValue = snap.metadata.index;
    this.lastSnapshotIndex = snap.metadata.index;
    this.confStateValue = snap.metadata.confState;
    // Request IDs start from the clock's low bits so a restarted member never reuses an ID still in the log.
    this.nextRequestId = (opts.id & 0xffffn) << 48n | (BigInt(Date.now()) & 0xffffffffffn) << 8n;
    this.node = new RawNode({
      id: opts.id,
      electionTick: opts.electionTicks,
      heartbeatTick: opts.heartbeatTicks ?? 1,
      storage: this.storage,
      applied: snap.metadata.index,
      checkQuorum: true,
      preVote: true,
      maxSizePerMsg: 1024 * 1024,
      maxCommittedSizePerReady: MAX_COMMITTED_BYTES_PER_READY,
      maxInflightMsgs: 512,
      asyncLeaderPersist: true,
      rand: opts.rand,
    });
  }

  /** Starts ticking; resolves once everything the log had committed before the start is applied. */
  start(): Promise<void> {
    const recoveredCommit = this.storage.hardStateSnapshot().commit;
    const caughtUp = new Promise<void>((resolve) => {
      this.whenApplied = { index: recoveredCommit, resolve };
    });
    const voters = this.confStateValue.voters;
    // A lone voter need not wait out an election timeout to lead.
    if (voters.length === 1 && voters[0] === this.opts.id) this.node.campaign();
    this.ticker = setInterval(() => {
      this.expireProposals(performance.now());
      this.node.tick();
      this.schedule();
    }, this.opts.tickMs);
    this.schedule();
    this.checkCaughtUp();
    return caughtUp;
  }

  private checkCaughtUp(): void {
    if (this.whenApplied && this.appliedIndexValue >= this.whenApplied.index) {
      this.whenApplied.resolve();
      this.whenApplied = undefined;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.whenApplied?.resolve();
    this.failAll(Errors.stopped());
    // A snapshot being written finishes (and releases old files) before the WAL closes under it.
    await this.snapshotInFlight;
  }

  get term(): number {
    return this.termValue;
  }

  get leader(): bigint {
    return this.leaderId;
  }

  get isLeader(): boolean {
    return this.leaderId === this.opts.id;
  }

  get committedIndex(): number {
    return this.node.raft.raftLog.committed;
  }

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  get confState(): ConfState {
    return this.confStateValue;
  }

  /** Hands a message from a peer to Raft. */
  step(msg: Message): void {
    if (this.stopped) return;
    try {
      this.node.step(msg);
    } catch (err) {
      this.opts.log?.(`dropped raft message ${msg.type} from ${msg.from.toString(16)}: ${(err as Error).message}`);
    }
    this.schedule();
  }

  /** Replicates `payload` as an entry of `kind`; resolves with the state machine's result once applied here. */
  propose(kind: number, payload: Buffer): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.stopped) return Promise.reject(Errors.stopped());
    const id = ++this.nextRequestId;
    const data = Buffer.allocUnsafe(ENVELOPE_HEADER_BYTES + payload.length);
    data[0] = kind;
    data.writeBigUInt64BE(id, 1);
    payload.copy(data, ENVELOPE_HEADER_BYTES);
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadline: performance.now() + this.opts.requestTimeoutMs });
      this.queued.push(data);
      this.queuedIds.push(id);
      this.schedule();
    });
  }

  /**
   * Proposes a membership change; resolves once this member applied it, or rejects with the state machine's
   * refusal (etcd's configure()). Raft allows one pending change at a time.
   */
  proposeConfChange(type: ConfChangeType, nodeId: bigint, context: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.stopped) return Promise.reject(Errors.stopped());
    const id = ++this.nextRequestId;
    const ctx = Buffer.allocUnsafe(CONF_CONTEXT_HEADER_BYTES + context.length);
    ctx.writeBigUInt64BE(id, 0);
    context.copy(ctx, CONF_CONTEXT_HEADER_BYTES);
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve: () => resolve(), reject, deadline: performance.now() + this.opts.requestTimeoutMs });
      try {
        this.node.proposeConfChange({ type, nodeId, context: ctx });
      } catch (err) {
        // A change already pending: etcd's raft drops the proposal and the caller times out; say so at once.
        this.settle(id, undefined, err instanceof ProposalDroppedError && this.leaderId !== None ? Errors.timeout() : this.mapProposalError(err));
        return;
      }
      this.schedule();
    });
  }

  /** Asks the leader to hand leadership to `target` (etcd's MoveLeader). */
  transferLeader(target: bigint): void {
    this.node.transferLeader(target);
    this.schedule();
  }

  /** On the leader: how far each member's log matches (raft's progress); undefined on a follower. */
  progress(): Map<bigint, number> | undefined {
    if (!this.isLeader) return undefined;
    const out = new Map<bigint, number>();
    for (const [id, pr] of this.node.raft.prs.progress) out.set(id, pr.match);
    return out;
  }

  get isLearner(): boolean {
    return this.confStateValue.learners.includes(this.opts.id);
  }

  get memberId(): bigint {
    return this.opts.id;
  }

  /** Linearizable read barrier: one ReadIndex round serves every read that arrived before it started. */
  readBarrier(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.stopped) return Promise.reject(Errors.stopped());
    return new Promise<void>((resolve, reject) => {
      this.readWaiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private flushInputs(): void {
    if (this.queued.length > 0) {
      // A burst is proposed in two halves (only bursts of 2 x MIN_SPLIT_PROPOSALS or more): the first half's
      // answers are computed and sent while the second half is written, so the clients work on them meanwhile
      // instead of the server and its clients taking turns over one big batch. The rest is proposed on the next
      // turn of the drain loop, at most one write later.
      const waiting = this.queued.length;
      const take = waiting < 2 * MIN_SPLIT_PROPOSALS ? waiting : Math.ceil(waiting / 2);
      const batch = this.queued.slice(0, take);
      const ids = this.queuedIds.slice(0, take);
      this.queued = this.queued.slice(take);
      this.queuedIds = this.queuedIds.slice(take);
      try {
        this.node.proposeBatch(batch);
      } catch (err) {
        const mapped = this.mapProposalError(err);
        for (const id of ids) this.settle(id, undefined, mapped);
      }
    }
    if (this.readWaiters.length > 0 && this.readRounds.every((r) => r.index !== undefined)) {
      const round: ReadRound = { ctx: this.nextReadCtx++, waiters: this.readWaiters };
      this.readWaiters = [];
      // The leader keys pending read rounds by their context, so it must be unique across members: this
      // member's ID, then its round counter (rounds of different followers would otherwise collide).
      const ctx = Buffer.alloc(16);
      ctx.writeBigUInt64BE(BigInt.asUintN(64, this.opts.id), 0);
      ctx.writeBigUInt64BE(round.ctx, 8);
      try {
        this.node.readIndex(ctx);
        this.readRounds.push(round);
        round.timer = setTimeout(() => this.expireReadRound(round), this.opts.requestTimeoutMs);
        round.timer.unref?.();
      } catch (err) {
        const mapped = this.mapProposalError(err);
        for (const w of round.waiters) w.reject(mapped);
      }
    }
  }

  private async drain(): Promise<void> {
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = true;
    try {
      do {
        this.drainAgain = false;
        this.flushInputs();
        while (!this.stopped && this.node.hasReady()) {
          // ready() hands out its own copy of the unstable entries, so steps made while this Ready is being
          // persisted cannot slip entries into storage that never reached the WAL (cluster-member.spec.ts).
          const rd = this.node.ready();
          await this.handleReady(rd);
          this.flushInputs();
          // A backlog comes in slices (MAX_COMMITTED_BYTES_PER_READY); between big ones, client calls, peer messages
          // and timers get their turn (a Ready with nothing to write would otherwise chain the next at once).
          if (appliedBytes(rd) >= YIELD_AFTER_APPLIED_BYTES) await nextTurn();
        }
      } while (this.drainAgain && !this.stopped);
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.draining = false;
    }
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState) this.onSoftState(rd.softState.lead, rd.softState.raftState);
    if (rd.hardState) this.termValue = rd.hardState.term;
    // 0. a leader's appends and heartbeats leave at once: followers write while the leader writes. Appends that
    // only carry the new commit index leave one turn later, behind the answers this Ready's apply gives: each send
    // wakes a follower, which on a busy machine can take the CPU from this thread before the client hears back.
    let messages = rd.messages;
    if (messages.length > 0 && this.node.raft.state === StateType.Leader) {
      const early = messages.filter((m) => leaderMaySendBeforePersist(m.type));
      if (early.length > 0) {
        const later = rd.committedEntries.length > 0 ? early.filter(onlyCommitIndex) : [];
        const now = later.length === 0 ? early : early.filter((m) => !onlyCommitIndex(m));
        if (now.length > 0) this.send(now);
        if (later.length > 0) setImmediate(() => !this.stopped && this.send(later));
        messages = early.length === messages.length ? [] : messages.filter((m) => !leaderMaySendBeforePersist(m.type));
      }
    }
    // On the leader, entries committed before this Ready are already durable on a quorum, so they are applied
    // while this Ready's own entries are written: answers are computed and sent while the disk works (etcd's apply
    // loop runs beside its WAL save the same way). The save is started first so its write leaves before the
    // answers. A follower keeps persist, acknowledge, then apply: applying first would hold back the
    // acknowledgement the leader's commit waits for. A snapshot, or a configuration change (raft must see it
    // applied in order with persistence), keeps the strict order too.
    const applyDuringSave = this.node.raft.state === StateType.Leader && !rd.snapshot && rd.committedEntries.every((e) => e.type !== EntryType.ConfChange);
    // 1. persist: nothing else is sent before it is durable
    if (rd.snapshot) {
      await this.opts.persistence?.saveSnapshot(rd.snapshot);
      this.storage.applySnapshot(this.keptInMemory(rd.snapshot));
    }
    let saving: Promise<void> | undefined;
    if (rd.entries.length > 0 || (rd.hardState && (rd.mustSync || rd.snapshot))) {
      // Only a lone voter: a leader of others reads their acknowledgements meanwhile (and a toggled A/B found no
      // gain on followers).
      this.smallWritesInARow = rd.entries.length <= SYNC_HERE_MAX_ENTRIES ? this.smallWritesInARow + 1 : 0;
      const syncHere = this.smallWritesInARow >= SYNC_HERE_AFTER_SMALL_WRITES && this.confStateValue.voters.length === 1;
      saving = this.opts.persistence?.save(rd.hardState, rd.entries, syncHere ? SYNC_HERE : undefined);
      saving?.catch(() => undefined); // awaited below; this only keeps a failure during the apply from going unhandled
    } else if (rd.hardState && this.opts.persistence) {
      // Only the commit index moved: written in order behind earlier records but not awaited (nor fdatasynced,
      // see Wal), as etcd does; after a crash the commit index is learned again from the log.
      this.opts.persistence.save(rd.hardState, rd.entries).catch((err: Error) => this.fail(err));
    }
    if (applyDuringSave) for (const e of rd.committedEntries) this.applyEntry(e);
    if (saving) await saving;
    if (rd.entries.length > 0) this.storage.append(rd.entries);
    if (rd.hardState) this.storage.setHardState(rd.hardState);
    // 2. send
    if (messages.length > 0) this.send(messages);
    // 3. apply
    if (rd.snapshot) await this.installSnapshot(rd.snapshot);
    if (this.stopped) return;
    if (!applyDuringSave) for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) {
      const ctx = Buffer.from(rs.requestCtx);
      if (ctx.length !== 16 || ctx.readBigUInt64BE(0) !== BigInt.asUintN(64, this.opts.id)) continue;
      const round = this.readRounds.find((r) => r.ctx === ctx.readBigUInt64BE(8));
      if (round && round.index === undefined) {
        round.index = rs.index;
        clearTimeout(round.timer);
      }
    }
    this.node.advance(rd);
    this.serveReads();
    this.checkCaughtUp();
    this.maybeSnapshot();
  }

  private onSoftState(lead: NodeId, state: StateType): void {
    if (lead !== this.leaderId) {
      const hadLeader = this.leaderId !== None;
      this.leaderId = lead;
      this.opts.onLeaderChange?.(lead, lead === this.opts.id);
      // Reads waiting on a round the old leader will never answer: fail them so clients retry.
      if (hadLeader) {
        for (const round of this.readRounds.filter((r) => r.index === undefined)) {
          clearTimeout(round.timer);
          for (const w of round.waiters) w.reject(Errors.leaderChanged());
        }
        this.readRounds = this.readRounds.filter((r) => r.index !== undefined);
      }
    }
    void state;
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.appliedIndexValue) return;
    this.appliedIndexValue = e.index;
    if (e.type === EntryType.ConfChange) {
      this.applyConfChangeEntry(decodeConfChange(e.data));
      return;
    }
    if (e.data.length === 0) return; // a new leader's empty entry
    const data = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
    const id = data.readBigUInt64BE(1);
    let result: unknown;
    let error: Error | undefined;
    try {
      result = this.opts.stateMachine.apply(data[0], data.subarray(ENVELOPE_HEADER_BYTES), e.index);
    } catch (err) {
      // Deterministic refusals (unknown lease, compacted...) are answers, identical on every member.
      if (!(err instanceof EtcdError)) throw err;
      error = err;
    }
    this.settle(id, result, error);
  }

  private applyConfChangeEntry(cc: ConfChange): void {
    const raw = cc.context ? Buffer.from(cc.context) : Buffer.alloc(0);
    const id = raw.length >= CONF_CONTEXT_HEADER_BYTES ? raw.readBigUInt64BE(0) : 0n;
    const context = raw.subarray(CONF_CONTEXT_HEADER_BYTES);
    try {
      this.opts.stateMachine.applyConfChange?.(cc, context);
    } catch (err) {
      // Refused (member not found, peer URLs taken...): raft leaves its configuration as it was (etcd applies
      // the change with node ID None, which changes nothing).
      if (!(err instanceof EtcdError)) throw err;
      this.settle(id, undefined, err);
      return;
    }
    this.confStateValue = this.node.applyConfChange(cc);
    this.opts.onConfChange?.(cc, this.confStateValue, context);
    this.settle(id, undefined, undefined);
  }

  /**
   * Fails proposals past the request timeout with etcd's timeout. One sweep per tick instead of a timer per
   * proposal (a timer to arm and clear on every write). All proposals share one timeout and the Map keeps insertion
   * order, so the expired ones come first.
   */
  private expireProposals(now: number): void {
    for (const [id, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(id);
      p.reject(Errors.timeout());
    }
  }

  private settle(id: bigint, result: unknown, error: Error | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (error) p.reject(error);
    else p.resolve(result);
  }

  /** What the log storage keeps of a snapshot that has been saved: only its metadata when it can be read back. */
  private keptInMemory(snap: Snapshot): Snapshot {
    return this.opts.persistence?.loadSnapshotData ? { metadata: snap.metadata, data: SNAPSHOT_DATA_ON_DISK } : snap;
  }

  /** To the transport; a MsgSnap whose data stayed on disk goes once the data has been read back. */
  private send(messages: Message[]): void {
    const transport = this.opts.transport;
    if (!transport) return;
    if (!messages.some(snapshotOnDisk)) {
      transport.send(messages);
      return;
    }
    const rest = messages.filter((m) => !snapshotOnDisk(m));
    if (rest.length > 0) transport.send(rest);
    for (const m of messages) if (snapshotOnDisk(m)) void this.sendSnapshotFromDisk(m, m.snapshot!.metadata);
  }

  private async sendSnapshotFromDisk(m: Message, metadata: SnapshotMetadata): Promise<void> {
    try {
      // followers that need the same snapshot at the same time share one read
      let read = this.snapshotRead;
      if (!read || read.index !== metadata.index || read.term !== metadata.term) {
        const started = { index: metadata.index, term: metadata.term, data: this.opts.persistence!.loadSnapshotData!(metadata) };
        this.snapshotRead = read = started;
        void started.data.catch(() => undefined).finally(() => {
          if (this.snapshotRead === started) this.snapshotRead = undefined;
        });
      }
      const data = await read.data;
      if (!this.stopped) this.opts.transport?.send([{ ...m, snapshot: { metadata, data } }]);
    } catch (err) {
      if (this.stopped) return;
      this.opts.log?.(`could not read the snapshot at index ${metadata.index} to send it to ${m.to.toString(16)}: ${(err as Error).message}`);
      this.node.reportSnapshot(m.to, SnapshotStatus.Failure); // raft tries again later, with its newest snapshot
      this.schedule();
    }
  }

  /**
   * Replaces the state with a leader's snapshot. A large one is read in steps, so this member keeps ticking, reading
   * what its peers send and answering serializable reads (from its state before the snapshot) meanwhile; the Ready
   * loop waits for it, so nothing is applied on top of a half-restored state.
   */
  private async installSnapshot(snap: Snapshot): Promise<void> {
    const machine = this.opts.stateMachine;
    if (machine.restoreInSteps) {
      const steps = machine.restoreInSteps(snap.data);
      if (!(await stepThrough((n) => steps.step(n), () => this.stopped, SNAPSHOT_REVISIONS_PER_STEP))) return;
      steps.finish();
    } else {
      machine.restore(snap.data);
    }
    this.appliedIndexValue = snap.metadata.index;
    this.confStateValue = snap.metadata.confState;
    this.lastSnapshotIndex = snap.metadata.index;
    this.opts.log?.(`installed the snapshot at index ${snap.metadata.index} from the leader`);
    this.opts.onSnapshotInstalled?.(this.confStateValue);
  }

  private expireReadRound(round: ReadRound): void {
    if (round.index !== undefined || !this.readRounds.includes(round)) return;
    this.readRounds = this.readRounds.filter((r) => r !== round);
    for (const w of round.waiters) w.reject(Errors.timeout());
    this.schedule();
  }

  private serveReads(): void {
    while (this.readRounds.length > 0) {
      const round = this.readRounds[0];
      if (round.index === undefined || round.index > this.appliedIndexValue) return;
      this.readRounds.shift();
      for (const w of round.waiters) w.resolve();
    }
  }

  /**
   * Every --snapshot-count applied entries: capture the state at the applied index now (it must match that
   * index exactly), then write it out in the background so the apply loop and new proposals never wait on it.
   * Only once it is durable is the in-memory log compacted (keeping some entries for slow followers).
   */
  private maybeSnapshot(): void {
    if (this.snapshotInFlight || this.appliedIndexValue - this.lastSnapshotIndex < this.opts.snapshotCount) return;
    // The state is taken at this applied index: small parts at once, the keyspace in steps while the member
    // goes on applying (a million keys took seconds to encode, long enough to miss heartbeats).
    const index = this.appliedIndexValue;
    const metadata: SnapshotMetadata = { index, term: this.storage.term(index), confState: this.confStateValue };
    const persistence = this.opts.persistence;
    const machine = this.opts.stateMachine;
    // written to disk as it is encoded when the snapshot can be read back from there for a follower
    const streamed = !!(persistence?.createSnapshot && persistence.loadSnapshotData && machine.captureSnapshot);
    const capture = machine.captureSnapshot?.(streamed ? { chunkBytes: SNAPSHOT_CHUNK_BYTES } : undefined);
    const whole = capture ? undefined : machine.snapshot();
    this.lastSnapshotIndex = index;
    // stopped, failed, or a newer snapshot installed from the leader meanwhile: this one is not needed
    const unneeded = () => this.stopped || !!this.failure || index <= this.storage.snapshot().metadata.index;
    this.snapshotInFlight = (async () => {
      try {
        let data: Uint8Array | undefined;
        if (streamed) {
          if (!(await this.streamSnapshot(capture!, metadata, unneeded))) return;
          data = SNAPSHOT_DATA_ON_DISK;
        } else {
          data = whole ?? (await finishInSteps(capture!, () => this.stopped || !!this.failure));
          if (!data || unneeded()) return;
          const snap: Snapshot = { data, metadata };
          await persistence?.saveSnapshot(snap);
          data = this.keptInMemory(snap).data;
        }
        if (index <= this.storage.snapshot().metadata.index) return; // a leader's snapshot was installed meanwhile
        this.storage.createSnapshot(index, metadata.confState, data);
        const keep = this.opts.catchUpEntries ?? 5000;
        if (index - keep > this.storage.firstIndex()) this.storage.compact(index - keep);
      } catch (err) {
        this.fail(err as Error);
      } finally {
        this.snapshotInFlight = undefined;
      }
    })();
  }

  /**
   * Encodes a chunk, writes it, encodes the next into the same buffer: the event loop turns while each chunk is
   * written. False if the snapshot became unneeded on the way (then nothing of it is left on disk).
   */
  private async streamSnapshot(capture: SnapshotSteps, metadata: SnapshotMetadata, unneeded: () => boolean): Promise<boolean> {
    const sink = await this.opts.persistence!.createSnapshot!(metadata);
    try {
      for (;;) {
        const done = capture.step(SNAPSHOT_REVISIONS_PER_STEP);
        await sink.write(capture.take());
        if (done) break;
        if (unneeded()) {
          capture.cancel();
          await sink.abort();
          return false;
        }
      }
    } catch (err) {
      capture.cancel();
      await sink.abort();
      throw err;
    }
    if (unneeded()) {
      await sink.abort();
      return false;
    }
    await sink.commit();
    return true;
  }

  private mapProposalError(err: unknown): Error {
    if (err instanceof NoLeaderError) return Errors.noLeader();
    if (err instanceof ProposalDroppedError) return this.leaderId === None ? Errors.noLeader() : Errors.tooManyRequests();
    return err as Error;
  }

  /** A persistence failure (fsync error, full disk) stops the member accepting work: never pretend. */
  private fail(err: Error): void {
    this.opts.log?.(`raft member stopped accepting writes: ${err.message}`);
    this.failure = new EtcdError(Errors.stopped().code, `etcdserver: ${err.message}`);
    this.failAll(this.failure);
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(err);
    }
    for (const round of this.readRounds) {
      clearTimeout(round.timer);
      for (const w of round.waiters) w.reject(err);
    }
    for (const w of this.readWaiters) w.reject(err);
    this.readRounds = [];
    this.readWaiters = [];
  }
}
