// The mvcc contract: request and response shapes of the keyspace, independent of any wire format.
// Keys and values are Buffers; revisions are plain numbers (they stay far below 2^53);
// lease IDs are bigint because etcd's generated IDs use all 63 bits.

export interface KeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
  /** 0n when the key has no lease. */
  lease: bigint;
}

export enum SortOrder { NONE = 0, ASCEND = 1, DESCEND = 2 }
export enum SortTarget { KEY = 0, VERSION = 1, CREATE = 2, MOD = 3, VALUE = 4 }

export interface RangeRequest {
  key: Buffer;
  /** empty: the single key; "\0": every key >= key; otherwise [key, rangeEnd). */
  rangeEnd?: Buffer;
  /** 0 means no limit. */
  limit?: number;
  /** <= 0 means the current revision. */
  revision?: number;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface RangeResponse {
  /** the store's current revision at the time of the read (header revision). */
  revision: number;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease?: bigint;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface PutResponse {
  revision: number;
  prevKv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: Buffer;
  rangeEnd?: Buffer;
  prevKv?: boolean;
}

export interface DeleteRangeResponse {
  revision: number;
  deleted: number;
  prevKvs: KeyValue[];
}

export enum CompareResult { EQUAL = 0, GREATER = 1, LESS = 2, NOT_EQUAL = 3 }
export enum CompareTarget { VERSION = 0, CREATE = 1, MOD = 2, VALUE = 3, LEASE = 4 }

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  /** when set, the compare holds for every key in [key, rangeEnd) (etcd 3.3+). */
  rangeEnd?: Buffer;
  version?: number;
  createRevision?: number;
  modRevision?: number;
  value?: Buffer;
  lease?: bigint;
}

export type RequestOp =
  | { requestRange: RangeRequest }
  | { requestPut: PutRequest }
  | { requestDeleteRange: DeleteRangeRequest }
  | { requestTxn: TxnRequest };

export type ResponseOp =
  | { responseRange: RangeResponse }
  | { responsePut: PutResponse }
  | { responseDeleteRange: DeleteRangeResponse }
  | { responseTxn: TxnResponse };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  revision: number;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: number;
  physical?: boolean;
}

export interface CompactionResponse {
  revision: number;
}

export enum EventType { PUT = 0, DELETE = 1 }

export interface Event {
  type: EventType;
  /** for DELETE: key, modRevision = the delete's revision, everything else zero/empty. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface LeaseGrantRequest {
  /** chosen by the proposer (never 0), so every replica applies the same ID. */
  id: bigint;
  ttl: number;
}

export interface LeaseGrantResponse {
  revision: number;
  id: bigint;
  /** the granted TTL, after raising it to the minimum TTL. */
  ttl: number;
}

export interface LeaseRevokeRequest {
  id: bigint;
}

export interface LeaseRevokeResponse {
  revision: number;
}

export interface LeaseTimeToLiveResponse {
  revision: number;
  id: bigint;
  /** remaining seconds, -1 when the lease has expired or does not exist. */
  ttl: number;
  grantedTtl: number;
  keys: Buffer[];
}

export interface LeaseStatus {
  id: bigint;
}

/**
 * Every state change is a Command. `apply` executes it deterministically: the same sequence of commands
 * yields the same keyspace, revisions and responses on every replica (clock-dependent lease expiry is
 * decided outside apply and enters the log as a leaseRevoke command).
 */
export type Command =
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest }
  | { compaction: CompactionRequest }
  | { leaseGrant: LeaseGrantRequest }
  | { leaseRevoke: LeaseRevokeRequest };

export type CommandResult =
  | PutResponse
  | DeleteRangeResponse
  | TxnResponse
  | CompactionResponse
  | LeaseGrantResponse
  | LeaseRevokeResponse;
