/**
 * Plain data types shared by the raft state machine and its driver.
 *
 * Node IDs are `bigint`: etcd member IDs are random 64-bit values that do not fit in a JS number.
 * `None` (0n) means "no node" (no leader known, no vote cast).
 * Terms and indexes are plain numbers: 2^53 is far beyond any realistic log.
 */
export type NodeId = bigint;
export const None: NodeId = 0n;

export enum EntryType {
  Normal = 0,
  /** data is `encodeConfChange(cc)`; the app calls `RawNode.applyConfChange` when it applies it. */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque to raft. Never mutated by raft; may be shared between log, messages and Ready. */
  data: Uint8Array;
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  data: Uint8Array;
  metadata: SnapshotMetadata;
}

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  UpdateNode = 2,
  AddLearnerNode = 3,
}

export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to raft (etcd puts the member's URLs here). */
  context?: Uint8Array;
}

export enum MessageType {
  // Local messages (never sent over the network).
  MsgHup = 'MsgHup',
  MsgBeat = 'MsgBeat',
  MsgCheckQuorum = 'MsgCheckQuorum',
  MsgUnreachable = 'MsgUnreachable',
  MsgSnapStatus = 'MsgSnapStatus',
  // Network messages (MsgProp / MsgReadIndex / MsgTransferLeader may also be forwarded to the leader).
  MsgProp = 'MsgProp',
  MsgApp = 'MsgApp',
  MsgAppResp = 'MsgAppResp',
  MsgVote = 'MsgVote',
  MsgVoteResp = 'MsgVoteResp',
  MsgPreVote = 'MsgPreVote',
  MsgPreVoteResp = 'MsgPreVoteResp',
  MsgSnap = 'MsgSnap',
  MsgHeartbeat = 'MsgHeartbeat',
  MsgHeartbeatResp = 'MsgHeartbeatResp',
  MsgTransferLeader = 'MsgTransferLeader',
  MsgTimeoutNow = 'MsgTimeoutNow',
  MsgReadIndex = 'MsgReadIndex',
  MsgReadIndexResp = 'MsgReadIndexResp',
}

/**
 * A raft message: a plain data object (the transport encodes it). Fields that a given type does not use
 * are 0 / false / empty. `entries` arrays and their entries are shared, never copy-on-write: do not mutate.
 */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** MsgApp: term of entry `index`; MsgVote: candidate's last term; MsgAppResp reject: hint term. */
  logTerm: number;
  /** MsgApp: index preceding `entries`; MsgAppResp: last matched index (or the rejected index); MsgVote: last index. */
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  /** MsgAppResp reject: the follower's guess of the highest index that may match (conflict hint). */
  rejectHint: number;
  /** MsgHeartbeat(Resp): read-index round context; MsgVote: campaign-transfer marker. */
  context?: Uint8Array;
}

export enum StateType {
  Follower = 'Follower',
  Candidate = 'Candidate',
  Leader = 'Leader',
  PreCandidate = 'PreCandidate',
}

export interface SoftState {
  lead: NodeId;
  raftState: StateType;
}

export interface ReadState {
  /** Serve the read once the local applied index reaches this. */
  index: number;
  /** The context passed to readIndex(). */
  requestCtx: Uint8Array;
}

export enum ReadOnlyOption {
  /** Confirm leadership with a heartbeat round per batch of reads (linearizable, default). */
  Safe = 'Safe',
  /** Rely on the leader lease (requires CheckQuorum; unsafe under clock drift). */
  LeaseBased = 'LeaseBased',
}

export enum SnapshotStatus {
  Finish = 'Finish',
  Failure = 'Failure',
}

/** Bugs that can be planted to prove the simulator detects them. Never set outside tests. */
export interface PlantedBugs {
  /** Commit any entry a quorum holds, even from an older term (the figure-8 mistake). */
  commitOldTermByCounting?: boolean;
  /** Grant votes without checking that the candidate's log is at least as up to date. */
  voteWithoutLogCheck?: boolean;
  /** Serve ReadIndex on the leader without a heartbeat round confirming leadership. */
  readWithoutQuorumCheck?: boolean;
}

export function emptyMessage(type: MessageType, to: NodeId = None): Message {
  return { type, to, from: None, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
}

export const emptyHardState = (): HardState => ({ term: 0, vote: None, commit: 0 });

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === None && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function emptySnapshot(): Snapshot {
  return { data: new Uint8Array(0), metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } } };
}

/** Approximate encoded size of an entry; used for message and flow-control byte limits. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 16;
}

export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgCheckQuorum ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus
  );
}

/**
 * With asyncLeaderPersist, what a leader may send before its own copy of the Ready is durable: replication and
 * leadership traffic that promises nothing about its disk (the leader counts its own log toward commit only once
 * persisted). Votes and append acknowledgements always wait for the disk.
 */
export function leaderMaySendBeforePersist(t: MessageType): boolean {
  return (
    t === MessageType.MsgApp ||
    t === MessageType.MsgHeartbeat ||
    t === MessageType.MsgSnap ||
    t === MessageType.MsgTimeoutNow ||
    t === MessageType.MsgReadIndexResp
  );
}

export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

/** Conf changes travel as entry data; this is a small self-describing encoding (JSON, ids as decimal strings). */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const json = JSON.stringify({
    t: cc.type,
    n: cc.nodeId.toString(),
    c: cc.context ? Buffer.from(cc.context).toString('base64') : undefined,
  });
  return new TextEncoder().encode(json);
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const o = JSON.parse(new TextDecoder().decode(data)) as { t: ConfChangeType; n: string; c?: string };
  const cc: ConfChange = { type: o.t, nodeId: BigInt(o.n) };
  if (o.c !== undefined) cc.context = new Uint8Array(Buffer.from(o.c, 'base64'));
  return cc;
}
