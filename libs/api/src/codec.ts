// Translation between etcd's wire messages and the mvcc contract, with etcd's request checks on the way in.
import { EtcdError, Errors, GrpcCode } from '@nestcd/errors';
import * as protobuf from 'protobufjs';
import {
  Compare, DeleteRangeRequest, DeleteRangeResponse, Event, KeyValue, PutRequest, PutResponse, RangeRequest,
  RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse, validateTxn,
} from '@nestcd/mvcc';
import type { Header } from '@nestcd/server';
import type {
  Int64, PbCompare, PbDeleteRangeRequest, PbEvent, PbHeader, PbKeyValue, PbPutRequest, PbRangeRequest,
  PbRequestOp, PbTxnRequest,
} from './wire';

export const invalidSortOption = () => new EtcdError(GrpcCode.INVALID_ARGUMENT, 'etcdserver: invalid sort option');

/** int64 revision-like field; anything past 2^53 is beyond every revision the store will reach. */
export function toNumber(v: Int64 | undefined | null): number {
  if (v === undefined || v === null || v === '') return 0;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n)) throw Errors.invalidArgument(`nestcd: "${String(v)}" is not an integer`);
  return n > Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER : n < Number.MIN_SAFE_INTEGER ? Number.MIN_SAFE_INTEGER : Math.trunc(n);
}

export function toBigInt(v: Int64 | undefined | null): bigint {
  if (v === undefined || v === null || v === '' || v === '0' || v === 0) return 0n;
  try {
    return BigInt(v);
  } catch {
    throw Errors.invalidArgument(`nestcd: "${String(v)}" is not an integer`);
  }
}

const buf = (b: Buffer | undefined | null): Buffer => b ?? Buffer.alloc(0);

// ---- requests in ----

export function rangeRequestIn(pb: PbRangeRequest): RangeRequest {
  if (buf(pb.key).length === 0) throw Errors.emptyKey();
  if (pb.sortOrder < 0 || pb.sortOrder > 2 || pb.sortTarget < 0 || pb.sortTarget > 4) throw invalidSortOption();
  return {
    key: pb.key,
    rangeEnd: buf(pb.rangeEnd),
    limit: toNumber(pb.limit),
    revision: toNumber(pb.revision),
    sortOrder: pb.sortOrder,
    sortTarget: pb.sortTarget,
    serializable: pb.serializable,
    keysOnly: pb.keysOnly,
    countOnly: pb.countOnly,
    minModRevision: toNumber(pb.minModRevision),
    maxModRevision: toNumber(pb.maxModRevision),
    minCreateRevision: toNumber(pb.minCreateRevision),
    maxCreateRevision: toNumber(pb.maxCreateRevision),
  };
}

export function putRequestIn(pb: PbPutRequest): PutRequest {
  if (buf(pb.key).length === 0) throw Errors.emptyKey();
  const lease = toBigInt(pb.lease);
  if (pb.ignoreValue && buf(pb.value).length !== 0) throw Errors.valueProvided();
  if (pb.ignoreLease && lease !== 0n) throw Errors.leaseProvided();
  return { key: pb.key, value: buf(pb.value), lease, prevKv: pb.prevKv, ignoreValue: pb.ignoreValue, ignoreLease: pb.ignoreLease };
}

export function deleteRangeRequestIn(pb: PbDeleteRangeRequest): DeleteRangeRequest {
  if (buf(pb.key).length === 0) throw Errors.emptyKey();
  return { key: pb.key, rangeEnd: buf(pb.rangeEnd), prevKv: pb.prevKv };
}

function compareIn(pb: PbCompare): Compare {
  if (pb.result < 0 || pb.result > 3 || pb.target < 0 || pb.target > 4) {
    throw Errors.invalidArgument('etcdserver: invalid compare');
  }
  return {
    result: pb.result,
    target: pb.target,
    key: buf(pb.key),
    rangeEnd: buf(pb.rangeEnd),
    version: toNumber(pb.version),
    createRevision: toNumber(pb.createRevision),
    modRevision: toNumber(pb.modRevision),
    value: buf(pb.value),
    lease: toBigInt(pb.lease),
  };
}

function requestOpIn(pb: PbRequestOp, maxTxnOps: number): RequestOp {
  switch (pb.request) {
    case 'requestRange': return { requestRange: rangeRequestIn(pb.requestRange!) };
    case 'requestPut': return { requestPut: putRequestIn(pb.requestPut!) };
    case 'requestDeleteRange': return { requestDeleteRange: deleteRangeRequestIn(pb.requestDeleteRange!) };
    case 'requestTxn': return { requestTxn: txnRequestIn(pb.requestTxn!, maxTxnOps) };
    default: throw Errors.invalidArgument('etcdserver: a txn operation has no request');
  }
}

/** etcd's checkTxnRequest: op counts, every op's own checks, then no key written twice in one branch. */
export function txnRequestIn(pb: PbTxnRequest, maxTxnOps: number): TxnRequest {
  const compare = pb.compare ?? [];
  const success = pb.success ?? [];
  const failure = pb.failure ?? [];
  if (compare.length > maxTxnOps || success.length > maxTxnOps || failure.length > maxTxnOps) throw Errors.tooManyOps();
  const req: TxnRequest = {
    compare: compare.map(compareIn),
    success: success.map((op) => requestOpIn(op, maxTxnOps)),
    failure: failure.map((op) => requestOpIn(op, maxTxnOps)),
  };
  validateTxn(req, maxTxnOps);
  return req;
}

/** Bytes this request takes in etcd's encoding, near enough for the --max-request-bytes check. */
export function requestSize(req: unknown): number {
  if (Buffer.isBuffer(req)) return req.length + 3;
  if (Array.isArray(req)) return req.reduce((n: number, r) => n + requestSize(r), 0);
  if (req && typeof req === 'object') {
    let n = 2;
    for (const v of Object.values(req)) n += typeof v === 'object' && v !== null ? requestSize(v) : 4;
    return n;
  }
  return 0;
}

/** requestSize of a PutRequest (two byte fields, a lease, three flags) without walking the object: puts are the hot path. */
export function putRequestSize(req: PutRequest): number {
  return req.key.length + req.value.length + 24;
}

// ---- responses out ----

// Member and cluster IDs never change for a member: convert them once, not per response. They go out as Longs:
// protobufjs copies a Long field by its bits, where a decimal string would be parsed again for every response.
const idLongs = new Map<bigint, protobuf.Long>();
const idLong = (id: bigint): protobuf.Long => {
  let l = idLongs.get(id);
  if (l === undefined) {
    const bits = BigInt.asUintN(64, id);
    l = new protobuf.util.LongBits(Number(bits & 0xffffffffn), Number(bits >> 32n)).toLong(true);
    if (idLongs.size < 64) idLongs.set(id, l);
  }
  return l;
};

export function headerOut(h: Header): PbHeader {
  return { clusterId: idLong(h.clusterId), memberId: idLong(h.memberId), revision: h.revision, raftTerm: h.raftTerm };
}

export function kvOut(kv: KeyValue): PbKeyValue {
  return {
    key: kv.key,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease.toString(),
  };
}

export function eventOut(e: Event): PbEvent {
  return { type: e.type, kv: kvOut(e.kv), prevKv: e.prevKv ? kvOut(e.prevKv) : null };
}

export function rangeResponseOut(r: RangeResponse, header: PbHeader) {
  return { header, kvs: r.kvs.map(kvOut), more: r.more, count: r.count };
}

export function putResponseOut(r: PutResponse, header: PbHeader) {
  return { header, prevKv: r.prevKv ? kvOut(r.prevKv) : null };
}

export function deleteRangeResponseOut(r: DeleteRangeResponse, header: PbHeader) {
  return { header, deleted: r.deleted, prevKvs: r.prevKvs.map(kvOut) };
}

/** Responses inside a txn carry a header with only the txn's revision set, as etcd's do. */
function responseOpOut(op: ResponseOp, inner: PbHeader): object {
  if ('responseRange' in op) return { responseRange: rangeResponseOut(op.responseRange, inner) };
  if ('responsePut' in op) return { responsePut: putResponseOut(op.responsePut, inner) };
  if ('responseDeleteRange' in op) return { responseDeleteRange: deleteRangeResponseOut(op.responseDeleteRange, inner) };
  return { responseTxn: txnResponseOut(op.responseTxn, inner) };
}

export function txnResponseOut(r: TxnResponse, header: PbHeader): object {
  const inner = { revision: header.revision } as PbHeader;
  return { header, succeeded: r.succeeded, responses: r.responses.map((op) => responseOpOut(op, inner)) };
}

/**
 * The usual PutResponse, a header and no prev_kv, encoded by hand into one exact-size Buffer: the same bytes as
 * protobufjs writes (every header field, zeros included, in field order), without its writer, its Long
 * conversions and its intermediate objects, a kilobyte of garbage per put. Anything else goes to `general`.
 */
export function putResponseSerializer(general: (value: unknown) => Buffer): (value: unknown) => Buffer {
  return (value) => {
    const v = value as { header?: PbHeader; prevKv?: unknown };
    const h = v.header;
    if (v.prevKv != null || !h || !isLong(h.clusterId) || !isLong(h.memberId) || !isSafeCount(h.revision) || !isSafeCount(h.raftTerm)) {
      return general(value);
    }
    const headerLength = 4 + longVarintLength(h.clusterId) + longVarintLength(h.memberId) + numberVarintLength(h.revision) + numberVarintLength(h.raftTerm);
    const out = Buffer.allocUnsafe(2 + headerLength);
    out[0] = 0x0a; // field 1 (header), length-delimited
    out[1] = headerLength; // under 128: four tags and four varints of at most 10 bytes
    let at = 2;
    out[at++] = 0x08; // cluster_id
    at = writeLongVarint(out, at, h.clusterId);
    out[at++] = 0x10; // member_id
    at = writeLongVarint(out, at, h.memberId);
    out[at++] = 0x18; // revision
    at = writeNumberVarint(out, at, h.revision);
    out[at++] = 0x20; // raft_term
    writeNumberVarint(out, at, h.raftTerm);
    return out;
  };
}

const isLong = (x: unknown): x is protobuf.Long => typeof x === 'object' && x !== null && typeof (x as protobuf.Long).low === 'number' && typeof (x as protobuf.Long).high === 'number';
const isSafeCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

function longVarintLength(l: protobuf.Long): number {
  let lo = l.low >>> 0;
  let hi = l.high >>> 0;
  let n = 1;
  while (hi !== 0 || lo > 0x7f) {
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
    n++;
  }
  return n;
}

function writeLongVarint(out: Buffer, at: number, l: protobuf.Long): number {
  let lo = l.low >>> 0;
  let hi = l.high >>> 0;
  while (hi !== 0 || lo > 0x7f) {
    out[at++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  out[at++] = lo;
  return at;
}

function numberVarintLength(x: number): number {
  let n = 1;
  while (x > 0x7f) {
    x = Math.floor(x / 128);
    n++;
  }
  return n;
}

function writeNumberVarint(out: Buffer, at: number, x: number): number {
  while (x > 0x7f) {
    out[at++] = (x % 128) | 0x80;
    x = Math.floor(x / 128);
  }
  out[at++] = x;
  return at;
}
