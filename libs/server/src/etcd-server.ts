import type { NestcdConfig } from '@nestcd/config';
import { Errors } from '@nestcd/errors';
import {
  Command, CommandResult, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
  LeaseGrantResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, MvccStore, PutRequest, PutResponse,
  RangeRequest, RangeResponse, TxnRequest, TxnResponse, encodeCommand,
} from '@nestcd/mvcc';
import { ConfChangeType } from '@nestcd/raft';
import { V2Command, V2Error, V2Event, V2Store } from '@nestcd/v2store';
import { IdGenerator, memberIdOf } from './ids';
import { ServerMetrics } from './metrics';
import { finishInSteps } from './raft-member';
import {
  AlarmAction, AlarmMember, AlarmType, encodeAlarmRequest, encodeConfChangeContext, EntryKind, Member, MemberState,
  V2ApplyResult,
} from './member-state';

export const SERVER_VERSION = '0.1.0';
/** The etcd cluster version whose API nestcd speaks. */
export const CLUSTER_VERSION = '3.4.0';
/** etcd's MaxLeaseTTL. */
const DATA_FILE_BASE_BYTES = 16 * 1024;
/** etcd's default --quota-backend-bytes (0 means this). */
const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
/** What etcd's quota charges a lease grant. */
const LEASE_COST_BYTES = 64;
export const MAX_LEASE_TTL = 9_000_000_000;
/** How often the leader looks for expired v2 keys (etcd's SYNC ticks every 500 ms). */
const V2_SYNC_INTERVAL_MS = 500;

export type { Member } from './member-state';

export interface Header {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: number;
}

export interface Status {
  version: string;
  dbSize: number;
  dbSizeInUse: number;
  leader: bigint;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  isLearner: boolean;
  errors: string[];
}

/**
 * How a command reaches the state machine. The single-node proposer applies at once; the replicated one
 * (cluster issue) logs it through Raft and resolves when this member applies it. Everything above this seam
 * is the same on one node and on a cluster.
 */
export interface Proposer {
  /** Replicates an entry of `kind`; resolves with the state machine's result once applied on this member. */
  propose(kind: number, payload: Buffer): Promise<unknown>;
  /** Resolves when every write committed before the call is applied here (ReadIndex on a cluster). */
  readBarrier(): Promise<void>;
  readonly term: number;
  readonly leader: bigint;
  readonly isLeader: boolean;
  readonly committedIndex: number;
  readonly appliedIndex: number;
  /** Resolves once the log committed before the start is applied. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What runtime membership changes need from the replicated proposer (ClusterRaftMember). */
export interface MembershipProposer {
  proposeConfChange(type: ConfChangeType, nodeId: bigint, context: Buffer): Promise<void>;
  transferLeader(target: bigint): void;
  /** On the leader: each member's matched log index; undefined on a follower. */
  progress(): Map<bigint, number> | undefined;
  /** Since when this member has been connected to `id`; undefined while not connected. */
  activeSince(id: bigint): number | undefined;
  readonly isLearner: boolean;
}

/** etcd's HealthInterval: a peer counts as connected for a reconfiguration once connected this long. */
const HEALTH_INTERVAL_MS = 5000;
/** etcd promotes a learner only once its log matches at least this share of the leader's. */
const LEARNER_READY_PERCENT = 0.9;

/** What a member is made of once its data dir is opened (see openMember). */
export interface MemberParts {
  state: MemberState;
  proposer: Proposer;
  memberId: bigint;
  clusterId: bigint;
  metrics?: ServerMetrics;
  /** Releases what the member holds open (the WAL) once it has stopped. */
  onStop?: () => Promise<void>;
  /** On a cluster: renews a lease on the leader's lessor (a follower's keep-alive); resolves with the TTL. */
  forwardLeaseRenew?: (leader: bigint, id: bigint) => Promise<number>;
  /** On a cluster: membership changes and leader transfer. */
  membership?: MembershipProposer;
  /** On a cluster: a follower asks the leader's lessor for a lease's remaining TTL. */
  forwardLeaseTimeToLive?: (leader: bigint, id: bigint, keys: boolean) => Promise<LeaseTimeToLiveResponse>;
  /** On a cluster: a follower hands MemberPromote to the leader (only it knows whether the learner caught up). */
  forwardPromote?: (leader: bigint, id: bigint) => Promise<void>;
}

export interface EtcdServerOptions {
  clock?: () => number;
  /** how often to look for expired leases, ms. */
  leaseCheckIntervalMs?: number;
}

/**
 * The etcd server's request surface, independent of the wire: gRPC and HTTP handlers call it, it turns
 * writes into commands for the proposer and serves reads from the store.
 */
export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly state: MemberState;
  readonly proposer: Proposer;
  readonly metrics: ServerMetrics;
  /** etcd's db size only shrinks on defragment; this is the high-water mark the quota is checked against. */
  private allocatedBytes = 0;
  private readonly quotaBytes: number;
  private readonly ids: IdGenerator;
  private leaseTimer?: NodeJS.Timeout;
  private v2ExpiryTimer?: NodeJS.Timeout;
  private v2Expiring = false;
  private revoking = new Set<bigint>();
  private stopped = false;

  private readonly onStop?: () => Promise<void>;
  private readonly forwardLeaseRenew?: MemberParts['forwardLeaseRenew'];
  private readonly membership?: MembershipProposer;
  private readonly forwardPromote?: MemberParts['forwardPromote'];
  private readonly forwardLeaseTimeToLive?: MemberParts['forwardLeaseTimeToLive'];

  constructor(readonly config: NestcdConfig, parts: MemberParts, private readonly options: EtcdServerOptions = {}) {
    this.onStop = parts.onStop;
    this.forwardLeaseRenew = parts.forwardLeaseRenew;
    this.membership = parts.membership;
    this.forwardPromote = parts.forwardPromote;
    this.forwardLeaseTimeToLive = parts.forwardLeaseTimeToLive;
    this.metrics = parts.metrics ?? new ServerMetrics();
    this.metrics.observe(this);
    this.state = parts.state;
    this.quotaBytes = config.quotaBackendBytes > 0 ? config.quotaBackendBytes : DEFAULT_QUOTA_BYTES;
    this.proposer = parts.proposer;
    this.memberId = parts.memberId;
    this.clusterId = parts.clusterId;
    this.ids = new IdGenerator(this.memberId, (options.clock ?? Date.now)());
  }

  /** Starts the member; resolves once it has replayed its log, so it never serves older state than it had. */
  async start(): Promise<void> {
    await this.proposer.start();
    const every = this.options.leaseCheckIntervalMs ?? 500;
    this.leaseTimer = setInterval(() => void this.revokeExpiredLeases(), every);
    this.leaseTimer.unref();
    if (this.config.enableV2) {
      this.v2ExpiryTimer = setInterval(() => void this.expireV2Keys(), V2_SYNC_INTERVAL_MS);
      this.v2ExpiryTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    if (this.v2ExpiryTimer) clearInterval(this.v2ExpiryTimer);
    await this.proposer.stop();
    // A WAL that already failed has reported why; closing it must not hide that the member stopped.
    await this.onStop?.().catch(() => undefined);
  }

  get store(): MvccStore {
    return this.state.store;
  }

  header(revision = this.store.currentRevision): Header {
    return { clusterId: this.clusterId, memberId: this.memberId, revision, raftTerm: this.proposer.term };
  }

  // ---- KV ----

  async range(req: RangeRequest): Promise<RangeResponse> {
    this.ensureRunning();
    if (!req.serializable) await this.proposer.readBarrier();
    return this.store.range(req);
  }

  put(req: PutRequest): Promise<PutResponse> {
    return (this.quotaRefusal(req.key.length + req.value.length) ?? this.propose({ put: req })) as Promise<PutResponse>;
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.propose({ deleteRange: req }) as Promise<DeleteRangeResponse>;
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    if (isReadOnlyTxn(req)) {
      // etcd serves a read-only txn without the log, like a range: applying it changes nothing.
      this.ensureRunning();
      await this.proposer.readBarrier();
      return this.store.apply({ txn: req }) as TxnResponse;
    }
    await this.quotaRefusal(txnPutBytes(req));
    return this.propose({ txn: req }) as Promise<TxnResponse>;
  }

  compact(req: CompactionRequest): Promise<CompactionResponse> {
    return this.propose({ compaction: req }) as Promise<CompactionResponse>;
  }

  // ---- Lease ----

  async leaseGrant(ttl: number, id: bigint): Promise<LeaseGrantResponse> {
    if (ttl > MAX_LEASE_TTL) throw Errors.leaseTTLTooLarge();
    await this.quotaRefusal(LEASE_COST_BYTES);
    return this.propose({ leaseGrant: { id: id === 0n ? this.ids.nextId() : id, ttl } }) as Promise<LeaseGrantResponse>;
  }

  leaseRevoke(id: bigint): Promise<LeaseRevokeResponse> {
    return this.propose({ leaseRevoke: { id } }) as Promise<LeaseRevokeResponse>;
  }

  /** Renews a lease on the leader; returns the TTL, or 0 when the lease is gone (etcd's keep-alive answer). */
  async leaseRenew(id: bigint): Promise<number> {
    this.ensureRunning();
    if (this.forwardLeaseRenew && !this.proposer.isLeader) {
      // Only the leader's lessor decides expiry; a follower forwards the renewal there (as etcd does).
      const leader = this.proposer.leader;
      if (leader === 0n) throw Errors.noLeader();
      const ttl = await this.forwardLeaseRenew(leader, id);
      // Keep the local view close too, so a follower's TimeToLive is not wildly off.
      if (ttl > 0 && this.store.hasLease(id)) this.store.leaseKeepAlive(id);
      return ttl;
    }
    if (!this.store.hasLease(id)) return 0;
    return this.store.leaseKeepAlive(id);
  }

  async leaseTimeToLive(id: bigint, keys: boolean): Promise<LeaseTimeToLiveResponse> {
    this.ensureRunning();
    if (this.forwardLeaseTimeToLive && !this.proposer.isLeader && this.state.members.length > 1) {
      // The remaining TTL is the leader's lessor's (a follower's copy is only re-armed by renewals it sees).
      const leader = this.proposer.leader;
      if (leader === 0n) throw Errors.noLeader();
      return this.forwardLeaseTimeToLive(leader, id, keys);
    }
    return this.store.leaseTimeToLive(id, keys);
  }

  async leaseLeases(): Promise<bigint[]> {
    this.ensureRunning();
    return this.store.leaseList();
  }

  /** The leader turns expiry into a replicated revoke, so every replica deletes the keys at one revision. */
  async revokeExpiredLeases(): Promise<void> {
    if (this.stopped || !this.proposer.isLeader) return;
    for (const id of this.store.expiredLeases()) {
      if (this.revoking.has(id)) continue;
      this.revoking.add(id);
      try {
        await this.propose({ leaseRevoke: { id } });
      } catch {
        // already revoked by a client, or the member is stopping: nothing left to do
      } finally {
        this.revoking.delete(id);
      }
    }
  }

  // ---- v2 store ----

  get v2(): V2Store {
    return this.state.v2;
  }

  /** A v2 write through the log; resolves with its event (the expire sweep yields a list). */
  async v2Write(cmd: V2Command): Promise<V2Event> {
    this.ensureRunning();
    const applied = (await this.proposer.propose(EntryKind.V2, Buffer.from(JSON.stringify(cmd)))) as V2ApplyResult;
    if ('error' in applied) throw new V2Error(applied.error.errorCode, applied.error.cause, applied.error.index);
    return applied.result as V2Event;
  }

  /** Reads see every write committed before them (etcd's quorum GET); `serializable` reads the local copy. */
  async v2ReadBarrier(): Promise<void> {
    this.ensureRunning();
    await this.proposer.readBarrier();
  }

  /** As etcd's leader SYNCs: TTL expiry is decided by the leader's clock and replicated, never by each member. */
  private async expireV2Keys(): Promise<void> {
    if (this.stopped || this.v2Expiring || !this.proposer.isLeader) return;
    const next = this.v2.nextExpiry();
    const now = (this.options.clock ?? Date.now)();
    if (next === undefined || next > now) return;
    this.v2Expiring = true;
    try {
      await this.proposer.propose(EntryKind.V2, Buffer.from(JSON.stringify({ op: 'expire', now } satisfies V2Command)));
    } catch {
      // lost leadership or stopping: the next leader sweeps
    } finally {
      this.v2Expiring = false;
    }
  }

  // ---- Cluster and maintenance ----

  memberList(): Member[] {
    // This member's client URLs are what it advertises now (etcd publishes them on every start).
    // etcd lists members in ID order (RaftCluster.Members sorts them).
    return this.state.members
      .map((m) => ({ ...m, clientUrls: m.id === this.memberId ? this.config.advertiseClientUrls : m.clientUrls }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** etcd's AddMember: a new member (not started yet: no name, no client URLs) joins the configuration. */
  async memberAdd(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    const membership = this.requireMembership();
    const urls = validatePeerUrls(peerUrls);
    // etcd derives a new member's ID from its peer URLs and the time (so a re-added URL gets a fresh ID).
    const id = memberIdOf(urls, '', String(Math.floor(Date.now() / 1000)));
    const member: Member = { id, name: '', peerUrls: urls, clientUrls: [], isLearner };
    if (this.config.strictReconfigCheck) {
      if (!isLearner && !this.isReadyToAddVotingMember()) throw Errors.memberNotEnoughStarted();
      if (!this.isConnectedFully(this.votingMembers())) throw Errors.unhealthy();
    }
    await membership.proposeConfChange(isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, id,
      Buffer.from(encodeConfChangeContext({ member })));
    return { member, members: this.memberList() };
  }

  /** etcd's RemoveMember. */
  async memberRemove(id: bigint): Promise<Member[]> {
    const membership = this.requireMembership();
    if (this.config.strictReconfigCheck) this.mayRemoveMember(id);
    await membership.proposeConfChange(ConfChangeType.RemoveNode, id, Buffer.alloc(0));
    return this.memberList();
  }

  /** etcd's UpdateMember: new peer URLs for a member. */
  async memberUpdate(id: bigint, peerUrls: string[]): Promise<Member[]> {
    const membership = this.requireMembership();
    const urls = validatePeerUrls(peerUrls);
    const member: Member = { id, name: '', peerUrls: urls, clientUrls: [], isLearner: false };
    await membership.proposeConfChange(ConfChangeType.UpdateNode, id, Buffer.from(encodeConfChangeContext({ member })));
    return this.memberList();
  }

  /** etcd's PromoteMember: only the leader knows whether the learner caught up, so a follower forwards it. */
  async memberPromote(id: bigint): Promise<Member[]> {
    const membership = this.requireMembership();
    const progress = membership.progress();
    if (!progress) {
      const leader = this.proposer.leader;
      if (leader === 0n || !this.forwardPromote) throw Errors.noLeader();
      await this.forwardPromote(leader, id);
      await this.proposer.readBarrier();
      return this.memberList();
    }
    const learnerMatch = progress.get(id);
    if (learnerMatch !== undefined && learnerMatch < (progress.get(this.memberId) ?? 0) * LEARNER_READY_PERCENT) {
      throw Errors.learnerNotReady();
    }
    if (this.config.strictReconfigCheck && !this.isReadyToPromote(id)) throw Errors.memberNotEnoughStarted();
    await membership.proposeConfChange(ConfChangeType.AddNode, id, Buffer.from(encodeConfChangeContext({ isPromote: true })));
    return this.memberList();
  }

  /** etcd's MoveLeader: on the leader, hands leadership to a voting member and waits until it leads. */
  async moveLeader(target: bigint): Promise<void> {
    this.ensureRunning();
    if (!this.proposer.isLeader) throw Errors.notLeader();
    const member = this.state.members.find((m) => m.id === target);
    if (!member || member.isLearner) throw Errors.badLeaderTransferee();
    const membership = this.requireMembership();
    const deadline = Date.now() + 5000 + 2 * this.config.electionTimeout;
    membership.transferLeader(target);
    while (this.proposer.leader !== target) {
      if (Date.now() > deadline || this.stopped) throw Errors.timeoutLeaderTransfer();
      await new Promise((r) => setTimeout(r, this.config.heartbeatInterval));
    }
  }

  get isLearner(): boolean {
    return this.membership?.isLearner ?? false;
  }

  private requireMembership(): MembershipProposer {
    this.ensureRunning();
    if (!this.membership) throw Errors.unimplemented('runtime membership on this member');
    return this.membership;
  }

  private votingMembers(): Member[] {
    return this.state.members.filter((m) => !m.isLearner);
  }

  /** etcd: a member has started once it published its name. */
  private static isStarted(m: Member): boolean {
    return m.name.length > 0;
  }

  /** etcd's IsReadyToAddVotingMember: the started voters must still make a quorum with the new member. */
  private isReadyToAddVotingMember(): boolean {
    const voters = this.votingMembers();
    const nmembers = voters.length + 1;
    const nstarted = voters.filter(EtcdServer.isStarted).length;
    // Adding a second member to a one-member cluster is allowed (etcd's restore-a-cluster case).
    if (nstarted === 1 && nmembers === 2) return true;
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  private isReadyToPromote(id: bigint): boolean {
    const voters = this.votingMembers();
    const nmembers = voters.length + 1;
    let nstarted = voters.filter(EtcdServer.isStarted).length;
    if (this.state.members.some((m) => m.id === id && m.isLearner && EtcdServer.isStarted(m))) nstarted++;
    if (nstarted === 1 && nmembers === 2) return true;
    return nstarted >= Math.floor(nmembers / 2) + 1;
  }

  /** etcd's mayRemoveMember with --strict-reconfig-check. */
  private mayRemoveMember(id: bigint): void {
    const member = this.state.members.find((m) => m.id === id);
    if (member?.isLearner) return;
    const voters = this.votingMembers();
    const remaining = voters.filter((m) => m.id !== id);
    const nstarted = remaining.filter(EtcdServer.isStarted).length;
    const present = voters.length !== remaining.length;
    if (present && nstarted < Math.floor(remaining.length / 2) + 1) throw Errors.memberNotEnoughStarted();
    // A member that is down is not part of the active quorum: removing it is safe.
    if (id !== this.memberId && this.membership?.activeSince(id) === undefined) return;
    const active = this.connectedCount(voters);
    if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw Errors.unhealthy();
  }

  /** Voting members this member has been connected to for etcd's health interval, itself included. */
  private connectedCount(members: Member[]): number {
    const since = Date.now() - HEALTH_INTERVAL_MS;
    return members.filter((m) => {
      if (m.id === this.memberId) return true;
      const t = this.membership?.activeSince(m.id);
      return t !== undefined && t <= since;
    }).length;
  }

  private isConnectedFully(members: Member[]): boolean {
    return this.connectedCount(members) === members.length;
  }

  status(): Status {
    const inUse = this.dbSizeInUse();
    this.allocatedBytes = Math.max(this.allocatedBytes, inUse);
    const errors = this.state.alarms.map((a) => `memberID:${a.memberId} alarm:${AlarmType[a.alarm]} `);
    return {
      version: SERVER_VERSION,
      dbSize: this.allocatedBytes,
      dbSizeInUse: inUse,
      leader: this.proposer.leader,
      raftIndex: this.proposer.committedIndex,
      raftTerm: this.proposer.term,
      raftAppliedIndex: this.proposer.appliedIndex,
      isLearner: this.isLearner,
      errors,
    };
  }

  // ---- alarms, quota, defragment ----

  alarmList(): AlarmMember[] {
    return this.state.alarms;
  }

  /** Activates or deactivates an alarm through the log (every member sees it); returns what changed. */
  async alarm(action: AlarmAction, memberId: bigint, alarm: AlarmType): Promise<AlarmMember[]> {
    this.ensureRunning();
    if (action === AlarmAction.GET) {
      await this.proposer.readBarrier();
      return this.state.alarms;
    }
    return (await this.proposer.propose(EntryKind.Alarm, encodeAlarmRequest(action, memberId, alarm))) as AlarmMember[];
  }

  /** etcd rewrites its db file to drop freed pages; the in-memory keyspace has nothing to rewrite, so the
   * allocated size simply falls back to what is in use. */
  async defragment(): Promise<void> {
    this.ensureRunning();
    this.allocatedBytes = this.dbSizeInUse();
  }

  private dbSizeInUse(): number {
    // The keyspace's own estimate plus the fixed part every data file has (etcd's empty bbolt file is ~20 KiB).
    return this.store.dbSize() + DATA_FILE_BASE_BYTES;
  }

  /**
   * etcd's quota: a write that would take the db past --quota-backend-bytes raises NOSPACE and is refused. Returns
   * undefined when `cost` more bytes fit, else the refusal. Not async: a write within the quota, nearly every one,
   * goes on without a promise and a turn of its own.
   */
  private quotaRefusal(cost: number): Promise<never> | undefined {
    if (this.state.hasAlarm(AlarmType.NOSPACE)) return Promise.reject(Errors.noSpace());
    this.allocatedBytes = Math.max(this.allocatedBytes, this.dbSizeInUse());
    if (this.allocatedBytes + cost <= this.quotaBytes) return undefined;
    return this.alarm(AlarmAction.ACTIVATE, this.memberId, AlarmType.NOSPACE).then(
      () => Promise.reject(Errors.noSpace()),
      () => Promise.reject(Errors.noSpace()),
    );
  }

  /**
   * The member's replicated state as one blob (what `etcdctl snapshot save` downloads), as it is at the call;
   * encoded a step per turn of the event loop, so a large keyspace does not stall the member.
   */
  async snapshot(): Promise<Uint8Array> {
    this.ensureRunning();
    const data = await finishInSteps(this.state.captureSnapshot(), () => this.stopped);
    if (!data) throw Errors.stopped();
    return data;
  }

  hashKV(revision: number): { hash: number; compactRevision: number; revision: number } {
    this.ensureRunning();
    return this.store.hashKV(revision);
  }

  /** Not async, for the same reason as quotaRefusal; a failure still arrives as a rejection. */
  private propose(cmd: Command): Promise<CommandResult> {
    try {
      this.ensureRunning();
      return this.proposer.propose(EntryKind.Mvcc, encodeCommand(cmd)) as Promise<CommandResult>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private ensureRunning(): void {
    if (this.stopped) throw Errors.stopped();
  }
}

/** etcd's types.NewURLs: http(s)://host:port, no path; otherwise the member URLs are invalid. */
function validatePeerUrls(urls: string[]): string[] {
  if (urls.length === 0) throw Errors.memberBadURLs();
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw Errors.memberBadURLs();
    }
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.port || (parsed.pathname !== '/' && parsed.pathname !== '')) {
      throw Errors.memberBadURLs();
    }
  }
  return [...urls].sort();
}

function isReadOnlyTxn(req: TxnRequest): boolean {
  const branchReadOnly = (ops: TxnRequest['success']): boolean =>
    ops.every((op) => 'requestRange' in op || ('requestTxn' in op && isReadOnlyTxn(op.requestTxn)));
  return branchReadOnly(req.success) && branchReadOnly(req.failure);
}

function txnPutBytes(req: TxnRequest): number {
  let n = 0;
  for (const op of [...req.success, ...req.failure]) {
    if ('requestPut' in op) n += op.requestPut.key.length + op.requestPut.value.length;
    else if ('requestTxn' in op) n += txnPutBytes(op.requestTxn);
  }
  return n;
}
