import type { Long } from 'protobufjs';
// The shapes of etcd's messages as @grpc/proto-loader presents them with PROTO_OPTIONS.
// int64/uint64 arrive as decimal strings; we accept numbers and strings going out.

export type Int64 = string | number;

/** clusterId and memberId are unsigned Longs going out (see headerOut), decimal strings coming in. */
export interface PbHeader { clusterId: Long | string; memberId: Long | string; revision: Int64; raftTerm: Int64 }
export interface PbKeyValue { key: Buffer; createRevision: Int64; modRevision: Int64; version: Int64; value: Buffer; lease: Int64 }
export interface PbEvent { type: number; kv: PbKeyValue; prevKv?: PbKeyValue | null }

export interface PbRangeRequest {
  key: Buffer; rangeEnd: Buffer; limit: Int64; revision: Int64; sortOrder: number; sortTarget: number;
  serializable: boolean; keysOnly: boolean; countOnly: boolean;
  minModRevision: Int64; maxModRevision: Int64; minCreateRevision: Int64; maxCreateRevision: Int64;
}
export interface PbPutRequest { key: Buffer; value: Buffer; lease: Int64; prevKv: boolean; ignoreValue: boolean; ignoreLease: boolean }
export interface PbDeleteRangeRequest { key: Buffer; rangeEnd: Buffer; prevKv: boolean }
export interface PbRequestOp {
  request?: 'requestRange' | 'requestPut' | 'requestDeleteRange' | 'requestTxn';
  requestRange?: PbRangeRequest; requestPut?: PbPutRequest; requestDeleteRange?: PbDeleteRangeRequest; requestTxn?: PbTxnRequest;
}
export interface PbCompare {
  result: number; target: number; key: Buffer; rangeEnd: Buffer;
  targetUnion?: 'version' | 'createRevision' | 'modRevision' | 'value' | 'lease';
  version?: Int64; createRevision?: Int64; modRevision?: Int64; value?: Buffer; lease?: Int64;
}
export interface PbTxnRequest { compare: PbCompare[]; success: PbRequestOp[]; failure: PbRequestOp[] }
export interface PbCompactionRequest { revision: Int64; physical: boolean }

export interface PbWatchCreateRequest {
  key: Buffer; rangeEnd: Buffer; startRevision: Int64; progressNotify: boolean; filters: number[];
  prevKv: boolean; watchId: Int64; fragment: boolean;
}
export interface PbWatchRequest {
  requestUnion?: 'createRequest' | 'cancelRequest' | 'progressRequest';
  createRequest?: PbWatchCreateRequest; cancelRequest?: { watchId: Int64 }; progressRequest?: object;
}
