// Binary encoding of Commands for the Raft log: compact, no JSON, versioned by a leading tag byte.
import { Errors } from '@nestcd/errors';
import { Reader, Writer } from './codec';
import {
  Command, Compare, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
} from './types';

enum Tag { Put = 1, DeleteRange = 2, Txn = 3, Compaction = 4, LeaseGrant = 5, LeaseRevoke = 6 }
enum OpTag { Range = 1, Put = 2, DeleteRange = 3, Txn = 4 }

const EMPTY = Buffer.alloc(0);
const flag = (on: boolean | undefined, bit: number) => (on ? bit : 0);
const int = (w: Writer, v: number | undefined) => w.i64(BigInt(v ?? 0));
const readInt = (r: Reader) => Number(r.i64());

function writePut(w: Writer, p: PutRequest): void {
  w.bytes(p.key);
  w.bytes(p.value ?? EMPTY);
  w.i64(p.lease ?? 0n);
  w.uint(flag(p.prevKv, 1) | flag(p.ignoreValue, 2) | flag(p.ignoreLease, 4));
}

function readPut(r: Reader): PutRequest {
  const key = r.bytes();
  const value = r.bytes();
  const lease = r.i64();
  const f = r.uint();
  return { key, value, lease, prevKv: (f & 1) !== 0, ignoreValue: (f & 2) !== 0, ignoreLease: (f & 4) !== 0 };
}

function writeDelete(w: Writer, d: DeleteRangeRequest): void {
  w.bytes(d.key);
  w.bytes(d.rangeEnd ?? EMPTY);
  w.uint(flag(d.prevKv, 1));
}

function readDelete(r: Reader): DeleteRangeRequest {
  return { key: r.bytes(), rangeEnd: r.bytes(), prevKv: (r.uint() & 1) !== 0 };
}

function writeRange(w: Writer, q: RangeRequest): void {
  w.bytes(q.key);
  w.bytes(q.rangeEnd ?? EMPTY);
  int(w, q.limit);
  int(w, q.revision);
  w.uint(q.sortOrder ?? 0);
  w.uint(q.sortTarget ?? 0);
  w.uint(flag(q.serializable, 1) | flag(q.keysOnly, 2) | flag(q.countOnly, 4));
  int(w, q.minModRevision);
  int(w, q.maxModRevision);
  int(w, q.minCreateRevision);
  int(w, q.maxCreateRevision);
}

function readRange(r: Reader): RangeRequest {
  const key = r.bytes();
  const rangeEnd = r.bytes();
  const limit = readInt(r);
  const revision = readInt(r);
  const sortOrder = r.uint();
  const sortTarget = r.uint();
  const f = r.uint();
  return {
    key, rangeEnd, limit, revision, sortOrder, sortTarget,
    serializable: (f & 1) !== 0, keysOnly: (f & 2) !== 0, countOnly: (f & 4) !== 0,
    minModRevision: readInt(r), maxModRevision: readInt(r), minCreateRevision: readInt(r), maxCreateRevision: readInt(r),
  };
}

function writeCompare(w: Writer, c: Compare): void {
  w.uint(c.result);
  w.uint(c.target);
  w.bytes(c.key);
  w.bytes(c.rangeEnd ?? EMPTY);
  switch (c.target) {
    case CompareTarget.VERSION: return int(w, c.version);
    case CompareTarget.CREATE: return int(w, c.createRevision);
    case CompareTarget.MOD: return int(w, c.modRevision);
    case CompareTarget.VALUE: return w.bytes(c.value ?? EMPTY);
    case CompareTarget.LEASE: return w.i64(c.lease ?? 0n);
  }
}

function readCompare(r: Reader): Compare {
  const c: Compare = { result: r.uint(), target: r.uint(), key: r.bytes(), rangeEnd: r.bytes() };
  switch (c.target) {
    case CompareTarget.VERSION: c.version = readInt(r); break;
    case CompareTarget.CREATE: c.createRevision = readInt(r); break;
    case CompareTarget.MOD: c.modRevision = readInt(r); break;
    case CompareTarget.VALUE: c.value = r.bytes(); break;
    case CompareTarget.LEASE: c.lease = r.i64(); break;
    default: throw corrupt();
  }
  return c;
}

function writeOps(w: Writer, ops: RequestOp[]): void {
  w.uint(ops.length);
  for (const op of ops) {
    if ('requestRange' in op) { w.uint(OpTag.Range); writeRange(w, op.requestRange); }
    else if ('requestPut' in op) { w.uint(OpTag.Put); writePut(w, op.requestPut); }
    else if ('requestDeleteRange' in op) { w.uint(OpTag.DeleteRange); writeDelete(w, op.requestDeleteRange); }
    else { w.uint(OpTag.Txn); writeTxn(w, op.requestTxn); }
  }
}

function readOps(r: Reader): RequestOp[] {
  const n = r.uint();
  const ops: RequestOp[] = [];
  for (let i = 0; i < n; i++) {
    switch (r.uint()) {
      case OpTag.Range: ops.push({ requestRange: readRange(r) }); break;
      case OpTag.Put: ops.push({ requestPut: readPut(r) }); break;
      case OpTag.DeleteRange: ops.push({ requestDeleteRange: readDelete(r) }); break;
      case OpTag.Txn: ops.push({ requestTxn: readTxn(r) }); break;
      default: throw corrupt();
    }
  }
  return ops;
}

function writeTxn(w: Writer, t: TxnRequest): void {
  w.uint(t.compare.length);
  for (const c of t.compare) writeCompare(w, c);
  writeOps(w, t.success);
  writeOps(w, t.failure);
}

function readTxn(r: Reader): TxnRequest {
  const n = r.uint();
  const compare: Compare[] = [];
  for (let i = 0; i < n; i++) compare.push(readCompare(r));
  return { compare, success: readOps(r), failure: readOps(r) };
}

const corrupt = () => Errors.invalidArgument('nestcd: mvcc: undecodable command');

/** Appends the command's encoding to `w` (so callers can prefix their own envelope). */
export function writeCommand(w: Writer, cmd: Command): void {
  if ('put' in cmd) { w.uint(Tag.Put); writePut(w, cmd.put); }
  else if ('deleteRange' in cmd) { w.uint(Tag.DeleteRange); writeDelete(w, cmd.deleteRange); }
  else if ('txn' in cmd) { w.uint(Tag.Txn); writeTxn(w, cmd.txn); }
  else if ('compaction' in cmd) { w.uint(Tag.Compaction); int(w, cmd.compaction.revision); w.uint(flag(cmd.compaction.physical, 1)); }
  else if ('leaseGrant' in cmd) { w.uint(Tag.LeaseGrant); w.i64(cmd.leaseGrant.id); int(w, cmd.leaseGrant.ttl); }
  else { w.uint(Tag.LeaseRevoke); w.i64(cmd.leaseRevoke.id); }
}

export function readCommand(r: Reader): Command {
  switch (r.uint()) {
    case Tag.Put: return { put: readPut(r) };
    case Tag.DeleteRange: return { deleteRange: readDelete(r) };
    case Tag.Txn: return { txn: readTxn(r) };
    case Tag.Compaction: return { compaction: { revision: readInt(r), physical: (r.uint() & 1) !== 0 } };
    case Tag.LeaseGrant: return { leaseGrant: { id: r.i64(), ttl: readInt(r) } };
    case Tag.LeaseRevoke: return { leaseRevoke: { id: r.i64() } };
    default: throw corrupt();
  }
}

export function encodeCommand(cmd: Command): Buffer {
  const w = new Writer(256);
  writeCommand(w, cmd);
  return w.finish();
}

/** The command's byte fields are views into `buf`: the store copies what it keeps (values, new keys). */
export function decodeCommand(buf: Buffer): Command {
  return readCommand(new Reader(buf, false));
}
