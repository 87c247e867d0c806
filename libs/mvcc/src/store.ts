// The MVCC keyspace of etcd 3.4 as a deterministic in-memory engine: a B+ tree of keys (latin1 strings of the
// key bytes, so string order is byte order), each holding its revisions; an event history indexed by revision
// for watch catch-up; leases; synced/unsynced watchers.
import BTree from 'sorted-btree';
import { constants as bufferConstants } from 'node:buffer';
import { crc32 } from 'node:zlib';
import { Errors } from '@nestcd/errors';
import { ByteArena, spanLength, spanView } from './arena';
import { Reader, Writer, corruptSnapshot } from './codec';
import {
  type Command,
  type CommandResult,
  type Compare,
  CompareResult,
  CompareTarget,
  type CompactionRequest,
  type CompactionResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type Event,
  EventType,
  type KeyValue,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResponse,
} from './types';
import { checkKeyed, checkPut, validateTxn } from './validate';
import { RangeKind, type WatchOptions, type WatchSink, type Watcher, type WatcherHost, WatcherImpl } from './watch';

export interface MvccOptions {
  /** ms, injected (default Date.now); used only for lease expiry bookkeeping. */
  clock?: () => number;
  /** seconds, default 2 (etcd: ceil(1.5 * election timeout)). */
  minLeaseTtl?: number;
  /** how watcher catch-up passes are scheduled; default setImmediate. */
  schedule?: (fn: () => void) => void;
  /** called when a watch sink or onCompacted callback throws (the watcher is then cancelled). Default: ignore. */
  onWatchError?: (err: unknown, watcherId: number) => void;
}

/** etcd's MaxLeaseTTL. */
export const MAX_LEASE_TTL = 9_000_000_000;
/** at most this many events per catch-up sink call (a single revision is never split). */
export const WATCH_BATCH_MAX_EVENTS = 1000;
/** at most this many history revisions scanned per watcher per catch-up pass. */
const WATCH_SCAN_MAX_REVS = 10_000;
const REC_OVERHEAD = 64;
const LEASE_OVERHEAD = 64;
const SNAPSHOT_MAGIC = Buffer.from('NCDMVCC1', 'latin1');

const EMPTY = Buffer.alloc(0);
const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const latin1 = (b: Buffer): string => b.toString('latin1');

interface KeyIdx {
  key: Buffer;
  /** the tree's key string, shared by this key's history events (a put's own lookup string is short-lived) */
  ks: string;
  recs: Rec[];
}
/**
 * One revision of one key: its KeyValue, which is also its event in the history. The key's revision list and the
 * history share the object, and it is the only heap object a revision has (major GC time grows with their number):
 * its value stays in the arena as a span, read through the `value` getter, and its event type is its version's
 * (0 marks a tombstone, the DELETE event's kv). Reads and watch events get copies. prevKv is the key's previous
 * live revision.
 */
class Rec implements KeyValue {
  constructor(
    readonly key: Buffer,
    /** the tree's key string, shared by this key's records */
    readonly ks: string,
    readonly createRevision: number,
    readonly modRevision: number,
    readonly sub: number,
    readonly version: number,
    readonly lease: bigint,
    public prevKv: Rec | undefined,
    /** the arena chunk and span of the value */
    private readonly chunk: Buffer,
    private readonly span: number,
  ) {}

  get value(): Buffer {
    return spanView(this.chunk, this.span);
  }

  get valueLength(): number {
    return spanLength(this.chunk, this.span);
  }

  get type(): EventType {
    return this.version === 0 ? EventType.DELETE : EventType.PUT;
  }

  /** a revision with the same value as this one (put with ignore_value) */
  static withValueOf(r: Rec, key: Buffer, ks: string, createRevision: number, modRevision: number, sub: number, version: number, lease: bigint, prevKv: Rec | undefined): Rec {
    return new Rec(key, ks, createRevision, modRevision, sub, version, lease, prevKv, r.chunk, r.span);
  }

  static tombstone(key: Buffer, ks: string, modRevision: number, sub: number, prevKv: Rec | undefined): Rec {
    return new Rec(key, ks, 0, modRevision, sub, 0, 0n, prevKv, EMPTY, 0);
  }
}
interface LeaseState {
  id: bigint;
  ttl: number;
  expiry: number;
  keys: Set<string>;
}

/** A write in progress: one main revision, sub-revisions in order of change. */
class WriteCtx {
  sub = 0;
  readonly events: Rec[] = [];
  bytes = 0;
  constructor(readonly rev: number) {}
  /** the revision reads inside this write see (etcd: beginRev, +1 once something changed). */
  get readRev(): number {
    return this.events.length > 0 ? this.rev : this.rev - 1;
  }
}

const recSize = (r: Rec): number => r.key.length + r.valueLength + REC_OVERHEAD;

const copyKv = (kv: KeyValue, keysOnly = false): KeyValue => ({
  key: kv.key,
  createRevision: kv.createRevision,
  modRevision: kv.modRevision,
  version: kv.version,
  value: keysOnly ? EMPTY : kv.value,
  lease: kv.lease,
});

/** index of the last rec with modRevision <= rev, or -1. */
function lastAtOrBelow(recs: Rec[], rev: number): number {
  const n = recs.length;
  if (n === 0) return -1;
  if (recs[n - 1].modRevision <= rev) return n - 1;
  let lo = 0;
  let hi = n - 1; // recs[hi] > rev
  if (recs[0].modRevision > rev) return -1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (recs[mid].modRevision <= rev) lo = mid;
    else hi = mid;
  }
  return lo;
}

function liveAt(idx: KeyIdx, rev: number): Rec | undefined {
  const i = lastAtOrBelow(idx.recs, rev);
  if (i < 0) return undefined;
  const kv = idx.recs[i];
  return kv.version === 0 ? undefined : kv;
}

function liveLatest(idx: KeyIdx | undefined): Rec | undefined {
  if (!idx || idx.recs.length === 0) return undefined;
  const kv = idx.recs[idx.recs.length - 1];
  return kv.version === 0 ? undefined : kv;
}

function cmpNum(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareKV(c: Compare, kv: KeyValue): boolean {
  let r: number;
  switch (c.target) {
    case CompareTarget.VALUE:
      r = Buffer.compare(kv.value, c.value ?? EMPTY);
      break;
    case CompareTarget.CREATE:
      r = cmpNum(kv.createRevision, c.createRevision ?? 0);
      break;
    case CompareTarget.MOD:
      r = cmpNum(kv.modRevision, c.modRevision ?? 0);
      break;
    case CompareTarget.VERSION:
      r = cmpNum(kv.version, c.version ?? 0);
      break;
    case CompareTarget.LEASE: {
      const l = c.lease ?? 0n;
      r = kv.lease < l ? -1 : kv.lease > l ? 1 : 0;
      break;
    }
    default:
      r = 0;
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return r === 0;
    case CompareResult.NOT_EQUAL:
      return r !== 0;
    case CompareResult.GREATER:
      return r > 0;
    case CompareResult.LESS:
      return r < 0;
    default:
      return true;
  }
}

const ZERO_KV: KeyValue = { key: EMPTY, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };

const sorters: Record<SortTarget, (a: KeyValue, b: KeyValue) => number> = {
  [SortTarget.KEY]: (a, b) => Buffer.compare(a.key, b.key),
  [SortTarget.VERSION]: (a, b) => a.version - b.version,
  [SortTarget.CREATE]: (a, b) => a.createRevision - b.createRevision,
  [SortTarget.MOD]: (a, b) => a.modRevision - b.modRevision,
  [SortTarget.VALUE]: (a, b) => Buffer.compare(a.value, b.value),
};

/** Walks the DFS-ordered compare path of a txn and its nested txns (etcd's txnPath). */
interface PathCursor {
  path: boolean[];
  i: number;
}

export interface CaptureOptions {
  /** Bytes written ahead of the encoding (a caller's framing, e.g. a member's small state). */
  prefix?: Buffer;
  /**
   * Stream the encoding: each step stops once about this many bytes are pending, and take() hands them out, the
   * buffer being reused by the next step. Without it the encoding accumulates in one buffer for finish().
   */
  chunkBytes?: number;
}

/** A snapshot being encoded in steps: see MvccStore.captureSnapshot. */
export class SnapshotCapture {
  readonly writer: Writer;
  private readonly keys: Iterator<[string, KeyIdx]>;
  /** the key being encoded when a step ran out: its revisions (as of rev) and how many are in */
  private current?: { recs: Rec[]; count: number; done: number };
  private finished = false;
  private cancelled = false;
  private readonly chunkBytes: number;

  constructor(
    tree: BTree<string, KeyIdx>,
    private readonly rev: number,
    size: number,
    opts: CaptureOptions,
    private readonly release: (c: SnapshotCapture) => void,
  ) {
    const prefix = opts.prefix ?? EMPTY;
    this.chunkBytes = opts.chunkBytes ?? Infinity;
    // Whole: size (keys, values and a per-revision overhead) bounds the encoding: one allocation, never grown and
    // copied (within the largest Buffer Node allows; the estimate runs high, so it alone must not exceed that).
    // Streamed: one chunk and some slack for the revision that crosses its end, reused for every chunk.
    const initial = opts.chunkBytes !== undefined ? opts.chunkBytes + (64 << 10) : prefix.length + size + 1024;
    this.writer = new Writer(Math.min(bufferConstants.MAX_LENGTH, Math.max(1 << 12, initial)));
    this.writer.raw(prefix);
    this.keys = tree.entries();
  }

  /**
   * Encodes up to `budget` more revisions, a key's revisions being split across steps where needed (a key rewritten
   * a hundred thousand times is as much work as a hundred thousand keys); true once every key is in. A streamed
   * capture's step also ends once a chunk's worth of bytes is pending.
   */
  step(budget: number): boolean {
    const w = this.writer;
    const chunkBytes = this.chunkBytes;
    let left = budget;
    while (left > 0 && !this.finished && w.length < chunkBytes) {
      let cur = this.current;
      if (!cur) {
        const next = this.keys.next();
        if (next.done) {
          this.finished = true;
          this.release(this);
          break;
        }
        const idx = next.value[1];
        // revisions appended since the capture began are newer than its revision, and recs only ever grow at the
        // end (a compaction meanwhile gives the live tree a new list), so [0, count) stays as it was
        const count = lastAtOrBelow(idx.recs, this.rev) + 1;
        w.bytes(idx.key);
        w.uint(count);
        cur = this.current = { recs: idx.recs, count, done: 0 };
        if (count === 0) left--;
      }
      const recs = cur.recs;
      const end = Math.min(cur.count, cur.done + left);
      let i = cur.done;
      for (; i < end && w.length < chunkBytes; i++) {
        const kv = recs[i];
        w.uint(kv.modRevision);
        w.uint(kv.sub);
        w.uint(kv.version);
        if (kv.version !== 0) {
          w.uint(kv.createRevision);
          w.i64(kv.lease);
          w.bytes(kv.value);
        }
      }
      left -= i - cur.done;
      cur.done = i;
      if (i === cur.count) this.current = undefined;
    }
    return this.finished;
  }

  private checkFinished(): void {
    if (this.cancelled) throw new Error('snapshot capture cancelled');
    if (!this.finished) throw new Error('snapshot capture not finished');
  }

  /** Gives the capture up: the store stops keeping key records for it. */
  cancel(): void {
    this.cancelled = true;
    this.finished = true;
    this.current = undefined;
    this.release(this);
  }

  /**
   * The bytes encoded since the last take() (the prefix and the first steps' bytes, the first time). A view of the
   * capture's buffer, valid until the next step writes over it.
   */
  take(): Buffer {
    if (this.cancelled) throw new Error('snapshot capture cancelled');
    const bytes = this.writer.view();
    this.writer.rewind();
    return bytes;
  }

  /**
   * The prefix and the encoded state (what MvccStore.restore reads after the prefix); step() must have returned true.
   * Not copied out of the capture's buffer (a copy of hundreds of megabytes would hold the event loop).
   */
  finish(): Buffer {
    this.checkFinished();
    return this.writer.view();
  }
}

export class MvccStore implements WatcherHost {
  private readonly clock: () => number;
  private readonly minLeaseTtl: number;
  private readonly schedule: (fn: () => void) => void;
  private readonly onWatchError: (err: unknown, watcherId: number) => void;

  private tree = new BTree<string, KeyIdx>(undefined, cmpStr);
  private rev = 1;
  private compactRev = 0;
  /**
   * The event history, flat: revision r (histBase <= r <= rev) owns histEvents[histStart[r - histBase]] up to
   * histStart[r - histBase + 1]. Flat arrays instead of one array per revision: one object less per revision.
   */
  private histEvents: Rec[] = [];
  private histStart: number[] = [0, 0];
  private histBase = 1;
  private size = 0;
  /** the kept keys and values (see ByteArena) */
  private readonly arena = new ByteArena();
  private readonly leases = new Map<bigint, LeaseState>();
  /** snapshot captures still being written (see captureSnapshot) */
  private readonly captures = new Set<SnapshotCapture>();

  // watchers
  private nextWatchId = 1;
  private readonly syncedSingle = new Map<string, Set<WatcherImpl>>();
  private readonly syncedRange = new Set<WatcherImpl>();
  private syncedCount = 0;
  private readonly unsynced = new Set<WatcherImpl>();
  private passScheduled = false;
  private notifying = false;
  private readonly pendingNotify: Array<[number, Rec[]]> = [];

  constructor(opts: MvccOptions = {}) {
    this.clock = opts.clock ?? Date.now;
    this.minLeaseTtl = opts.minLeaseTtl ?? 2;
    this.schedule = opts.schedule ?? ((fn) => void setImmediate(fn));
    this.onWatchError = opts.onWatchError ?? (() => undefined);
  }

  get currentRevision(): number {
    return this.rev;
  }

  get compactRevision(): number {
    return this.compactRev;
  }

  // ------------------------------------------------------------------ apply

  apply(cmd: Command): CommandResult {
    if ('put' in cmd && cmd.put) return this.applyPut(cmd.put);
    if ('deleteRange' in cmd && cmd.deleteRange) return this.applyDelete(cmd.deleteRange);
    if ('txn' in cmd && cmd.txn) return this.applyTxn(cmd.txn);
    if ('compaction' in cmd && cmd.compaction) return this.applyCompaction(cmd.compaction);
    if ('leaseGrant' in cmd && cmd.leaseGrant) return this.applyLeaseGrant(cmd.leaseGrant);
    if ('leaseRevoke' in cmd && cmd.leaseRevoke) return this.applyLeaseRevoke(cmd.leaseRevoke);
    throw Errors.invalidArgument('nestcd: mvcc: unknown command');
  }

  private applyPut(p: PutRequest): PutResponse {
    checkPut(p);
    const lease = p.lease ?? 0n;
    if (lease !== 0n && !this.leases.has(lease)) throw Errors.leaseNotFound();
    if ((p.ignoreValue || p.ignoreLease) && !liveLatest(this.tree.get(latin1(p.key)))) throw Errors.keyNotFound();
    const ctx = new WriteCtx(this.rev + 1);
    const resp = this.execPut(ctx, p);
    this.commit(ctx);
    return resp;
  }

  private applyDelete(d: DeleteRangeRequest): DeleteRangeResponse {
    checkKeyed(d);
    const ctx = new WriteCtx(this.rev + 1);
    const resp = this.execDelete(ctx, d);
    this.commit(ctx);
    return resp;
  }

  private applyTxn(rt: TxnRequest): TxnResponse {
    validateTxn(rt, Infinity);
    const path: boolean[] = [];
    this.comparePath(rt, path);
    // check everything on the chosen path first (puts, then ranges, like etcd), so a failing txn changes nothing
    this.checkTxn(rt, { path, i: 0 }, true);
    this.checkTxn(rt, { path, i: 0 }, false);
    const ctx = new WriteCtx(this.rev + 1);
    const resp = this.execTxn(ctx, rt, { path, i: 0 });
    resp.revision = ctx.readRev;
    this.commit(ctx);
    return resp;
  }

  private applyCompaction(c: CompactionRequest): CompactionResponse {
    const rev = c.revision;
    if (!(rev > this.compactRev)) throw Errors.compacted();
    if (rev > this.rev) throw Errors.futureRev();
    this.compactRev = rev;
    // keyspace: per key keep the newest revision <= rev (unless a tombstone) and everything newer
    this.tree.editAll((_ks, idx) => {
      const recs = idx.recs;
      const i = lastAtOrBelow(recs, rev);
      if (i < 0) return;
      // the kept record is at or below rev, where the history keeps no prevKv: let the old value go
      recs[i].prevKv = undefined;
      const drop = recs[i].version === 0 ? i + 1 : i;
      if (drop === 0) return;
      for (let j = 0; j < drop; j++) this.size -= recSize(recs[j]);
      if (drop === recs.length) return { delete: true };
      if (this.captures.size === 0) {
        idx.recs = recs.slice(drop);
        return;
      }
      // A snapshot capture in progress still reads this key's old revisions from its clone of the tree, which
      // shares the record: the live tree gets a new one (copy-on-write) instead.
      return { value: { key: idx.key, ks: idx.ks, recs: recs.slice(drop) } };
    });
    // history: drop revisions < rev; at rev itself only what the keyspace kept (puts, no prevKv)
    if (rev > this.histBase) {
      const from = this.histStart[rev - this.histBase];
      const to = this.histStart[rev - this.histBase + 1];
      const kept: Rec[] = [];
      for (let i = from; i < to; i++) {
        const e = this.histEvents[i];
        if (e.type !== EventType.PUT) continue;
        e.prevKv = undefined; // shared with the key's revision list, which never reads prevKv
        kept.push(e);
      }
      const shift = to - kept.length;
      const starts = [0];
      for (let i = rev - this.histBase + 1; i < this.histStart.length; i++) starts.push(this.histStart[i] - shift);
      this.histEvents = kept.concat(this.histEvents.slice(to));
      this.histStart = starts;
      this.histBase = rev;
    }
    if (this.unsynced.size > 0) this.schedulePass();
    return { revision: this.rev };
  }

  private applyLeaseGrant(g: LeaseGrantRequest): LeaseGrantResponse {
    if (g.id === 0n) throw Errors.leaseNotFound();
    if (g.ttl > MAX_LEASE_TTL) throw Errors.leaseTTLTooLarge();
    if (this.leases.has(g.id)) throw Errors.leaseExist();
    const ttl = Math.max(g.ttl, this.minLeaseTtl);
    this.leases.set(g.id, { id: g.id, ttl, expiry: this.clock() + ttl * 1000, keys: new Set() });
    return { revision: this.rev, id: g.id, ttl };
  }

  private applyLeaseRevoke(r: LeaseRevokeRequest): LeaseRevokeResponse {
    const l = this.leases.get(r.id);
    if (!l) throw Errors.leaseNotFound();
    const keys = [...l.keys].sort(cmpStr);
    const ctx = new WriteCtx(this.rev + 1);
    for (const ks of keys) {
      const idx = this.tree.get(ks);
      if (idx) this.deleteKey(ctx, ks, idx);
    }
    this.leases.delete(r.id);
    this.commit(ctx);
    return { revision: this.rev };
  }

  // ------------------------------------------------------------------ write execution

  private execPut(ctx: WriteCtx, p: PutRequest): PutResponse {
    let ks = latin1(p.key);
    let idx = this.tree.get(ks);
    if (idx) ks = idx.ks;
    const prev = liveLatest(idx);
    const lease = p.ignoreLease ? prev!.lease : (p.lease ?? 0n);
    const key = idx ? idx.key : this.arena.copyLatin1(ks);
    const createRevision = prev ? prev.createRevision : ctx.rev;
    const version = prev ? prev.version + 1 : 1;
    let rec: Rec;
    if (p.ignoreValue) rec = Rec.withValueOf(prev!, key, ks, createRevision, ctx.rev, ctx.sub++, version, lease, prev);
    else {
      const span = this.arena.keep(p.value ?? EMPTY);
      rec = new Rec(key, ks, createRevision, ctx.rev, ctx.sub++, version, lease, prev, this.arena.held, span);
    }
    if (idx) idx.recs.push(rec);
    // a one-element literal is sized exactly; [] and push() would reserve 17 slots (about 130 bytes more per key)
    else this.tree.set(ks, { key, ks, recs: [rec] });
    ctx.bytes += recSize(rec);
    if (prev && prev.lease !== 0n) this.leases.get(prev.lease)?.keys.delete(ks);
    if (lease !== 0n) this.leases.get(lease)?.keys.add(ks);
    ctx.events.push(rec);
    const resp: PutResponse = { revision: ctx.rev };
    if (p.prevKv && prev) resp.prevKv = copyKv(prev);
    return resp;
  }

  private deleteKey(ctx: WriteCtx, ks: string, idx: KeyIdx): KeyValue | undefined {
    const prev = liveLatest(idx);
    if (!prev) return undefined;
    const rec = Rec.tombstone(idx.key, ks, ctx.rev, ctx.sub++, prev);
    idx.recs.push(rec);
    ctx.bytes += recSize(rec);
    if (prev.lease !== 0n) this.leases.get(prev.lease)?.keys.delete(ks);
    ctx.events.push(rec);
    return prev;
  }

  private execDelete(ctx: WriteCtx, d: DeleteRangeRequest): DeleteRangeResponse {
    const targets: Array<[string, KeyIdx]> = [];
    this.forEachKey(d.key, d.rangeEnd, (ks, idx) => {
      if (liveLatest(idx)) targets.push([ks, idx]);
    });
    const prevKvs: KeyValue[] = [];
    for (const [ks, idx] of targets) {
      const prev = this.deleteKey(ctx, ks, idx);
      if (d.prevKv && prev) prevKvs.push(copyKv(prev));
    }
    return { revision: ctx.readRev, deleted: targets.length, prevKvs };
  }

  private comparePath(rt: TxnRequest, path: boolean[]): void {
    const ok = (rt.compare ?? []).every((c) => this.applyCompare(c));
    path.push(ok);
    for (const op of (ok ? rt.success : rt.failure) ?? []) {
      if ('requestTxn' in op && op.requestTxn) this.comparePath(op.requestTxn, path);
    }
  }

  private applyCompare(c: Compare): boolean {
    const { kvs } = this.rangeKeys(c.key, c.rangeEnd, this.rev, 0, false);
    if (kvs.length === 0) {
      // nil == empty in gRPC: a value compare on a missing key always fails
      if (c.target === CompareTarget.VALUE) return false;
      return compareKV(c, ZERO_KV);
    }
    for (const kv of kvs) if (!compareKV(c, kv)) return false;
    return true;
  }

  /** etcd's checkRequests with checkRequestPut (puts=true) or checkRequestRange, against the pre-txn state. */
  private checkTxn(rt: TxnRequest, cur: PathCursor, puts: boolean): void {
    const ok = cur.path[cur.i++];
    for (const op of (ok ? rt.success : rt.failure) ?? []) {
      if ('requestTxn' in op && op.requestTxn) {
        this.checkTxn(op.requestTxn, cur, puts);
      } else if (puts && 'requestPut' in op && op.requestPut) {
        const p = op.requestPut;
        if ((p.ignoreValue || p.ignoreLease) && !liveLatest(this.tree.get(latin1(p.key)))) throw Errors.keyNotFound();
        const lease = p.lease ?? 0n;
        if (lease !== 0n && !this.leases.has(lease)) throw Errors.leaseNotFound();
      } else if (!puts && 'requestRange' in op && op.requestRange) {
        const rev = op.requestRange.revision ?? 0;
        if (rev === 0) continue;
        if (rev > this.rev) throw Errors.futureRev();
        if (rev < this.compactRev) throw Errors.compacted();
      }
    }
  }

  private execTxn(ctx: WriteCtx, rt: TxnRequest, cur: PathCursor): TxnResponse {
    const ok = cur.path[cur.i++];
    const responses: ResponseOp[] = [];
    for (const op of (ok ? rt.success : rt.failure) ?? []) {
      if ('requestRange' in op && op.requestRange) {
        responses.push({ responseRange: this.doRange(op.requestRange, ctx.readRev) });
      } else if ('requestPut' in op && op.requestPut) {
        responses.push({ responsePut: this.execPut(ctx, op.requestPut) });
      } else if ('requestDeleteRange' in op && op.requestDeleteRange) {
        responses.push({ responseDeleteRange: this.execDelete(ctx, op.requestDeleteRange) });
      } else if ('requestTxn' in op && op.requestTxn) {
        // etcd 3.4 leaves the header of nested txn responses empty: revision 0
        responses.push({ responseTxn: this.execTxn(ctx, op.requestTxn, cur) });
      }
    }
    return { revision: 0, succeeded: ok, responses };
  }

  private commit(ctx: WriteCtx): void {
    if (ctx.events.length === 0) return;
    this.rev = ctx.rev;
    const evs = ctx.events;
    for (let i = 0; i < evs.length; i++) this.histEvents.push(evs[i]);
    this.histStart.push(this.histEvents.length);
    this.size += ctx.bytes;
    this.notify(ctx.rev, ctx.events);
  }

  // ------------------------------------------------------------------ reads

  range(req: RangeRequest): RangeResponse {
    checkKeyed(req);
    return this.doRange(req, this.rev);
  }

  /** Visits keys of the range in byte order; f returns true to stop. */
  private forEachKey(key: Buffer, rangeEnd: Buffer | undefined, f: (ks: string, idx: KeyIdx) => boolean | void): void {
    const ks = latin1(key);
    if (!rangeEnd || rangeEnd.length === 0) {
      const idx = this.tree.get(ks);
      if (idx) f(ks, idx);
      return;
    }
    let hi: string;
    let incl: boolean;
    if (rangeEnd.length === 1 && rangeEnd[0] === 0) {
      const max = this.tree.maxKey();
      if (max === undefined || max < ks) return;
      hi = max;
      incl = true;
    } else {
      hi = latin1(rangeEnd);
      if (hi <= ks) return;
      incl = false;
    }
    this.tree.forRange(ks, hi, incl, (k, v) => (f(k, v) ? { break: true } : undefined));
  }

  /** mvcc rangeKeys: live kvs of the range at rev (internal objects), up to limit (0 = all), and the full count. */
  private rangeKeys(key: Buffer, end: Buffer | undefined, rev: number, limit: number, countOnly: boolean) {
    const kvs: KeyValue[] = [];
    let count = 0;
    const latest = rev >= this.rev;
    this.forEachKey(key, end, (_ks, idx) => {
      const kv = latest ? liveLatestAtOrBelow(idx, rev) : liveAt(idx, rev);
      if (!kv) return;
      count++;
      if (!countOnly && (limit <= 0 || kvs.length < limit)) kvs.push(kv);
    });
    return { kvs, count };
  }

  /** etcd's applierV3backend.Range over a view whose current revision is curRev. */
  private doRange(r: RangeRequest, curRev: number): RangeResponse {
    let rev = r.revision ?? 0;
    if (rev > curRev) throw Errors.futureRev();
    if (rev <= 0) rev = curRev;
    if (rev < this.compactRev) throw Errors.compacted();

    const sortOrder = r.sortOrder ?? SortOrder.NONE;
    const sortTarget = r.sortTarget ?? SortTarget.KEY;
    const minMod = r.minModRevision ?? 0;
    const maxMod = r.maxModRevision ?? 0;
    const minCreate = r.minCreateRevision ?? 0;
    const maxCreate = r.maxCreateRevision ?? 0;
    const reqLimit = r.limit ?? 0;
    let limit = reqLimit;
    if (sortOrder !== SortOrder.NONE || minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0) limit = 0;
    if (limit > 0) limit++;

    const res = this.rangeKeys(r.key, r.rangeEnd, rev, limit, !!r.countOnly);
    let kvs = res.kvs;
    if (maxMod !== 0) kvs = kvs.filter((kv) => !(kv.modRevision > maxMod));
    if (minMod !== 0) kvs = kvs.filter((kv) => !(kv.modRevision < minMod));
    if (maxCreate !== 0) kvs = kvs.filter((kv) => !(kv.createRevision > maxCreate));
    if (minCreate !== 0) kvs = kvs.filter((kv) => !(kv.createRevision < minCreate));

    let order = sortOrder;
    if (sortTarget !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
    if (order !== SortOrder.NONE) {
      const cmp = sorters[sortTarget] ?? sorters[SortTarget.KEY];
      if (kvs === res.kvs) kvs = kvs.slice();
      if (order === SortOrder.DESCEND) kvs.sort((a, b) => cmp(b, a));
      else kvs.sort(cmp);
    }
    let more = false;
    if (reqLimit > 0 && kvs.length > reqLimit) {
      kvs = kvs.slice(0, reqLimit);
      more = true;
    }
    const keysOnly = !!r.keysOnly;
    return { revision: curRev, kvs: kvs.map((kv) => copyKv(kv, keysOnly)), more, count: res.count };
  }

  // ------------------------------------------------------------------ leases (local, not replicated)

  leaseKeepAlive(id: bigint): number {
    const l = this.leases.get(id);
    const now = this.clock();
    // an expired lease is on its way to being revoked: etcd answers not found
    if (!l || l.expiry <= now) throw Errors.leaseNotFound();
    l.expiry = now + l.ttl * 1000;
    return l.ttl;
  }

  leaseTimeToLive(id: bigint, withKeys: boolean): LeaseTimeToLiveResponse {
    const l = this.leases.get(id);
    if (!l) return { revision: this.rev, id, ttl: -1, grantedTtl: 0, keys: [] };
    const ttl = Math.max(0, Math.floor((l.expiry - this.clock()) / 1000));
    const keys = withKeys ? [...l.keys].sort(cmpStr).map((k) => Buffer.from(k, 'latin1')) : [];
    return { revision: this.rev, id, ttl, grantedTtl: l.ttl, keys };
  }

  /** all leases, soonest expiry first (ties by id), as etcd's Leases(). */
  leaseList(): bigint[] {
    return [...this.leases.values()].sort(byExpiry).map((l) => l.id);
  }

  /** leases whose expiry <= clock(), soonest first; the server then applies leaseRevoke for each. */
  expiredLeases(): bigint[] {
    const now = this.clock();
    const out: LeaseState[] = [];
    for (const l of this.leases.values()) if (l.expiry <= now) out.push(l);
    return out.sort(byExpiry).map((l) => l.id);
  }

  hasLease(id: bigint): boolean {
    return this.leases.has(id);
  }

  /** re-arms every lease with its full TTL from clock() (etcd does this when a member becomes leader). */
  renewAllLeases(): void {
    const now = this.clock();
    for (const l of this.leases.values()) l.expiry = now + l.ttl * 1000;
  }

  // ------------------------------------------------------------------ watches

  watch(opts: WatchOptions, sink: WatchSink, onCompacted: (compactRevision: number) => void): Watcher {
    const ks = latin1(opts.key ?? EMPTY);
    let kind = RangeKind.Single;
    let es = '';
    if (opts.rangeEnd && opts.rangeEnd.length > 0) {
      if (opts.rangeEnd.length === 1 && opts.rangeEnd[0] === 0) kind = RangeKind.FromKey;
      else {
        kind = RangeKind.Range;
        es = latin1(opts.rangeEnd);
      }
    }
    const w = new WatcherImpl(
      this.nextWatchId++,
      this,
      ks,
      kind,
      es,
      !!opts.prevKv,
      !!opts.noPut,
      !!opts.noDelete,
      sink,
      onCompacted,
    );
    const start = opts.startRevision ?? 0;
    if (start <= 0 || start > this.rev) {
      w.nextRev = Math.max(this.rev + 1, start);
      this.addSynced(w);
    } else {
      w.nextRev = start;
      this.unsynced.add(w);
      this.schedulePass();
    }
    return w;
  }

  /** @internal */
  cancelWatcher(w: WatcherImpl): void {
    if (w.cancelled) return;
    w.cancelled = true;
    if (w._synced) this.removeSynced(w);
    else this.unsynced.delete(w);
  }

  /** @internal */
  resumeWatcher(w: WatcherImpl): void {
    if (w.cancelled || !w.paused) return;
    w.paused = false;
    this.schedulePass();
  }

  /**
   * Takes over every live watcher of `old` (a member that installed a snapshot replaces its store): each resumes
   * from the revision it had reached there, catching up from this store's history, or is told it was compacted.
   */
  adoptWatchers(old: MvccStore): void {
    const live = [...old.unsynced];
    for (const set of old.syncedSingle.values()) live.push(...set);
    live.push(...old.syncedRange);
    for (const w of live) {
      if (w.cancelled) continue;
      // A synced watcher has seen everything up to the old store's revision, whatever it last received.
      if (w._synced) w.nextRev = Math.max(w.nextRev, old.rev + 1);
      old.cancelWatcher(w);
      w.cancelled = false;
      w._synced = false;
      w.host = this;
      this.unsynced.add(w);
    }
    this.nextWatchId = Math.max(this.nextWatchId, old.nextWatchId);
    if (this.unsynced.size > 0) this.schedulePass();
  }

  /** number of watchers (synced, unsynced). */
  watcherCounts(): { synced: number; unsynced: number } {
    return { synced: this.syncedCount, unsynced: this.unsynced.size };
  }

  private addSynced(w: WatcherImpl): void {
    w._synced = true;
    this.syncedCount++;
    if (w.kind === RangeKind.Single) {
      let set = this.syncedSingle.get(w.ks);
      if (!set) this.syncedSingle.set(w.ks, (set = new Set()));
      set.add(w);
    } else {
      this.syncedRange.add(w);
    }
  }

  private removeSynced(w: WatcherImpl): void {
    w._synced = false;
    this.syncedCount--;
    if (w.kind === RangeKind.Single) {
      const set = this.syncedSingle.get(w.ks);
      if (set) {
        set.delete(w);
        if (set.size === 0) this.syncedSingle.delete(w.ks);
      }
    } else {
      this.syncedRange.delete(w);
    }
  }

  /**
   * w's event for e, with copies (a revision record carries the store's own fields beside the KeyValue ones);
   * `shared` keeps them for the other watchers that get the same event.
   */
  private toEvent(w: WatcherImpl, e: Rec, shared: { kv?: KeyValue; prevKv?: KeyValue } = {}): Event {
    const kv = (shared.kv ??= copyKv(e));
    return w.prevKv && e.prevKv ? { type: e.type, kv, prevKv: (shared.prevKv ??= copyKv(e.prevKv)) } : { type: e.type, kv };
  }

  private wants(w: WatcherImpl, e: Rec): boolean {
    return e.type === EventType.PUT ? !w.noPut : !w.noDelete;
  }

  /** calls the sink; false = backed up. A throwing sink cancels its watcher. */
  private callSink(w: WatcherImpl, evs: Event[], rev: number): boolean {
    try {
      return w.sink(evs, rev) !== false;
    } catch (err) {
      this.cancelWatcher(w);
      this.onWatchError(err, w.id);
      return true;
    }
  }

  private notify(rev: number, events: Rec[]): void {
    if (this.syncedCount === 0) return;
    if (this.notifying) {
      // a sink applied a write: deliver it after the current revision, in order
      this.pendingNotify.push([rev, events]);
      return;
    }
    this.notifying = true;
    try {
      this.deliverLive(rev, events);
      while (this.pendingNotify.length > 0) {
        const [r, e] = this.pendingNotify.shift()!;
        this.deliverLive(r, e);
      }
    } finally {
      this.notifying = false;
    }
  }

  private deliverLive(rev: number, events: Rec[]): void {
    if (this.syncedCount === 0) return;
    const per = new Map<WatcherImpl, Event[]>();
    let shared = {}; // an event's copies, made for its first watcher and shared by the others
    const add = (w: WatcherImpl, e: Rec) => {
      if (rev < w.nextRev || !this.wants(w, e)) return;
      let list = per.get(w);
      if (!list) per.set(w, (list = []));
      list.push(this.toEvent(w, e, shared));
    };
    const hasRange = this.syncedRange.size > 0;
    for (const e of events) {
      shared = {};
      const set = this.syncedSingle.get(e.ks);
      if (set) for (const w of set) add(w, e);
      if (hasRange) for (const w of this.syncedRange) if (w.matches(e.ks)) add(w, e);
    }
    for (const [w, evs] of per) {
      if (!w._synced || w.cancelled || rev < w.nextRev) continue;
      w.nextRev = rev + 1;
      if (!this.callSink(w, evs, rev) && w._synced && !w.cancelled) {
        // backed up: park it in the unsynced set; it catches up from history after resume()
        this.removeSynced(w);
        w.paused = true;
        this.unsynced.add(w);
      }
    }
  }

  private schedulePass(): void {
    if (this.passScheduled) return;
    this.passScheduled = true;
    this.schedule(() => {
      this.passScheduled = false;
      this.runPass();
    });
  }

  /** One catch-up pass: compacted watchers are told and dropped; each active unsynced watcher gets one batch. */
  private runPass(): void {
    let again = false;
    for (const w of [...this.unsynced]) {
      if (w.cancelled || w._synced) continue;
      if (w.nextRev < this.compactRev) {
        this.unsynced.delete(w);
        w.cancelled = true;
        try {
          w.onCompacted(this.compactRev);
        } catch (err) {
          this.onWatchError(err, w.id);
        }
        continue;
      }
      if (w.paused) continue;
      this.catchUp(w);
      if (!w._synced && !w.paused && !w.cancelled) again = true;
    }
    if (again) this.schedulePass();
  }

  private catchUp(w: WatcherImpl): void {
    const cur = this.rev;
    let r = w.nextRev;
    const evs: Event[] = [];
    let scanned = 0;
    const tmp: Event[] = [];
    while (r <= cur && scanned < WATCH_SCAN_MAX_REVS) {
      const end = this.histStart[r - this.histBase + 1];
      tmp.length = 0;
      for (let i = this.histStart[r - this.histBase]; i < end; i++) {
        const e = this.histEvents[i];
        if (w.matches(e.ks) && this.wants(w, e)) tmp.push(this.toEvent(w, e));
      }
      if (evs.length > 0 && evs.length + tmp.length > WATCH_BATCH_MAX_EVENTS) break;
      for (const e of tmp) evs.push(e);
      r++;
      scanned++;
      if (evs.length >= WATCH_BATCH_MAX_EVENTS) break;
    }
    w.nextRev = r;
    if (evs.length > 0 && !this.callSink(w, evs, cur)) {
      if (!w.cancelled) w.paused = true;
      return;
    }
    if (!w.cancelled && !w.paused && !w._synced && w.nextRev > this.rev) {
      this.unsynced.delete(w);
      this.addSynced(w);
    }
  }

  // ------------------------------------------------------------------ integrity, size, snapshots

  /**
   * crc32 over every key revision <= revision that a compaction at `revision` would keep or that is newer than
   * the compact revision (etcd's HashByRev rule, including its "keep set empty" quirk). revision <= 0: current.
   */
  hashKV(revision: number): { hash: number; compactRevision: number; revision: number } {
    if (revision > 0 && revision <= this.compactRev) throw Errors.compacted();
    if (revision > 0 && revision > this.rev) throw Errors.futureRev();
    const at = revision > 0 ? revision : this.rev;
    let keepNonEmpty = false;
    this.tree.forEachPair((_k, idx) => {
      if (liveAt(idx, at)) {
        keepNonEmpty = true;
        return { break: true };
      }
      return undefined;
    });
    const hdr = Buffer.alloc(8 * 5 + 4);
    let h = crc32(Buffer.from('key', 'latin1'));
    const compactRev = this.compactRev;
    this.tree.forEachPair((_k, idx) => {
      const recs = idx.recs;
      const last = lastAtOrBelow(recs, at);
      if (last < 0) return;
      const keepIdx = recs[last].version !== 0 ? last : -1;
      for (let j = 0; j <= last; j++) {
        const kv = recs[j];
        const sub = kv.sub;
        if (kv.modRevision <= compactRev && keepNonEmpty && j !== keepIdx) continue;
        hdr.writeDoubleBE(kv.modRevision, 0);
        hdr.writeDoubleBE(sub, 8);
        hdr.writeDoubleBE(kv.createRevision, 16);
        hdr.writeDoubleBE(kv.version, 24);
        hdr.writeBigInt64BE(kv.lease, 32);
        hdr.writeUInt32BE(kv.key.length, 40);
        h = crc32(hdr, h);
        h = crc32(kv.key, h);
        h = crc32(kv.value, h);
      }
    });
    return { hash: h >>> 0, compactRevision: compactRev, revision: this.rev };
  }

  /** approximate bytes held (keys + values + per-revision and per-lease overhead). */
  dbSize(): number {
    return this.size + this.leases.size * LEASE_OVERHEAD;
  }

  /** Binary encoding of the whole state: revisions, every key revision kept, leases (id + granted TTL). */
  snapshot(): Buffer {
    const capture = this.captureSnapshot();
    capture.step(Infinity);
    return capture.finish();
  }

  /**
   * The state at the current revision, encoded a step at a time (the same bytes as snapshot() now), so a large
   * keyspace is written out without holding the event loop for seconds. Writes made between steps are left out:
   * the key tree is a copy-on-write clone and each key's revisions are cut at the captured revision; a compaction
   * meanwhile gives the live tree new key records rather than trim the ones the clone shares. See CaptureOptions
   * for a prefix written ahead of the encoding and for a streamed capture.
   */
  captureSnapshot(opts: CaptureOptions = {}): SnapshotCapture {
    const capture = new SnapshotCapture(this.tree.clone(), this.rev, this.size, opts, (c) => this.captures.delete(c));
    const w = capture.writer;
    w.raw(SNAPSHOT_MAGIC);
    w.uint(this.rev);
    w.uint(this.compactRev);
    const leases = [...this.leases.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    w.uint(leases.length);
    for (const l of leases) {
      w.i64(l.id);
      w.uint(l.ttl);
    }
    w.uint(this.tree.size);
    this.captures.add(capture);
    return capture;
  }

  /** exact inverse of snapshot(); leases are re-armed with their full TTL from clock(). */
  static restore(buf: Buffer, opts?: MvccOptions): MvccStore {
    const steps = MvccStore.restoreInSteps(buf, opts);
    steps.step(Infinity);
    return steps.finish();
  }

  /**
   * restore() a number of revisions per step (a member installing a leader's snapshot of a million keys would otherwise
   * hold its event loop for seconds). The new store is only handed out by finish(), after the last step.
   * `zeroPadded`: the encoding may be followed by zero bytes (a `snapshot save` file is padded to 512-byte blocks).
   */
  static restoreInSteps(buf: Buffer, opts?: MvccOptions, zeroPadded = false): SnapshotRestore {
    const s = new MvccStore(opts);
    const r = new Reader(buf, false); // what is kept is copied into the store's arena
    if (!r.raw(SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw corruptSnapshot();
    s.rev = r.uint();
    s.compactRev = r.uint();
    if (s.rev < 1 || s.compactRev > s.rev) throw corruptSnapshot();
    const now = s.clock();
    const nLeases = r.uint();
    for (let i = 0; i < nLeases; i++) {
      const id = r.i64();
      const ttl = r.uint();
      s.leases.set(id, { id, ttl, expiry: now + ttl * 1000, keys: new Set() });
    }
    s.histBase = Math.max(1, s.compactRev);
    // the history in revision order is rebuilt by counting: events per revision, then each placed at its slot
    const perRevision = new Uint32Array(s.rev - s.histBase + 1);
    const history: Rec[] = [];
    let keysLeft = r.uint();
    /** the key being read when a step ran out: its revisions so far */
    let current: { key: Buffer; ks: string; recs: Rec[]; done: number } | undefined;
    const step = (budget: number): boolean => {
      const histBase = s.histBase;
      const rev = s.rev;
      let left = budget;
      while (left > 0 && (current || keysLeft > 0)) {
        if (!current) {
          const key = s.arena.copy(r.bytes());
          const n = r.uint();
          if (n === 0) throw corruptSnapshot();
          // exactly n slots (push() would reserve at least 17)
          current = { key, ks: latin1(key), recs: new Array<Rec>(n), done: 0 };
          keysLeft--;
        }
        const { key, ks, recs } = current;
        const n = recs.length;
        const end = Math.min(n, current.done + left);
        for (let j = current.done; j < end; j++) {
          const modRevision = r.uint();
          const sub = r.uint();
          const version = r.uint();
          if (modRevision > rev || (j > 0 && modRevision < recs[j - 1].modRevision)) throw corruptSnapshot();
          // at the compact revision the history keeps no prevKv (as after applyCompaction)
          const prev = j > 0 && modRevision > histBase && recs[j - 1].version !== 0 ? recs[j - 1] : undefined;
          let rec: Rec;
          if (version === 0) {
            rec = Rec.tombstone(key, ks, modRevision, sub, prev);
          } else {
            const createRevision = r.uint();
            const lease = r.i64();
            const span = s.arena.keep(r.bytes());
            rec = new Rec(key, ks, createRevision, modRevision, sub, version, lease, prev, s.arena.held, span);
          }
          recs[j] = rec;
          s.size += recSize(rec);
          if (modRevision >= histBase) {
            perRevision[modRevision - histBase]++;
            history.push(rec);
          }
        }
        left -= end - current.done;
        current.done = end;
        if (end < n) break;
        const last = recs[n - 1];
        if (last.version !== 0 && last.lease !== 0n) s.leases.get(last.lease)?.keys.add(ks);
        s.tree.set(ks, { key, ks, recs });
        current = undefined;
      }
      return keysLeft === 0 && !current;
    };
    const finish = (): MvccStore => {
      if (keysLeft > 0 || current) throw new Error('snapshot restore not finished');
      if (zeroPadded ? !r.onlyZerosLeft : !r.done) throw corruptSnapshot();
      const starts = new Array<number>(perRevision.length + 1);
      starts[0] = 0;
      for (let i = 0; i < perRevision.length; i++) starts[i + 1] = starts[i] + perRevision[i];
      const next = Uint32Array.from(starts.slice(0, -1));
      const events = new Array<Rec>(history.length);
      for (const rec of history) events[next[rec.modRevision - s.histBase]++] = rec;
      // within a revision (a txn's changes), in sub-revision order
      for (let i = 0; i < perRevision.length; i++) {
        if (perRevision[i] > 1) {
          const sorted = events.slice(starts[i], starts[i + 1]).sort((a, c) => a.sub - c.sub);
          for (let j = 0; j < sorted.length; j++) events[starts[i] + j] = sorted[j];
        }
      }
      s.histEvents = events;
      s.histStart = starts;
      return s;
    };
    return { step, finish };
  }
}

/** A snapshot being restored in steps (MvccStore.restoreInSteps): step() until it returns true, then finish(). */
export interface SnapshotRestore {
  /** Reads up to `budget` more revisions (a key's may span steps); true once every key is in. Throws on a corrupt snapshot. */
  step(budget: number): boolean;
  /** The restored store. */
  finish(): MvccStore;
}

function byExpiry(a: LeaseState, b: LeaseState): number {
  if (a.expiry !== b.expiry) return a.expiry - b.expiry;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** fast path for reads at the newest revision: the last rec, unless it is newer than rev (in-flight txn). */
function liveLatestAtOrBelow(idx: KeyIdx, rev: number): Rec | undefined {
  const recs = idx.recs;
  const kv = recs[recs.length - 1];
  if (kv.modRevision <= rev) return kv.version === 0 ? undefined : kv;
  return liveAt(idx, rev);
}
