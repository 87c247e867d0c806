// NOTE (client owner): shapes unchanged; only comments were made precise (leaseKeepAliveOnce rejects with
// NOT_FOUND when the lease is gone). Backends: RemoteClient (this entry), EmbeddedClient ('@nestcd/client/embedded'),
// RedisClient ('@nestcd/client/redis'); createRemoteClient / createEmbeddedClient / createRedisClient / createClient.
//
// The one client interface every backend implements (remote gRPC, embedded engine, Redis) and the only thing
// recipes and nestcdctl depend on. Shapes follow etcd's v3 API. Keys and values are Buffers; revisions,
// versions and counts are numbers (they stay far below 2^53); lease, member and cluster IDs are bigint
// because etcd's generated IDs use all 63 bits.

export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  revision: number;
  raftTerm: number;
}

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  /** 0n when the key has no lease. */
  lease: bigint;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export interface RangeRequest {
  key: Buffer;
  /** absent or empty: the single key; Buffer.from([0]): every key >= key; otherwise [key, rangeEnd). */
  rangeEnd?: Buffer;
  limit?: number;
  /** 0 or absent: the current revision. */
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
  header: ResponseHeader;
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
  header: ResponseHeader;
  prevKv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: Buffer;
  rangeEnd?: Buffer;
  prevKv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

export type CompareTarget = 'version' | 'create' | 'mod' | 'value' | 'lease';
export type CompareResult = 'equal' | 'greater' | 'less' | 'not_equal';

export interface Compare {
  key: Buffer;
  rangeEnd?: Buffer;
  target: CompareTarget;
  result: CompareResult;
  /** number for version/create/mod, Buffer for value, bigint for lease. */
  value: number | Buffer | bigint;
}

export type RequestOp =
  | { range: RangeRequest }
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest };

export type ResponseOp =
  | { range: RangeResponse }
  | { put: PutResponse }
  | { deleteRange: DeleteRangeResponse }
  | { txn: TxnResponse };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactResponse {
  header: ResponseHeader;
}

export type EventType = 'put' | 'delete';

export interface WatchEvent {
  type: EventType;
  /** for a delete: key and modRevision (the delete's revision); the rest zero/empty. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface WatchRequest {
  key: Buffer;
  rangeEnd?: Buffer;
  /** first revision to deliver; 0 or absent: from the next write. */
  startRevision?: number;
  prevKv?: boolean;
  progressNotify?: boolean;
  filters?: Array<'noput' | 'nodelete'>;
}

/** One batch of events, all at revisions <= header.revision, in revision order. */
export interface WatchBatch {
  header: ResponseHeader;
  events: WatchEvent[];
}

export interface WatchHandlers {
  /** events in revision order, never repeated or skipped, also across reconnects. */
  onEvents(batch: WatchBatch): void;
  /** a progress notification: nothing up to `revision` is pending for this watch. */
  onProgress?(revision: number): void;
  /**
   * the watch cannot continue because startRevision (or the resume point) was compacted;
   * the watch is over: re-read and watch again from the revision after the read.
   */
  onCompacted?(compactRevision: number): void;
  /** the connection dropped; the watch resumes by itself from the last delivered revision. */
  onDisconnected?(error: Error): void;
  onReconnected?(): void;
  /** the watch is over for good (cancelled by the server, closed client, non-retryable error). */
  onError?(error: Error): void;
}

export interface Watch {
  /** resolves once the server confirmed the watch (created). */
  readonly ready: Promise<void>;
  /** last revision delivered (or the start revision - 1 before any event). */
  readonly lastRevision: number;
  cancel(): Promise<void>;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  id: bigint;
  ttl: number;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  id: bigint;
  /** remaining seconds; -1 if the lease is expired or not found. */
  ttl: number;
  grantedTtl: number;
  keys: Buffer[];
}

export interface KeepAliveHandlers {
  /** each confirmation with the remaining TTL in seconds. */
  onKeepAlive?(ttl: number): void;
  /**
   * the lease is gone or cannot be confirmed any more: revoked, expired, or no confirmation within its TTL.
   * Fires once; the keep-alive stops.
   */
  onLost(error: Error): void;
}

export interface KeepAlive {
  readonly leaseId: bigint;
  close(): void;
}

export interface Member {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface MemberListResponse {
  header: ResponseHeader;
  members: Member[];
}

export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  dbSize: number;
  leader: bigint;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  errors: string[];
  dbSizeInUse: number;
  isLearner: boolean;
}

/**
 * What recipes need of a store. Every backend implements it. Errors are instances of ClientError
 * (see errors.ts) carrying etcd's gRPC code and message where the backend has one.
 */
export interface KvClient {
  range(req: RangeRequest): Promise<RangeResponse>;
  put(req: PutRequest): Promise<PutResponse>;
  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  txn(req: TxnRequest): Promise<TxnResponse>;
  compact(revision: number, physical?: boolean): Promise<CompactResponse>;
  watch(req: WatchRequest, handlers: WatchHandlers): Watch;

  leaseGrant(ttlSeconds: number, id?: bigint): Promise<LeaseGrantResponse>;
  leaseRevoke(id: bigint): Promise<void>;
  leaseTimeToLive(id: bigint, keys?: boolean): Promise<LeaseTimeToLiveResponse>;
  leaseLeases(): Promise<bigint[]>;
  /**
   * one renewal; resolves with the remaining TTL. Once the lease is gone every backend rejects with ClientError
   * NOT_FOUND "etcdserver: requested lease not found" (as etcd's own client does); callers may also treat a TTL <= 0
   * as gone.
   */
  leaseKeepAliveOnce(id: bigint): Promise<number>;
  /** background renewals every TTL/3 on one shared stream, with loss detected within the TTL. */
  leaseKeepAlive(id: bigint, handlers: KeepAliveHandlers): KeepAlive;

  memberList(): Promise<MemberListResponse>;
  status(): Promise<StatusResponse>;

  close(): Promise<void>;
}
