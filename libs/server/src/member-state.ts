import { Errors } from '@nestcd/errors';
import { Command, CommandResult, decodeCommand, MvccOptions, MvccStore, Reader, RequestOp, Writer } from '@nestcd/mvcc';
import { AuthStore } from '@nestcd/auth';
import type { StateMachine } from './raft-member';

/** The kinds of entries a member's log carries (the first byte of every Normal entry). */
export enum EntryKind {
  Mvcc = 1,
  Alarm = 2,
  /** A member announcing its client URLs (etcd's publish on every start). */
  Publish = 3,
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

/** A publish entry: the member's ID, then its advertised client URLs. */
export function encodePublish(memberId: bigint, clientUrls: string[]): Buffer {
  const w = new Writer(64);
  w.i64(BigInt.asIntN(64, memberId));
  w.uint(clientUrls.length);
  for (const u of clientUrls) w.bytes(Buffer.from(u));
  return w.finish();
}

export function encodeAlarmRequest(action: AlarmAction, memberId: bigint, alarm: AlarmType): Buffer {
  const b = Buffer.allocUnsafe(10);
  b[0] = action;
  b.writeBigUInt64BE(memberId, 1);
  b[9] = alarm;
  return b;
}

const SNAPSHOT_MAGIC = Buffer.from('NSM2');

/**
 * Everything a member replicates through its log: the keyspace and the cluster's alarms. Applying an entry
 * is deterministic, so every member that applies the same log holds the same state.
 */
export class MemberState implements StateMachine {
  private alarmList: AlarmMember[] = [];
  /** The cluster's members, replicated like the keyspace (etcd keeps them in its backend too). */
  members: Member[] = [];
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
      case EntryKind.Auth:
        return this.auth.apply(payload);
      default:
        throw new Error(`unknown entry kind ${kind}`);
    }
  }

  get alarms(): AlarmMember[] {
    return this.alarmList.map((a) => ({ ...a }));
  }

  hasAlarm(type: AlarmType): boolean {
    return this.alarmList.some((a) => a.alarm === type);
  }

  /** A member's client URLs as it last published them; a removed member's publish changes nothing (as etcd). */
  private applyPublish(payload: Buffer): void {
    const r = new Reader(payload);
    const id = BigInt.asUintN(64, r.i64());
    const urls: string[] = [];
    for (let n = r.uint(); n > 0; n--) urls.push(r.bytes().toString());
    const member = this.members.find((m) => m.id === id);
    if (member) member.clientUrls = urls;
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
    // Header and trailer are small; the keyspace goes in as it is, so a large snapshot is copied once.
    const mvcc = this.store.snapshot();
    const head = new Writer(16);
    head.raw(SNAPSHOT_MAGIC);
    head.uint(mvcc.length);
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
    w.bytes(this.auth.snapshot());
    return Buffer.concat([head.finish(), mvcc, w.finish()]);
  }

  restore(data: Uint8Array): void {
    const r = new Reader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    if (!r.raw(SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw new Error('not a nestcd member snapshot');
    this.store = MvccStore.restore(r.bytes(), this.mvccOptions);
    const alarms: AlarmMember[] = [];
    for (let n = r.uint(); n > 0; n--) alarms.push({ memberId: BigInt.asUintN(64, r.i64()), alarm: r.uint() });
    this.alarmList = alarms;
    const strings = () => {
      const list: string[] = [];
      for (let n = r.uint(); n > 0; n--) list.push(r.bytes().toString());
      return list;
    };
    const members: Member[] = [];
    for (let n = r.uint(); n > 0; n--) {
      members.push({ id: BigInt.asUintN(64, r.i64()), name: r.bytes().toString(), peerUrls: strings(), clientUrls: strings(), isLearner: r.uint() === 1 });
    }
    this.members = members;
    // Snapshots from before auth existed end here.
    if (!r.done) this.auth.restore(r.bytes());
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
