// The engine in-process: a single nestcd member (keyspace, Raft log, leases, watches) on a data dir or in memory,
// behind the same KvClient as the remote backends. The default backend, so an app without a cluster still works.
// This is the one part of libs/client that loads server code; it is imported from '@nestcd/client/embedded' only.
import { parseConfig } from '@nestcd/config';
import { EtcdError } from '@nestcd/errors';
import * as mvcc from '@nestcd/mvcc';
import { openMember, type EtcdServer } from '@nestcd/server';
import { ClientError, ClientErrorCode } from '../errors';
import type {
  Compare,
  CompactResponse,
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
  WatchBatch,
  WatchEvent,
  WatchHandlers,
  WatchRequest,
} from '../types';

export interface EmbeddedClientOptions {
  /** where the member keeps its WAL and snapshots; absent: everything stays in memory and is lost on close. */
  dataDir?: string;
  /** member name (default 'default', as etcd's). */
  name?: string;
  /** further etcd flags for the member (e.g. ['--snapshot-count', '1000']). */
  flags?: string[];
  log?: (msg: string) => void;
}

const SORT_ORDER = { none: mvcc.SortOrder.NONE, ascend: mvcc.SortOrder.ASCEND, descend: mvcc.SortOrder.DESCEND } as const;
const SORT_TARGET = { key: mvcc.SortTarget.KEY, version: mvcc.SortTarget.VERSION, create: mvcc.SortTarget.CREATE, mod: mvcc.SortTarget.MOD, value: mvcc.SortTarget.VALUE } as const;
const CMP_TARGET = { version: mvcc.CompareTarget.VERSION, create: mvcc.CompareTarget.CREATE, mod: mvcc.CompareTarget.MOD, value: mvcc.CompareTarget.VALUE, lease: mvcc.CompareTarget.LEASE } as const;
const CMP_RESULT = { equal: mvcc.CompareResult.EQUAL, greater: mvcc.CompareResult.GREATER, less: mvcc.CompareResult.LESS, not_equal: mvcc.CompareResult.NOT_EQUAL } as const;

function toClientError(err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  if (err instanceof EtcdError) return new ClientError(err.code as number as ClientErrorCode, err.message, { cause: err });
  return new ClientError(ClientErrorCode.UNKNOWN, err instanceof Error ? err.message : String(err), { cause: err });
}

async function mapped<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toClientError(err);
  }
}

const copyKv = (kv: mvcc.KeyValue): KeyValue => ({
  key: kv.key,
  value: kv.value,
  createRevision: kv.createRevision,
  modRevision: kv.modRevision,
  version: kv.version,
  lease: kv.lease,
});

class EmbeddedWatch implements Watch {
  lastRevision: number;
  readonly ready = Promise.resolve();
  private watcher: mvcc.Watcher | undefined;
  private done = false;
  // deliveries leave the store's apply path: handlers run later, in order, and may write to the store
  private readonly queue: Array<() => void> = [];
  private draining = false;

  constructor(
    private readonly server: EtcdServer,
    req: WatchRequest,
    private readonly handlers: WatchHandlers,
    private readonly onDone: (w: EmbeddedWatch) => void,
  ) {
    const current = server.store.currentRevision;
    this.lastRevision = req.startRevision && req.startRevision > 0 ? req.startRevision - 1 : current;
    const filters = req.filters ?? [];
    this.watcher = server.store.watch(
      {
        key: req.key,
        rangeEnd: req.rangeEnd,
        startRevision: req.startRevision && req.startRevision > 0 ? req.startRevision : current + 1,
        prevKv: req.prevKv,
        noPut: filters.includes('noput'),
        noDelete: filters.includes('nodelete'),
      },
      (events, revision) => {
        const batch: WatchBatch = { header: headerOf(server, revision), events: events.map(eventOf) };
        this.enqueue(() => {
          const last = batch.events[batch.events.length - 1]?.kv.modRevision ?? this.lastRevision;
          this.lastRevision = Math.max(this.lastRevision, last);
          this.handlers.onEvents(batch);
        });
        return true;
      },
      (compactRevision) => {
        this.enqueue(() => {
          this.finish();
          if (this.handlers.onCompacted) this.handlers.onCompacted(compactRevision);
          else this.handlers.onError?.(new ClientError(ClientErrorCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'));
        });
      },
    );
  }

  private enqueue(fn: () => void): void {
    this.queue.push(fn);
    if (this.draining) return;
    this.draining = true;
    queueMicrotask(() => {
      while (this.queue.length > 0) {
        const next = this.queue.shift()!;
        if (this.done) break;
        next();
      }
      this.queue.length = 0;
      this.draining = false;
    });
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.watcher?.cancel();
    this.watcher = undefined;
    this.onDone(this);
  }

  /** the client closed: the watch is over. */
  abort(err: Error): void {
    if (this.done) return;
    this.finish();
    this.handlers.onError?.(err);
  }

  async cancel(): Promise<void> {
    this.finish();
  }
}

function eventOf(e: mvcc.Event): WatchEvent {
  const ev: WatchEvent = { type: e.type === mvcc.EventType.DELETE ? 'delete' : 'put', kv: copyKv(e.kv) };
  if (e.prevKv) ev.prevKv = copyKv(e.prevKv);
  return ev;
}

function headerOf(server: EtcdServer, revision?: number): ResponseHeader {
  return server.header(revision);
}

export class EmbeddedClient implements KvClient {
  private readonly watches = new Set<EmbeddedWatch>();
  private readonly keepAlives = new Set<{ close(): void }>();
  private closed = false;

  private constructor(
    readonly server: EtcdServer,
    /** whether close() stops the member (false for clients made with share()). */
    private readonly ownsServer = true,
  ) {}

  /** Another client on the same member (its own watches and keep-alives); closing it leaves the member running. */
  share(): EmbeddedClient {
    this.check();
    return new EmbeddedClient(this.server, false);
  }

  /** Opens (or recovers) the member and starts it. */
  static async open(options: EmbeddedClientOptions = {}): Promise<EmbeddedClient> {
    const argv = ['--name', options.name ?? 'default', ...(options.dataDir ? ['--data-dir', options.dataDir] : []), ...(options.flags ?? [])];
    // the member's settings come from the options alone, never from the app's ETCD_* environment
    const parsed = parseConfig(argv, {});
    if (parsed.kind !== 'run') throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `embedded member: unexpected flags ${argv.join(' ')}`);
    const server = await openMember(parsed.config, { inMemory: !options.dataDir, log: options.log });
    await server.start();
    return new EmbeddedClient(server);
  }

  private check(): void {
    if (this.closed) throw new ClientError(ClientErrorCode.CANCELLED, 'grpc: the client connection is closing');
  }

  private header(revision: number): ResponseHeader {
    return headerOf(this.server, revision);
  }

  private rangeReq(r: RangeRequest): mvcc.RangeRequest {
    return { ...r, sortOrder: SORT_ORDER[r.sortOrder ?? 'none'], sortTarget: SORT_TARGET[r.sortTarget ?? 'key'] };
  }

  private rangeRes(r: mvcc.RangeResponse): RangeResponse {
    return { header: this.header(r.revision), kvs: r.kvs.map(copyKv), more: r.more, count: r.count };
  }

  private putRes(r: mvcc.PutResponse): PutResponse {
    const res: PutResponse = { header: this.header(r.revision) };
    if (r.prevKv) res.prevKv = copyKv(r.prevKv);
    return res;
  }

  private deleteRes(r: mvcc.DeleteRangeResponse): DeleteRangeResponse {
    return { header: this.header(r.revision), deleted: r.deleted, prevKvs: r.prevKvs.map(copyKv) };
  }

  private compare(c: Compare): mvcc.Compare {
    const out: mvcc.Compare = { key: c.key, rangeEnd: c.rangeEnd, target: CMP_TARGET[c.target], result: CMP_RESULT[c.result] };
    switch (c.target) {
      case 'version':
        out.version = Number(c.value);
        break;
      case 'create':
        out.createRevision = Number(c.value);
        break;
      case 'mod':
        out.modRevision = Number(c.value);
        break;
      case 'value':
        out.value = Buffer.isBuffer(c.value) ? c.value : Buffer.from(String(c.value));
        break;
      case 'lease':
        out.lease = BigInt(c.value as bigint | number);
        break;
    }
    return out;
  }

  private op(op: RequestOp): mvcc.RequestOp {
    if ('range' in op) return { requestRange: this.rangeReq(op.range) };
    if ('put' in op) return { requestPut: op.put };
    if ('deleteRange' in op) return { requestDeleteRange: op.deleteRange };
    return { requestTxn: this.txnReq(op.txn) };
  }

  private txnReq(t: TxnRequest): mvcc.TxnRequest {
    return { compare: t.compare.map((c) => this.compare(c)), success: t.success.map((o) => this.op(o)), failure: t.failure.map((o) => this.op(o)) };
  }

  private opRes(r: mvcc.ResponseOp): ResponseOp {
    if ('responseRange' in r) return { range: this.rangeRes(r.responseRange) };
    if ('responsePut' in r) return { put: this.putRes(r.responsePut) };
    if ('responseDeleteRange' in r) return { deleteRange: this.deleteRes(r.responseDeleteRange) };
    return { txn: this.txnRes(r.responseTxn) };
  }

  private txnRes(r: mvcc.TxnResponse): TxnResponse {
    return { header: this.header(r.revision), succeeded: r.succeeded, responses: r.responses.map((x) => this.opRes(x)) };
  }

  range(req: RangeRequest): Promise<RangeResponse> {
    return mapped(async () => {
      this.check();
      return this.rangeRes(await this.server.range(this.rangeReq(req)));
    });
  }

  put(req: PutRequest): Promise<PutResponse> {
    return mapped(async () => {
      this.check();
      return this.putRes(await this.server.put(req));
    });
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return mapped(async () => {
      this.check();
      return this.deleteRes(await this.server.deleteRange(req));
    });
  }

  txn(req: TxnRequest): Promise<TxnResponse> {
    return mapped(async () => {
      this.check();
      return this.txnRes(await this.server.txn(this.txnReq(req)));
    });
  }

  compact(revision: number, physical = false): Promise<CompactResponse> {
    return mapped(async () => {
      this.check();
      const res = await this.server.compact({ revision, physical });
      return { header: this.header(res.revision) };
    });
  }

  watch(req: WatchRequest, handlers: WatchHandlers): Watch {
    this.check();
    const w = new EmbeddedWatch(this.server, req, handlers, (done) => this.watches.delete(done));
    this.watches.add(w);
    return w;
  }

  leaseGrant(ttlSeconds: number, id: bigint = 0n): Promise<LeaseGrantResponse> {
    return mapped(async () => {
      this.check();
      const res = await this.server.leaseGrant(ttlSeconds, id);
      return { header: this.header(res.revision), id: res.id, ttl: res.ttl };
    });
  }

  leaseRevoke(id: bigint): Promise<void> {
    return mapped(async () => {
      this.check();
      await this.server.leaseRevoke(id);
    });
  }

  leaseTimeToLive(id: bigint, keys = false): Promise<LeaseTimeToLiveResponse> {
    return mapped(async () => {
      this.check();
      const res = await this.server.leaseTimeToLive(id, keys);
      return { header: this.header(res.revision), id: res.id, ttl: res.ttl, grantedTtl: res.grantedTtl, keys: res.keys };
    });
  }

  leaseLeases(): Promise<bigint[]> {
    return mapped(() => {
      this.check();
      return this.server.leaseLeases();
    });
  }

  /** rejects with NOT_FOUND "etcdserver: requested lease not found" once the lease is gone, as etcd's client does. */
  leaseKeepAliveOnce(id: bigint): Promise<number> {
    return mapped(async () => {
      this.check();
      const ttl = await this.server.leaseRenew(id);
      if (ttl <= 0) throw new ClientError(ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found');
      return ttl;
    });
  }

  leaseKeepAlive(id: bigint, handlers: KeepAliveHandlers): KeepAlive {
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const handle = {
      leaseId: id,
      close: () => {
        done = true;
        clearTimeout(timer);
        this.keepAlives.delete(handle);
      },
    };
    const lose = (err: Error) => {
      if (done) return;
      handle.close();
      handlers.onLost(err);
    };
    const renew = () => {
      if (done) return;
      this.leaseKeepAliveOnce(id).then((ttl) => {
        if (done) return;
        handlers.onKeepAlive?.(ttl);
        timer = setTimeout(renew, Math.max((ttl * 1000) / 3, 100));
      }, lose);
    };
    this.keepAlives.add(handle);
    renew();
    return handle;
  }

  memberList(): Promise<MemberListResponse> {
    return mapped(() => {
      this.check();
      return { header: this.header(this.server.store.currentRevision), members: this.server.memberList().map((m) => ({ ...m, peerUrls: [...m.peerUrls], clientUrls: [...m.clientUrls] })) };
    });
  }

  status(): Promise<StatusResponse> {
    return mapped(() => {
      this.check();
      return { header: this.header(this.server.store.currentRevision), ...this.server.status() };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new ClientError(ClientErrorCode.CANCELLED, 'grpc: the client connection is closing');
    for (const w of [...this.watches]) w.abort(err);
    for (const k of [...this.keepAlives]) k.close();
    if (this.ownsServer) await this.server.stop();
  }
}

/** The factory the recipes' CoordinationModule looks up. */
export function createEmbeddedClient(options: EmbeddedClientOptions = {}): Promise<EmbeddedClient> {
  return EmbeddedClient.open(options);
}
