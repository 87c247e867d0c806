// Conversions between the client's types (types.ts) and etcd's wire messages as proto-loader hands them over
// (int64 as decimal strings, bytes as Buffers, enums as numbers). The namespace is applied here, on the way out,
// and stripped on the way back.
import type {
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  Member,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  SortOrder,
  SortTarget,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  WatchEvent,
} from '../types';
import { Namespace } from './namespace';

/** A message as proto-loader decodes/encodes it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Wire = Record<string, any>;

const SORT_ORDERS: SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const COMPARE_TARGETS = ['version', 'create', 'mod', 'value', 'lease'] as const;
const COMPARE_RESULTS = ['equal', 'greater', 'less', 'not_equal'] as const;

export const num = (v: unknown): number => (v === undefined || v === null || v === '' ? 0 : Number(v));
export const big = (v: unknown): bigint => (v === undefined || v === null || v === '' ? 0n : BigInt(v as string));
export const buf = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : v instanceof Uint8Array ? Buffer.from(v) : Buffer.alloc(0));

/**
 * range_end only when non-empty: protobufjs encodes a field that is set even when empty, and etcd reads a present
 * but empty range_end as "every key >= key" (its index tests for nil), not as the single key.
 */
export function endField(rangeEnd: Buffer | undefined): { rangeEnd?: Buffer } {
  return rangeEnd && rangeEnd.length > 0 ? { rangeEnd } : {};
}

export function decodeHeader(h: Wire | undefined | null): ResponseHeader {
  return { clusterId: big(h?.clusterId), memberId: big(h?.memberId), revision: num(h?.revision), raftTerm: num(h?.raftTerm) };
}

export class Codec {
  constructor(readonly ns: Namespace) {}

  kv(w: Wire): KeyValue {
    return {
      key: this.ns.strip(buf(w.key)),
      value: buf(w.value),
      createRevision: num(w.createRevision),
      modRevision: num(w.modRevision),
      version: num(w.version),
      lease: big(w.lease),
    };
  }

  optionalKv(w: Wire | undefined | null): KeyValue | undefined {
    return w ? this.kv(w) : undefined;
  }

  rangeRequest(r: RangeRequest): Wire {
    const { key, rangeEnd } = this.ns.range(r.key, r.rangeEnd);
    return {
      key,
      ...endField(rangeEnd),
      limit: String(r.limit ?? 0),
      revision: String(r.revision ?? 0),
      sortOrder: SORT_ORDERS.indexOf(r.sortOrder ?? 'none'),
      sortTarget: SORT_TARGETS.indexOf(r.sortTarget ?? 'key'),
      serializable: r.serializable ?? false,
      keysOnly: r.keysOnly ?? false,
      countOnly: r.countOnly ?? false,
      minModRevision: String(r.minModRevision ?? 0),
      maxModRevision: String(r.maxModRevision ?? 0),
      minCreateRevision: String(r.minCreateRevision ?? 0),
      maxCreateRevision: String(r.maxCreateRevision ?? 0),
    };
  }

  rangeResponse(w: Wire): RangeResponse {
    return { header: decodeHeader(w.header), kvs: (w.kvs ?? []).map((kv: Wire) => this.kv(kv)), more: !!w.more, count: num(w.count) };
  }

  putRequest(r: PutRequest): Wire {
    return {
      key: this.ns.key(r.key),
      value: r.value,
      lease: String(r.lease ?? 0n),
      prevKv: r.prevKv ?? false,
      ignoreValue: r.ignoreValue ?? false,
      ignoreLease: r.ignoreLease ?? false,
    };
  }

  putResponse(w: Wire): PutResponse {
    const res: PutResponse = { header: decodeHeader(w.header) };
    const prev = this.optionalKv(w.prevKv);
    if (prev) res.prevKv = prev;
    return res;
  }

  deleteRequest(r: DeleteRangeRequest): Wire {
    const { key, rangeEnd } = this.ns.range(r.key, r.rangeEnd);
    return { key, ...endField(rangeEnd), prevKv: r.prevKv ?? false };
  }

  deleteResponse(w: Wire): DeleteRangeResponse {
    return { header: decodeHeader(w.header), deleted: num(w.deleted), prevKvs: (w.prevKvs ?? []).map((kv: Wire) => this.kv(kv)) };
  }

  compare(c: Compare): Wire {
    const { key, rangeEnd } = this.ns.range(c.key, c.rangeEnd);
    const w: Wire = {
      key,
      ...endField(rangeEnd),
      target: COMPARE_TARGETS.indexOf(c.target),
      result: COMPARE_RESULTS.indexOf(c.result),
    };
    switch (c.target) {
      case 'version':
        w.version = String(c.value);
        break;
      case 'create':
        w.createRevision = String(c.value);
        break;
      case 'mod':
        w.modRevision = String(c.value);
        break;
      case 'value':
        w.value = Buffer.isBuffer(c.value) ? c.value : Buffer.from(String(c.value));
        break;
      case 'lease':
        w.lease = String(c.value);
        break;
    }
    return w;
  }

  requestOp(op: RequestOp): Wire {
    if ('range' in op) return { requestRange: this.rangeRequest(op.range) };
    if ('put' in op) return { requestPut: this.putRequest(op.put) };
    if ('deleteRange' in op) return { requestDeleteRange: this.deleteRequest(op.deleteRange) };
    return { requestTxn: this.txnRequest(op.txn) };
  }

  txnRequest(t: TxnRequest): Wire {
    return {
      compare: t.compare.map((c) => this.compare(c)),
      success: t.success.map((op) => this.requestOp(op)),
      failure: t.failure.map((op) => this.requestOp(op)),
    };
  }

  responseOp(w: Wire): ResponseOp {
    if (w.responseRange) return { range: this.rangeResponse(w.responseRange) };
    if (w.responsePut) return { put: this.putResponse(w.responsePut) };
    if (w.responseDeleteRange) return { deleteRange: this.deleteResponse(w.responseDeleteRange) };
    return { txn: this.txnResponse(w.responseTxn ?? {}) };
  }

  txnResponse(w: Wire): TxnResponse {
    return { header: decodeHeader(w.header), succeeded: !!w.succeeded, responses: (w.responses ?? []).map((r: Wire) => this.responseOp(r)) };
  }

  event(w: Wire): WatchEvent {
    const ev: WatchEvent = { type: num(w.type) === 1 ? 'delete' : 'put', kv: this.kv(w.kv ?? {}) };
    const prev = this.optionalKv(w.prevKv);
    if (prev) ev.prevKv = prev;
    return ev;
  }
}

export function decodeMember(w: Wire): Member {
  return {
    id: big(w.ID),
    name: String(w.name ?? ''),
    peerUrls: [...(w.peerURLs ?? [])],
    clientUrls: [...(w.clientURLs ?? [])],
    isLearner: !!w.isLearner,
  };
}

export function decodeStatus(w: Wire): StatusResponse {
  return {
    header: decodeHeader(w.header),
    version: String(w.version ?? ''),
    dbSize: num(w.dbSize),
    leader: big(w.leader),
    raftIndex: num(w.raftIndex),
    raftTerm: num(w.raftTerm),
    raftAppliedIndex: num(w.raftAppliedIndex),
    errors: [...(w.errors ?? [])],
    dbSizeInUse: num(w.dbSizeInUse),
    isLearner: !!w.isLearner,
  };
}
