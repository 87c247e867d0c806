// KvClient on Redis (ioredis), for teams that already run Redis and want the recipes on it.
//
// How etcd's model maps onto Redis (all writes go through one Lua script, see script.ts, so each call is atomic):
// - revisions come from a counter; every write call that changes something takes the next one;
// - keys live in hashes (value, create/mod revision, version, lease) plus a sorted set for ordered ranges;
// - a txn (compares + ops) runs as the script, all-or-nothing;
// - leases are a hash with a TTL plus a sorted set of expiry times; attached keys get a per-key TTL (PEXPIREAT) as a
//   backstop, keep-alive is a PEXPIRE of all of them, and every client revokes expired leases (with revisions and
//   delete events) every reapIntervalMs, as etcd's lessor does;
// - watches: every change is appended to a bounded event-log stream (ID "<revision>-<n>") and announced on a pub/sub
//   channel; a watch reads the log from the revision after the last one it delivered, so a watch resumes after a
//   disconnect without missing or repeating events, as long as the log still holds them (else: onCompacted).
//
// What it cannot promise (documented in libs/client/README.md):
// - no linearizability across a Redis failover: replication is asynchronous, so a promoted replica may have lost
//   acknowledged writes, revisions may be reused and a lock or lease may be granted twice;
// - lease expiry follows Redis's clock (TIME) and the reaping clients; if no client runs, expired keys vanish through
//   their TTL without a revision or a delete event;
// - no reads at past revisions (only the current one), no nested txns, no duplicate-key check within a txn;
// - history is the bounded log: a watcher further behind than logMaxLen events is told its revision was compacted;
// - member list and status describe the Redis server, there is no cluster membership.
import Redis, { type RedisOptions } from 'ioredis';
import { ClientError, ClientErrorCode } from '../errors';
import type {
  CompactResponse,
  Compare,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeepAlive,
  KeepAliveHandlers,
  KeyValue,
  KvClient,
  LeaseGrantResponse,
  LeaseTimeToLiveResponse,
  MemberListResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  Watch,
  WatchRequest,
  WatchHandlers,
} from '../types';
import { KV_SCRIPT } from './script';
import { RedisWatchHub } from './watch';

export interface RedisClientOptions {
  /** an ioredis client (not closed by close()), a redis:// URL, or ioredis options. */
  redis?: Redis | RedisOptions | string;
  host?: string;
  port?: number;
  db?: number;
  /** prefix of every Redis key; a hash tag keeps them in one Redis Cluster slot (default '{nestcd}:'). */
  keyPrefix?: string;
  /** events kept for watchers to resume from (default 10000). */
  logMaxLen?: number;
  /** how often this client revokes expired leases (default 500 ms, etcd's lease check interval). */
  reapIntervalMs?: number;
}

type Reply = Buffer | number | null | Reply[];

const ERROR_CODES: Record<string, ClientErrorCode> = {
  'etcdserver: key not found': ClientErrorCode.INVALID_ARGUMENT,
  'etcdserver: requested lease not found': ClientErrorCode.NOT_FOUND,
  'etcdserver: lease already exists': ClientErrorCode.FAILED_PRECONDITION,
  'etcdserver: mvcc: required revision has been compacted': ClientErrorCode.OUT_OF_RANGE,
  'etcdserver: mvcc: required revision is a future revision': ClientErrorCode.OUT_OF_RANGE,
};

export function toClientError(err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const etcd = Object.keys(ERROR_CODES).find((m) => message.includes(m));
  if (etcd) return new ClientError(ERROR_CODES[etcd], etcd, { cause: err });
  const name = err instanceof Error ? err.name : '';
  const code = name === 'ReplyError' ? ClientErrorCode.UNKNOWN : ClientErrorCode.UNAVAILABLE;
  return new ClientError(code, message, { cause: err });
}

const str = (r: Reply | undefined): string => (Buffer.isBuffer(r) ? r.toString() : r === null || r === undefined ? '' : String(r));
const int = (r: Reply | undefined): number => Number(str(r) || '0');
const bytes = (r: Reply | undefined): Buffer => (Buffer.isBuffer(r) ? r : Buffer.from(str(r)));
const arr = (r: Reply | undefined): Reply[] => (Array.isArray(r) ? r : []);

/** A kv as the script returns it: [key, value, create, mod, version, lease]. */
export function decodeKv(r: Reply): KeyValue {
  const f = arr(r);
  return { key: bytes(f[0]), value: bytes(f[1]), createRevision: int(f[2]), modRevision: int(f[3]), version: int(f[4]), lease: BigInt(str(f[5]) || '0') };
}

const header = (revision: number): ResponseHeader => ({ clusterId: 0n, memberId: 0n, revision, raftTerm: 0 });
const EMPTY = Buffer.alloc(0);

/** etcd's range options applied to the keys the script returned (all keys of the range, in key order). */
export function shapeRange(req: RangeRequest, all: KeyValue[], revision: number): RangeResponse {
  let kvs = all.filter(
    (kv) =>
      (!req.minModRevision || kv.modRevision >= req.minModRevision) &&
      (!req.maxModRevision || kv.modRevision <= req.maxModRevision) &&
      (!req.minCreateRevision || kv.createRevision >= req.minCreateRevision) &&
      (!req.maxCreateRevision || kv.createRevision <= req.maxCreateRevision),
  );
  const target = req.sortTarget ?? 'key';
  let order = req.sortOrder ?? 'none';
  if (order === 'none' && target !== 'key') order = 'ascend';
  if (order !== 'none') {
    const field = (kv: KeyValue): number | Buffer =>
      target === 'key' ? kv.key : target === 'value' ? kv.value : target === 'version' ? kv.version : target === 'create' ? kv.createRevision : kv.modRevision;
    kvs = [...kvs].sort((a, b) => {
      const x = field(a);
      const y = field(b);
      const c = Buffer.isBuffer(x) ? Buffer.compare(x, y as Buffer) : (x as number) - (y as number);
      return order === 'descend' ? -c : c;
    });
  }
  const count = all.length;
  const limited = req.limit && req.limit > 0 ? kvs.slice(0, req.limit) : kvs;
  const more = limited.length < kvs.length;
  const shaped = req.countOnly ? [] : req.keysOnly ? limited.map((kv) => ({ ...kv, value: EMPTY })) : limited;
  return { header: header(revision), kvs: shaped, more, count };
}

function compareArgs(c: Compare): Array<string | Buffer> {
  const value = c.target === 'value' ? (Buffer.isBuffer(c.value) ? c.value : Buffer.from(String(c.value))) : String(c.value);
  return [c.key, c.rangeEnd ?? EMPTY, c.target, c.result, value];
}

function opArgs(op: RequestOp): Array<string | Buffer> {
  if ('range' in op) {
    if (op.range.revision && op.range.revision > 0) throw new ClientError(ClientErrorCode.UNIMPLEMENTED, 'redis backend: a range at a past revision is not supported in a txn');
    return ['range', op.range.key, op.range.rangeEnd ?? EMPTY];
  }
  if ('put' in op) {
    const p = op.put;
    return ['put', p.key, p.value ?? EMPTY, String(p.lease ?? 0n), p.ignoreValue ? '1' : '0', p.ignoreLease ? '1' : '0'];
  }
  if ('deleteRange' in op) return ['delete', op.deleteRange.key, op.deleteRange.rangeEnd ?? EMPTY];
  throw new ClientError(ClientErrorCode.UNIMPLEMENTED, 'redis backend: nested txns are not supported');
}

export class RedisClient implements KvClient {
  readonly redis: Redis;
  readonly prefix: string;
  private readonly ownsRedis: boolean;
  private readonly logMaxLen: number;
  private readonly hub: RedisWatchHub;
  private readonly reaper: NodeJS.Timeout;
  private readonly keepAlives = new Set<{ close(): void }>();
  private closed = false;

  constructor(options: RedisClientOptions | string = {}) {
    const o: RedisClientOptions = typeof options === 'string' ? { redis: options } : options;
    if (o.redis instanceof Redis || (typeof o.redis === 'object' && typeof (o.redis as unknown as Redis).defineCommand === 'function')) {
      // an ioredis client, or something that behaves as one (ioredis-mock in unit tests)
      this.redis = o.redis as unknown as Redis;
      this.ownsRedis = false;
    } else if (typeof o.redis === 'string') {
      this.redis = new Redis(o.redis, { lazyConnect: false });
      this.ownsRedis = true;
    } else {
      this.redis = new Redis({ host: o.host ?? '127.0.0.1', port: o.port ?? 6379, db: o.db ?? 0, ...(o.redis ?? {}) });
      this.ownsRedis = true;
    }
    this.redis.on('error', () => undefined); // reported per call; ioredis reconnects by itself
    this.prefix = o.keyPrefix ?? '{nestcd}:';
    this.logMaxLen = o.logMaxLen ?? 10_000;
    this.redis.defineCommand('nestcdKv', { numberOfKeys: 1, lua: KV_SCRIPT });
    this.hub = new RedisWatchHub(this.redis, this.prefix, () => this.head());
    this.reaper = setInterval(() => void this.reap(), o.reapIntervalMs ?? 500);
    this.reaper.unref();
  }

  /** The factory form the recipes' CoordinationModule uses. */
  static async open(options: RedisClientOptions | string = {}): Promise<RedisClient> {
    const c = new RedisClient(options);
    try {
      await c.head();
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  private async script(...args: Array<string | Buffer | number>): Promise<Reply> {
    if (this.closed) throw new ClientError(ClientErrorCode.CANCELLED, 'client closed');
    try {
      const call = (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<Reply>>).nestcdKvBuffer;
      return await call.call(this.redis, this.prefix, ...args);
    } catch (err) {
      throw toClientError(err);
    }
  }

  /** [current revision, compacted revision]. */
  async head(): Promise<[number, number]> {
    const r = arr(await this.script('head'));
    return [int(r[0]), int(r[1])];
  }

  private async reap(): Promise<void> {
    if (this.closed || this.redis.status !== 'ready') return;
    await this.script('reap', this.logMaxLen).catch(() => undefined);
  }

  private async runTxn(req: TxnRequest): Promise<{ revision: number; succeeded: boolean; responses: Reply[] }> {
    const args: Array<string | Buffer | number> = ['txn', this.logMaxLen, req.compare.length];
    for (const c of req.compare) args.push(...compareArgs(c));
    for (const branch of [req.success, req.failure]) {
      args.push(branch.length);
      for (const op of branch) args.push(...opArgs(op));
    }
    const r = arr(await this.script(...args));
    return { revision: int(r[0]), succeeded: int(r[1]) === 1, responses: arr(r[2]) };
  }

  async range(req: RangeRequest): Promise<RangeResponse> {
    if (req.revision && req.revision > 0) {
      const [current] = await this.head();
      if (req.revision > current) throw new ClientError(ClientErrorCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
      if (req.revision < current) throw new ClientError(ClientErrorCode.UNIMPLEMENTED, 'redis backend: reads at a past revision are not supported');
    }
    const res = await this.runTxn({ compare: [], success: [{ range: { ...req, revision: 0 } }], failure: [] });
    return shapeRange(req, arr(arr(res.responses[0])[1]).map(decodeKv), res.revision);
  }

  async put(req: PutRequest): Promise<PutResponse> {
    const res = await this.runTxn({ compare: [], success: [{ put: req }], failure: [] });
    return this.putResponse(req, res.responses[0], res.revision);
  }

  private putResponse(req: PutRequest, r: Reply, revision: number): PutResponse {
    const out: PutResponse = { header: header(revision) };
    const prev = arr(arr(r)[1]);
    if (req.prevKv && prev.length > 0) out.prevKv = decodeKv(prev);
    return out;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    const res = await this.runTxn({ compare: [], success: [{ deleteRange: req }], failure: [] });
    return this.deleteResponse(req, res.responses[0], res.revision);
  }

  private deleteResponse(req: DeleteRangeRequest, r: Reply, revision: number): DeleteRangeResponse {
    const kvs = arr(arr(r)[1]).map(decodeKv);
    return { header: header(revision), deleted: kvs.length, prevKvs: req.prevKv ? kvs : [] };
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    const res = await this.runTxn(req);
    const ops = res.succeeded ? req.success : req.failure;
    const responses: ResponseOp[] = ops.map((op, i) => {
      const r = res.responses[i];
      if ('range' in op) return { range: shapeRange(op.range, arr(arr(r)[1]).map(decodeKv), res.revision) };
      if ('put' in op) return { put: this.putResponse(op.put, r, res.revision) };
      if ('deleteRange' in op) return { deleteRange: this.deleteResponse(op.deleteRange, r, res.revision) };
      throw new ClientError(ClientErrorCode.UNIMPLEMENTED, 'redis backend: nested txns are not supported');
    });
    return { header: header(res.revision), succeeded: res.succeeded, responses };
  }

  /** Drops the event log below `revision` (watchers from before it get onCompacted); keys keep only their latest version anyway. */
  async compact(revision: number): Promise<CompactResponse> {
    const r = arr(await this.script('compact', revision));
    return { header: header(int(r[0])) };
  }

  watch(req: WatchRequest, handlers: WatchHandlers): Watch {
    if (this.closed) throw new ClientError(ClientErrorCode.CANCELLED, 'client closed');
    return this.hub.watch(req, handlers);
  }

  async leaseGrant(ttlSeconds: number, id: bigint = 0n): Promise<LeaseGrantResponse> {
    const r = arr(await this.script('grant', ttlSeconds, id.toString()));
    return { header: header(int(r[0])), id: BigInt(str(r[1])), ttl: int(r[2]) };
  }

  async leaseRevoke(id: bigint): Promise<void> {
    await this.script('revoke', id.toString(), this.logMaxLen);
  }

  async leaseTimeToLive(id: bigint, keys = false): Promise<LeaseTimeToLiveResponse> {
    const r = arr(await this.script('ttl', id.toString(), keys ? '1' : '0'));
    return { header: header(int(r[0])), id, ttl: int(r[1]), grantedTtl: int(r[2]), keys: arr(r[3]).map(bytes) };
  }

  async leaseLeases(): Promise<bigint[]> {
    const r = arr(await this.script('leases'));
    return arr(r[1]).map((id) => BigInt(str(id)));
  }

  /** rejects with NOT_FOUND "etcdserver: requested lease not found" once the lease is gone, as etcd's client does. */
  async leaseKeepAliveOnce(id: bigint): Promise<number> {
    const r = arr(await this.script('renew', id.toString()));
    const ttl = int(r[1]);
    if (ttl <= 0) throw new ClientError(ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found');
    return ttl;
  }

  /**
   * Renews every TTL/3; lost when Redis says the lease is gone, or when no renewal was confirmed before the lease
   * could have expired (last confirmed request + TTL), also while Redis is unreachable.
   */
  leaseKeepAlive(id: bigint, handlers: KeepAliveHandlers): KeepAlive {
    let renewTimer: NodeJS.Timeout | undefined;
    let expiryTimer: NodeJS.Timeout | undefined;
    let done = false;
    const handle = {
      leaseId: id,
      close: () => {
        done = true;
        clearTimeout(renewTimer);
        clearTimeout(expiryTimer);
        this.keepAlives.delete(handle);
      },
    };
    const lose = (err: Error) => {
      if (done) return;
      handle.close();
      handlers.onLost(err);
    };
    const armExpiry = (at: number) => {
      clearTimeout(expiryTimer);
      expiryTimer = setTimeout(() => lose(new ClientError(ClientErrorCode.DEADLINE_EXCEEDED, `lease ${id.toString(16)} not confirmed within its TTL: it may have expired`)), Math.max(0, at - Date.now()));
    };
    const renew = () => {
      if (done) return;
      const sentAt = Date.now();
      this.leaseKeepAliveOnce(id).then(
        (ttl) => {
          if (done) return;
          armExpiry(sentAt + ttl * 1000);
          handlers.onKeepAlive?.(ttl);
          renewTimer = setTimeout(renew, Math.max((ttl * 1000) / 3, 100));
        },
        (err: ClientError) => {
          if (err.code === ClientErrorCode.NOT_FOUND || err.code === ClientErrorCode.CANCELLED) lose(err);
          // Redis unreachable: try again soon; the expiry timer decides when the lease counts as lost
          else if (!done) renewTimer = setTimeout(renew, 200);
        },
      );
    };
    this.keepAlives.add(handle);
    armExpiry(Date.now() + 10_000); // until the first answer tells the TTL
    renew();
    return handle;
  }

  async memberList(): Promise<MemberListResponse> {
    const [revision] = await this.head();
    const { host, port } = this.redis.options;
    return { header: header(revision), members: [{ id: 0n, name: 'redis', peerUrls: [], clientUrls: [`redis://${host ?? '127.0.0.1'}:${port ?? 6379}`], isLearner: false }] };
  }

  async status(): Promise<StatusResponse> {
    const [revision] = await this.head();
    let info = '';
    try {
      info = await this.redis.info();
    } catch (err) {
      throw toClientError(err);
    }
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
    const memory = Number(field('used_memory')) || 0;
    return {
      header: header(revision),
      version: field('redis_version'),
      dbSize: memory,
      dbSizeInUse: memory,
      leader: 0n,
      raftIndex: revision,
      raftTerm: 0,
      raftAppliedIndex: revision,
      errors: [],
      isLearner: false,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.reaper);
    for (const k of [...this.keepAlives]) k.close();
    await this.hub.close();
    if (this.ownsRedis) this.redis.disconnect();
  }
}

/** The factory the recipes' CoordinationModule looks up: a URL, or host/port/db. */
export function createRedisClient(options: RedisClientOptions | string = {}): Promise<RedisClient> {
  return RedisClient.open(options);
}
