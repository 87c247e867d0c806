import { Errors } from '@nestcd/errors';
import { ConfChange, ConfChangeType } from '@nestcd/raft';
import { Command, CommandResult, decodeCommand, MvccOptions, MvccStore, Reader, RequestOp, SnapshotRestore, Writer } from '@nestcd/mvcc';
import { AuthStore } from '@nestcd/auth';
import type { RestoreSteps, SnapshotSteps, StateMachine } from './raft-member';
import { V2Command, V2Error, V2Event, V2Store } from '@nestcd/v2store';

export type V2ApplyResult = { result: V2Event | V2Event[] } | { error: { errorCode: number; cause?: string; index: number } };

/** The kinds of entries a member's log carries (the first byte of every Normal entry). */
export enum EntryKind {
  Mvcc = 1,
  Alarm = 2,
  /** A member announcing its client URLs (etcd's publish on every start). */
  Publish = 3,
  /** A write to the v2 store (JSON V2Command), including the leader's TTL expiry sweeps. */
  V2 = 4,
  /** A change of the auth store (users, roles, permissions, auth enable/disable, a token handed out). */
  Auth = 16,
}

/** etcd's alarm types and actions (etcdserverpb.AlarmType / AlarmRequest.AlarmAction numbers). */
export enum AlarmType { NONE = 0, NOSPACE = 1, CORRUPT = 2 }
export enum AlarmAction { GET = 0, ACTIVATE = 1, DEACTIVATE = 2 }

export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface AlarmMember {
  memberId: bigint;
  alarm: AlarmType;
}

/** A publish entry: the member's ID, its advertised client URLs, then its name (etcd's member attributes). */
export function encodePublish(memberId: bigint, clientUrls: string[], name?: string): Buffer {
  const w = new Writer(64);
  w.i64(BigInt.asIntN(64, memberId));
  w.uint(clientUrls.length);
  for (const u of clientUrls) w.bytes(Buffer.from(u));
  if (name !== undefined) w.bytes(Buffer.from(name));
  return w.finish();
}

/** What a membership change's ConfChange carries besides the node ID (etcd puts the member's JSON there). */
export interface ConfChangeContext {
  /** Add and update: the member as it should be; promote: only its ID matters. */
  member?: Member;
  isPromote?: boolean;
}

export function encodeConfChangeContext(ctx: ConfChangeContext): Uint8Array {
  const m = ctx.member;
  return Buffer.from(JSON.stringify({
    p: ctx.isPromote ? 1 : 0,
    m: m && { id: m.id.toString(), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner },
  }));
}

export function decodeConfChangeContext(data: Uint8Array | undefined): ConfChangeContext | undefined {
  if (!data || data.length === 0) return undefined;
  const o = JSON.parse(Buffer.from(data).toString()) as {
    p: number; m?: { id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean };
  };
  return {
    isPromote: o.p === 1,
    member: o.m && { id: BigInt(o.m.id), name: o.m.name, peerUrls: o.m.peerURLs, clientUrls: o.m.clientURLs, isLearner: o.m.isLearner },
  };
}

/** etcd 3.4 allows one learner at a time (membership.maxLearners). */
const MAX_LEARNERS = 1;

export function encodeAlarmRequest(action: AlarmAction, memberId: bigint, alarm: AlarmType): Buffer {
  const b = Buffer.allocUnsafe(10);
  b[0] = action;
  b.writeBigUInt64BE(memberId, 1);
  b[9] = alarm;
  return b;
}

/**
 * A member snapshot: magic, the length of the small parts (alarms, members, removed IDs, v2 store, auth) as a
 * varint, the small parts, then the keyspace to the end (zero padding after it is allowed: see
 * MvccStore.restoreInSteps). The keyspace comes last so that a snapshot can be written out as it is encoded.
 */
const SNAPSHOT_MAGIC = Buffer.from('NSM3');
/** The previous layout, still read: magic, the keyspace's length as a varint, the keyspace, the small parts. */
const SNAPSHOT_MAGIC_V2 = Buffer.from('NSM2');

/**
 * Everything a member replicates through its log: the keyspace and the cluster's alarms. Applying an entry
 * is deterministic, so every member that applies the same log holds the same state.
 */
export class MemberState implements StateMachine {
  private alarmList: AlarmMember[] = [];
  /** The cluster's members, replicated like the keyspace (etcd keeps them in its backend too). */
  members: Member[] = [];
  /** IDs of removed members: never reused, and their messages are refused (etcd's removed set). */
  removed = new Set<bigint>();
  /** etcd's v2 keyspace (--enable-v2): separate from the v3 one, replicated through the same log. */
  readonly v2 = new V2Store();
  /** Users, roles and permissions, replicated like the keyspace (etcd keeps them in its backend too). */
  readonly auth = new AuthStore();

  constructor(public store: MvccStore, private readonly mvccOptions: MvccOptions = {}) {}

  apply(kind: number, payload: Buffer): unknown {
    switch (kind) {
      case EntryKind.Mvcc: {
        const cmd = decodeCommand(payload);
        // With NOSPACE raised, etcd's capped applier refuses whatever could grow the keyspace.
        if (this.hasAlarm(AlarmType.NOSPACE) && mayGrow(cmd)) throw Errors.noSpace();
        return this.store.apply(cmd) as CommandResult;
      }
      case EntryKind.Alarm:
        return this.applyAlarm(payload[0], payload.readBigUInt64BE(1), payload[9]);
      case EntryKind.Publish:
        return this.applyPublish(payload);
      case EntryKind.V2:
        return this.applyV2(payload);
      case EntryKind.Auth:
        return this.auth.apply(payload);
      default:
        throw new Error(`unknown entry kind ${kind}`);
    }
  }

  /**
   * A v2 store error is an answer, not a failure of the member: it comes back as a value (the raft member
   * treats anything thrown by apply, other than an EtcdError, as fatal).
   */
  private applyV2(payload: Buffer): V2ApplyResult {
    let cmd: V2Command;
    try {
      cmd = JSON.parse(payload.toString()) as V2Command;
    } catch {
      return { error: { errorCode: 300, cause: 'malformed v2 entry', index: this.v2.index } };
    }
    try {
      return { result: this.v2.apply(cmd) };
    } catch (err) {
      if (err instanceof V2Error) return { error: { errorCode: err.errorCode, cause: err.cause_, index: err.index } };
      throw err;
    }
  }

  get alarms(): AlarmMember[] {
    return this.alarmList.map((a) => ({ ...a }));
  }

  hasAlarm(type: AlarmType): boolean {
    return this.alarmList.some((a) => a.alarm === type);
  }

  /** A member's client URLs (and name) as it last published them; a removed member's publish changes nothing (as etcd). */
  private applyPublish(payload: Buffer): void {
    const r = new Reader(payload);
    const id = BigInt.asUintN(64, r.i64());
    const urls: string[] = [];
    for (let n = r.uint(); n > 0; n--) urls.push(r.bytes().toString());
    const name = r.done ? undefined : r.bytes().toString();
    const member = this.members.find((m) => m.id === id);
    if (!member) return;
    member.clientUrls = urls;
    if (name !== undefined) member.name = name;
  }

  /**
   * Validates a committed membership change against the member table and applies it (etcd's
   * ValidateConfigurationChange, then AddMember/RemoveMember/UpdateRaftAttributes/PromoteMember). A refused
   * change throws the etcd error and leaves everything as it was, identically on every member.
   */
  applyConfChange(cc: ConfChange, context: Buffer): void {
    const ctx = decodeConfChangeContext(context);
    const id = cc.nodeId;
    const existing = this.members.find((m) => m.id === id);
    const peerUrlsTaken = (urls: string[], except?: bigint) =>
      this.members.some((m) => m.id !== except && m.peerUrls.some((u) => urls.includes(u)));
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        if (ctx?.isPromote) {
          if (this.removed.has(id) || !existing) throw Errors.memberNotFound();
          if (!existing.isLearner) throw Errors.memberNotLearner();
          existing.isLearner = false;
          return;
        }
        if (this.removed.has(id)) throw Errors.memberNotFound();
        if (existing) throw Errors.memberExist();
        const m = ctx?.member;
        if (!m) throw Errors.memberBadURLs();
        if (peerUrlsTaken(m.peerUrls)) throw Errors.peerURLExist();
        if (cc.type === ConfChangeType.AddLearnerNode && this.members.filter((x) => x.isLearner).length + 1 > MAX_LEARNERS) {
          throw Errors.tooManyLearners();
        }
        this.members.push({ ...m, id, isLearner: cc.type === ConfChangeType.AddLearnerNode });
        return;
      }
      case ConfChangeType.RemoveNode:
        if (this.removed.has(id) || !existing) throw Errors.memberNotFound();
        this.members = this.members.filter((m) => m.id !== id);
        this.removed.add(id);
        return;
      case ConfChangeType.UpdateNode: {
        if (this.removed.has(id) || !existing) throw Errors.memberNotFound();
        const urls = ctx?.member?.peerUrls ?? [];
        if (peerUrlsTaken(urls, id)) throw Errors.peerURLExist();
        existing.peerUrls = urls;
        return;
      }
    }
  }

  /** Returns the alarms the request changed, as etcd's AlarmResponse lists them. */
  private applyAlarm(action: AlarmAction, memberId: bigint, alarm: AlarmType): AlarmMember[] {
    const index = this.alarmList.findIndex((a) => a.memberId === memberId && a.alarm === alarm);
    if (action === AlarmAction.ACTIVATE) {
      if (alarm === AlarmType.NONE) return [];
      if (index < 0) this.alarmList.push({ memberId, alarm });
      return [{ memberId, alarm }];
    }
    if (action === AlarmAction.DEACTIVATE) {
      if (index < 0) return [];
      this.alarmList.splice(index, 1);
      return [{ memberId, alarm }];
    }
    return this.alarms;
  }

  snapshot(): Uint8Array {
    const capture = this.captureSnapshot();
    capture.step(Infinity);
    return capture.finish();
  }

  /**
   * The member's state as it is now, encoded in steps: the small parts at once, the keyspace a number of revisions
   * per step (see MvccStore.captureSnapshot); `chunkBytes` streams it (see CaptureOptions).
   */
  captureSnapshot(opts: { chunkBytes?: number } = {}): SnapshotSteps {
    const small = this.encodeSmallParts();
    const head = new Writer(small.length + 16);
    head.raw(SNAPSHOT_MAGIC);
    head.uint(small.length);
    head.raw(small);
    return this.store.captureSnapshot({ prefix: head.finish(), chunkBytes: opts.chunkBytes });
  }

  private encodeSmallParts(): Buffer {
    const w = new Writer(256);
    w.uint(this.alarmList.length);
    for (const a of this.alarmList) {
      w.i64(BigInt.asIntN(64, a.memberId));
      w.uint(a.alarm);
    }
    w.uint(this.members.length);
    const strings = (list: string[]) => {
      w.uint(list.length);
      for (const u of list) w.bytes(Buffer.from(u));
    };
    for (const m of this.members) {
      w.i64(BigInt.asIntN(64, m.id));
      w.bytes(Buffer.from(m.name));
      strings(m.peerUrls);
      strings(m.clientUrls);
      w.uint(m.isLearner ? 1 : 0);
    }
    w.uint(this.removed.size);
    for (const id of this.removed) w.i64(BigInt.asIntN(64, id));
    w.bytes(this.v2.snapshot());
    w.bytes(this.auth.snapshot());
    return w.finish();
  }

  restore(data: Uint8Array): void {
    const steps = this.restoreInSteps(data);
    steps.step(Infinity);
    steps.finish();
  }

  /**
   * restore() with the keyspace read a number of revisions per step (see MvccStore.restoreInSteps). The member's state
   * changes only in finish(): until then it serves what it had.
   */
  restoreInSteps(data: Uint8Array): RestoreSteps {
    const all = new Reader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const magic = all.raw(SNAPSHOT_MAGIC.length);
    let r: Reader;
    let mvcc: SnapshotRestore;
    // the keyspace is read in place, not copied: the store copies every key and value it keeps
    if (magic.equals(SNAPSHOT_MAGIC)) {
      r = new Reader(all.raw(all.uint()));
      mvcc = MvccStore.restoreInSteps(all.rest(), this.mvccOptions, true);
    } else if (magic.equals(SNAPSHOT_MAGIC_V2)) {
      mvcc = MvccStore.restoreInSteps(all.raw(all.uint()), this.mvccOptions);
      r = all;
    } else {
      throw new Error('not a nestcd member snapshot');
    }
    const alarms: AlarmMember[] = [];
    for (let n = r.uint(); n > 0; n--) alarms.push({ memberId: BigInt.asUintN(64, r.i64()), alarm: r.uint() });
    const strings = () => {
      const list: string[] = [];
      for (let n = r.uint(); n > 0; n--) list.push(r.bytes().toString());
      return list;
    };
    const members: Member[] = [];
    for (let n = r.uint(); n > 0; n--) {
      members.push({ id: BigInt.asUintN(64, r.i64()), name: r.bytes().toString(), peerUrls: strings(), clientUrls: strings(), isLearner: r.uint() === 1 });
    }
    const removed = new Set<bigint>();
    // Snapshots written before membership changes existed end after the member list.
    if (!r.done) for (let n = r.uint(); n > 0; n--) removed.add(BigInt.asUintN(64, r.i64()));
    // Snapshots written before the v2 store existed end here (or in the zero padding of a saved snapshot).
    const v2 = r.done ? Buffer.alloc(0) : r.bytes();
    // Snapshots from before auth existed end here (or in the zero padding): auth is off, no users or roles.
    const auth = r.done ? Buffer.alloc(0) : r.bytes();
    return {
      step: (budget) => mvcc.step(budget),
      finish: () => {
        const previous = this.store;
        this.store = mvcc.finish();
        // Watchers on this member keep going: they resume on the new keyspace from the revision they reached.
        this.store.adoptWatchers(previous);
        this.alarmList = alarms;
        this.members = members;
        this.removed = removed;
        if (v2.length === 0) this.v2.clear();
        else this.v2.restore(v2);
        this.auth.restore(auth.length > 0 ? auth : AuthStore.EMPTY_SNAPSHOT);
      },
    };
  }
}

function opsMayGrow(ops: RequestOp[]): boolean {
  return ops.some((op) => 'requestPut' in op || ('requestTxn' in op && (opsMayGrow(op.requestTxn.success) || opsMayGrow(op.requestTxn.failure))));
}

function mayGrow(cmd: Command): boolean {
  if ('put' in cmd || 'leaseGrant' in cmd) return true;
  if ('txn' in cmd) return opsMayGrow(cmd.txn.success) || opsMayGrow(cmd.txn.failure);
  return false;
}
