// Property tests: random command sequences against a naive model (full keyspace copy per revision, explicit
// event log). Every response, every revision, and every watcher's stream must match.
import fc from 'fast-check';
import { EtcdError, Errors } from '@nestcd/errors';
import {
  CompareResult,
  CompareTarget,
  type Command,
  type CommandResult,
  type Event,
  EventType,
  type KeyValue,
  MvccStore,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnResponse,
} from './index';
import { b, manualScheduler, s } from './test-util';

// ---------------------------------------------------------------- generated operations

type End = undefined | 'ALL' | string;
interface GPut { t: 'put'; k: string; v: string; prevKv: boolean }
interface GDel { t: 'del'; k: string; end: End; prevKv: boolean }
interface GRange { t: 'range'; k: string; end: End; revBack: number | null; limit: number; target: SortTarget; order: SortOrder; keysOnly: boolean; countOnly: boolean }
interface GCmp { k: string; end: End; target: CompareTarget; result: CompareResult; num: number; v: string }
interface GTxn { t: 'txn'; cmp: GCmp[]; success: Array<GPut | GDel | GRange>; failure: Array<GPut | GDel | GRange> }
interface GCompact { t: 'compact'; back: number }
interface GWatch { t: 'watch'; k: string; end: End; startBack: number | null; prevKv: boolean; noPut: boolean; noDelete: boolean; accept: boolean[] }
interface GDrain { t: 'drain'; n: number }
interface GResume { t: 'resume'; w: number }
type GOp = GPut | GDel | GRange | GTxn | GCompact | GWatch | GDrain | GResume;

const KEYS = ['a', 'ab', 'b', 'c', 'd', 'e'];
const key = fc.constantFrom(...KEYS);
const end: fc.Arbitrary<End> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant('ALL' as const) },
  { weight: 2, arbitrary: fc.constantFrom('b', 'c', 'd', 'z', 'a') },
);
const value = fc.constantFrom('', 'x', 'y', 'z', 'xy');
const gPut = fc.record({ t: fc.constant('put' as const), k: key, v: value, prevKv: fc.boolean() });
const gDel = fc.record({ t: fc.constant('del' as const), k: key, end, prevKv: fc.boolean() });
const gRange = fc.record({
  t: fc.constant('range' as const),
  k: key,
  end,
  revBack: fc.option(fc.integer({ min: -1, max: 10 })),
  limit: fc.integer({ min: 0, max: 3 }),
  target: fc.constantFrom(SortTarget.KEY, SortTarget.VERSION, SortTarget.CREATE, SortTarget.MOD, SortTarget.VALUE),
  order: fc.constantFrom(SortOrder.NONE, SortOrder.ASCEND, SortOrder.DESCEND),
  keysOnly: fc.boolean(),
  countOnly: fc.boolean(),
});
const gCmp = fc.record({
  k: key,
  end: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: end }),
  target: fc.constantFrom(CompareTarget.VERSION, CompareTarget.CREATE, CompareTarget.MOD, CompareTarget.VALUE),
  result: fc.constantFrom(CompareResult.EQUAL, CompareResult.GREATER, CompareResult.LESS, CompareResult.NOT_EQUAL),
  num: fc.integer({ min: 0, max: 8 }),
  v: value,
});
const branch = fc.array(fc.oneof(gPut, gDel, gRange), { maxLength: 4 });
const gTxn = fc.record({ t: fc.constant('txn' as const), cmp: fc.array(gCmp, { maxLength: 2 }), success: branch, failure: branch });
const gCompact = fc.record({ t: fc.constant('compact' as const), back: fc.integer({ min: -1, max: 6 }) });
const gWatch = fc.record({
  t: fc.constant('watch' as const),
  k: key,
  end,
  startBack: fc.option(fc.integer({ min: -3, max: 12 })),
  prevKv: fc.boolean(),
  noPut: fc.boolean(),
  noDelete: fc.boolean(),
  accept: fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }),
});
const gDrain = fc.record({ t: fc.constant('drain' as const), n: fc.integer({ min: 1, max: 3 }) });
const gResume = fc.record({ t: fc.constant('resume' as const), w: fc.nat(10) });
const gOp: fc.Arbitrary<GOp> = fc.oneof(
  { weight: 8, arbitrary: gPut },
  { weight: 3, arbitrary: gDel },
  { weight: 3, arbitrary: gRange },
  { weight: 4, arbitrary: gTxn },
  { weight: 1, arbitrary: gCompact },
  { weight: 1, arbitrary: gWatch },
  { weight: 2, arbitrary: gDrain },
  { weight: 1, arbitrary: gResume },
);

// ---------------------------------------------------------------- the naive model

interface MKV { key: string; create: number; mod: number; ver: number; value: string }
interface MEvent { type: EventType; kv: MKV; prev?: MKV }
type State = Map<string, MKV>;

const inRange = (k: string, from: string, e: End): boolean =>
  e === undefined ? k === from : e === 'ALL' ? k >= from : k >= from && k < e;
const fmtKv = (kv: MKV) => `${kv.key}|${kv.create}|${kv.mod}|${kv.ver}|${kv.value}`;
const fmtStoreKv = (kv: KeyValue) => `${s(kv.key)}|${kv.createRevision}|${kv.modRevision}|${kv.version}|${s(kv.value)}`;
const fmtMEvent = (e: MEvent, prev: boolean) =>
  `${e.type === EventType.PUT ? 'P' : 'D'} ${fmtKv(e.kv)}${prev ? ` prev=${e.prev ? fmtKv(e.prev) : '-'}` : ''}`;
const fmtEvent = (e: Event, prev: boolean) =>
  `${e.type === EventType.PUT ? 'P' : 'D'} ${fmtStoreKv(e.kv)}${prev ? ` prev=${e.prevKv ? fmtStoreKv(e.prevKv) : '-'}` : ''}`;

class ModelError {
  constructor(readonly message: string) {}
}

class Model {
  rev = 1;
  compact = 0;
  states: State[] = [new Map(), new Map()];
  events: MEvent[][] = [[], []];
  compactions = new Set<number>();

  cur(): State {
    return this.states[this.rev];
  }
}

class MCtx {
  events: MEvent[] = [];
  constructor(readonly m: Model, readonly rev: number, readonly state: State) {}
  get readRev() {
    return this.events.length > 0 ? this.rev : this.rev - 1;
  }
}

function mPut(ctx: MCtx, p: GPut) {
  const prev = ctx.state.get(p.k);
  const kv: MKV = { key: p.k, create: prev ? prev.create : ctx.rev, mod: ctx.rev, ver: prev ? prev.ver + 1 : 1, value: p.v };
  ctx.state.set(p.k, kv);
  ctx.events.push({ type: EventType.PUT, kv, prev });
  return { put: ctx.rev, prev: p.prevKv && prev ? fmtKv(prev) : null };
}

function mDel(ctx: MCtx, d: GDel) {
  const ks = [...ctx.state.keys()].filter((k) => inRange(k, d.k, d.end)).sort();
  const prevs: string[] = [];
  for (const k of ks) {
    const prev = ctx.state.get(k)!;
    ctx.state.delete(k);
    ctx.events.push({ type: EventType.DELETE, kv: { key: k, create: 0, mod: ctx.rev, ver: 0, value: '' }, prev });
    if (d.prevKv) prevs.push(fmtKv(prev));
  }
  return { del: ctx.readRev, n: ks.length, prevs };
}

function rangeRevision(m: Model, r: GRange): number {
  return r.revBack === null ? 0 : m.rev - r.revBack;
}

function mRange(m: Model, r: GRange, curRev: number, pending: State | null) {
  let rev = rangeRevision(m, r);
  if (rev > curRev) throw new ModelError(Errors.futureRev().message);
  if (rev <= 0) rev = curRev;
  if (rev < m.compact) throw new ModelError(Errors.compacted().message);
  const state = pending && rev === curRev && curRev > m.rev ? pending : m.states[rev];
  let kvs = [...state.values()].filter((kv) => inRange(kv.key, r.k, r.end)).sort((x, y) => (x.key < y.key ? -1 : 1));
  const count = kvs.length;
  // etcd fetches limit+1 keys in key order unless an explicit sort order (or a min/max filter) is requested,
  // and only then applies a non-KEY sort target's implicit ASCEND order
  if (r.order === SortOrder.NONE && r.limit > 0) kvs = kvs.slice(0, r.limit + 1);
  const t = (kv: MKV): number | string =>
    r.target === SortTarget.KEY ? kv.key : r.target === SortTarget.VERSION ? kv.ver : r.target === SortTarget.CREATE ? kv.create : r.target === SortTarget.MOD ? kv.mod : kv.value;
  const order = r.target !== SortTarget.KEY && r.order === SortOrder.NONE ? SortOrder.ASCEND : r.order;
  if (order !== SortOrder.NONE) {
    const sign = order === SortOrder.DESCEND ? -1 : 1;
    kvs = kvs
      .map((kv, i) => ({ kv, i }))
      .sort((x, y) => {
        const a = t(x.kv);
        const c = t(y.kv);
        if (a !== c) return (a < c ? -1 : 1) * sign;
        return x.i - y.i;
      })
      .map((x) => x.kv);
  }
  if (r.countOnly) kvs = [];
  let more = false;
  if (r.limit > 0 && kvs.length > r.limit) {
    kvs = kvs.slice(0, r.limit);
    more = true;
  }
  return { range: curRev, kvs: kvs.map((kv) => (r.keysOnly ? fmtKv({ ...kv, value: '' }) : fmtKv(kv))), more, count };
}

function mCompare(m: Model, c: GCmp): boolean {
  const kvs = [...m.cur().values()].filter((kv) => inRange(kv.key, c.k, c.end));
  const test = (kv: MKV | undefined): boolean => {
    let r: number;
    if (c.target === CompareTarget.VALUE) {
      if (!kv) return false;
      r = kv.value === c.v ? 0 : kv.value < c.v ? -1 : 1;
    } else {
      const x = !kv ? 0 : c.target === CompareTarget.VERSION ? kv.ver : c.target === CompareTarget.CREATE ? kv.create : kv.mod;
      r = Math.sign(x - c.num);
    }
    return c.result === CompareResult.EQUAL ? r === 0 : c.result === CompareResult.NOT_EQUAL ? r !== 0 : c.result === CompareResult.GREATER ? r > 0 : r < 0;
  };
  return kvs.length === 0 ? test(undefined) : kvs.every(test);
}

function mDuplicate(ops: Array<GPut | GDel | GRange>): boolean {
  const puts = new Set<string>();
  const dels = ops.filter((o): o is GDel => o.t === 'del');
  for (const o of ops) {
    if (o.t !== 'put') continue;
    if (puts.has(o.k)) return true;
    // etcd 3.4's checkIntervals takes a "\0" range_end literally, so a from-key delete never conflicts
    if (dels.some((d) => d.end !== 'ALL' && (d.end === undefined ? d.k === o.k : o.k >= d.k && o.k < d.end))) return true;
    puts.add(o.k);
  }
  return false;
}

function commit(m: Model, ctx: MCtx) {
  if (ctx.events.length === 0) return;
  m.rev = ctx.rev;
  m.states[m.rev] = ctx.state;
  m.events[m.rev] = ctx.events;
}

/** runs a write op against the model; returns a normalized response or throws ModelError. */
function modelApply(m: Model, op: GPut | GDel | GTxn | GCompact): unknown {
  if (op.t === 'compact') {
    const rev = m.rev - op.back;
    if (rev <= m.compact) throw new ModelError(Errors.compacted().message);
    if (rev > m.rev) throw new ModelError(Errors.futureRev().message);
    m.compact = rev;
    m.compactions.add(rev);
    return { compact: m.rev };
  }
  const ctx = new MCtx(m, m.rev + 1, new Map(m.cur()));
  let out: unknown;
  if (op.t === 'put') out = mPut(ctx, op);
  else if (op.t === 'del') out = mDel(ctx, op);
  else {
    if (mDuplicate(op.success) || mDuplicate(op.failure)) throw new ModelError(Errors.duplicateKey().message);
    const ok = op.cmp.every((c) => mCompare(m, c));
    const ops = ok ? op.success : op.failure;
    for (const o of ops) {
      if (o.t !== 'range') continue;
      const rev = rangeRevision(m, o);
      if (rev === 0) continue;
      if (rev > m.rev) throw new ModelError(Errors.futureRev().message);
      if (rev < m.compact) throw new ModelError(Errors.compacted().message);
    }
    const responses = ops.map((o) => (o.t === 'put' ? mPut(ctx, o) : o.t === 'del' ? mDel(ctx, o) : mRange(m, o, ctx.readRev, ctx.state)));
    out = { txn: ctx.readRev, ok, responses };
  }
  commit(m, ctx);
  return out;
}

// ---------------------------------------------------------------- store side, normalized the same way

const endBuf = (e: End): Buffer | undefined => (e === undefined ? undefined : e === 'ALL' ? Buffer.from([0]) : b(e));
const toRangeReq = (m: Model, r: GRange): RangeRequest => ({
  key: b(r.k),
  rangeEnd: endBuf(r.end),
  revision: rangeRevision(m, r),
  limit: r.limit,
  sortTarget: r.target,
  sortOrder: r.order,
  keysOnly: r.keysOnly,
  countOnly: r.countOnly,
});
const toOp = (m: Model, o: GPut | GDel | GRange): RequestOp =>
  o.t === 'put'
    ? { requestPut: { key: b(o.k), value: b(o.v), prevKv: o.prevKv } }
    : o.t === 'del'
      ? { requestDeleteRange: { key: b(o.k), rangeEnd: endBuf(o.end), prevKv: o.prevKv } }
      : { requestRange: toRangeReq(m, o) };
const normRange = (r: RangeResponse) => ({ range: r.revision, kvs: r.kvs.map(fmtStoreKv), more: r.more, count: r.count });
function normResp(op: GOp, r: CommandResult | ResponseOp): unknown {
  const x = r as any;
  if ('responsePut' in x || op.t === 'put') {
    const p = x.responsePut ?? x;
    return { put: p.revision, prev: p.prevKv ? fmtStoreKv(p.prevKv) : null };
  }
  if ('responseDeleteRange' in x || op.t === 'del') {
    const d = x.responseDeleteRange ?? x;
    return { del: d.revision, n: d.deleted, prevs: d.prevKvs.map(fmtStoreKv) };
  }
  if ('responseRange' in x) return normRange(x.responseRange);
  if (op.t === 'compact') return { compact: x.revision };
  const t = x as TxnResponse;
  const g = op as GTxn;
  const ops = t.succeeded ? g.success : g.failure;
  return { txn: t.revision, ok: t.succeeded, responses: t.responses.map((rr, i) => normResp(ops[i], rr)) };
}

function toCommand(m: Model, op: GPut | GDel | GTxn | GCompact): Command {
  switch (op.t) {
    case 'put':
      return { put: { key: b(op.k), value: b(op.v), prevKv: op.prevKv } };
    case 'del':
      return { deleteRange: { key: b(op.k), rangeEnd: endBuf(op.end), prevKv: op.prevKv } };
    case 'compact':
      return { compaction: { revision: m.rev - op.back } };
    case 'txn':
      return {
        txn: {
          compare: op.cmp.map((c) => ({
            key: b(c.k),
            rangeEnd: endBuf(c.end),
            target: c.target,
            result: c.result,
            version: c.num,
            createRevision: c.num,
            modRevision: c.num,
            value: b(c.v),
          })),
          success: op.success.map((o) => toOp(m, o)),
          failure: op.failure.map((o) => toOp(m, o)),
        },
      };
  }
}

function outcome<T>(fn: () => T): { ok: T } | { err: string } {
  try {
    return { ok: fn() };
  } catch (e) {
    if (e instanceof ModelError || e instanceof EtcdError) return { err: e.message };
    throw e;
  }
}

// ---------------------------------------------------------------- watcher bookkeeping

interface TestWatcher {
  g: GWatch;
  start: number;
  calls: Array<{ events: Event[]; revision: number }>;
  compacted: number[];
  forceAccept: boolean;
  handle: ReturnType<MvccStore['watch']>;
}

function checkWatcher(m: Model, w: TestWatcher): void {
  const ctx = `watcher ${JSON.stringify(w.g)} start=${w.start}`;
  // calls carry strictly increasing, whole revisions
  let last = 0;
  const got = new Map<number, string[]>();
  for (const c of w.calls) {
    expect(c.events.length).toBeGreaterThan(0);
    const first = c.events[0].kv.modRevision;
    if (first <= last) throw new Error(`${ctx}: revision ${first} after ${last} (duplicate or split)`);
    for (const e of c.events) {
      if (e.kv.modRevision < last) throw new Error(`${ctx}: out of order`);
      last = e.kv.modRevision;
      const list = got.get(last) ?? [];
      list.push(fmtEvent(e, w.g.prevKv));
      got.set(last, list);
    }
  }
  let upTo = m.rev;
  if (w.compacted.length > 0) {
    expect(w.compacted).toHaveLength(1);
    expect(w.compacted[0]).toBeGreaterThan(Math.max(last, w.start - 1));
    upTo = last;
  } else {
    expect(w.handle.synced).toBe(true);
  }
  for (let rev = w.start; rev <= upTo; rev++) {
    const evs = (m.events[rev] ?? []).filter(
      (e) => inRange(e.kv.key, w.g.k, w.g.end) && (e.type === EventType.PUT ? !w.g.noPut : !w.g.noDelete),
    );
    const full = evs.map((e) => fmtMEvent(e, w.g.prevKv));
    const compactedForm = evs.filter((e) => e.type === EventType.PUT).map((e) => fmtMEvent({ ...e, prev: undefined }, w.g.prevKv));
    const g = got.get(rev) ?? [];
    if (JSON.stringify(g) === JSON.stringify(full)) continue;
    if (m.compactions.has(rev) && JSON.stringify(g) === JSON.stringify(compactedForm)) continue;
    expect({ ctx, rev, got: g }).toEqual({ ctx, rev, got: full });
  }
}

// ---------------------------------------------------------------- the property

function run(ops: GOp[]): void {
  const m = new Model();
  const sched = manualScheduler();
  const store = new MvccStore({ schedule: sched.schedule, clock: () => 0 });
  const watchers: TestWatcher[] = [];
  const addWatcher = (g: GWatch, startRevision: number) => {
    const tw: TestWatcher = {
      g,
      start: startRevision <= 0 ? m.rev + 1 : Math.max(startRevision, 1),
      calls: [],
      compacted: [],
      forceAccept: false,
      handle: undefined as never,
    };
    if (startRevision > m.rev) tw.start = startRevision;
    tw.handle = store.watch(
      { key: b(g.k), rangeEnd: endBuf(g.end), startRevision, prevKv: g.prevKv, noPut: g.noPut, noDelete: g.noDelete },
      (events, revision) => {
        tw.calls.push({ events, revision });
        return tw.forceAccept || g.accept[(tw.calls.length - 1) % g.accept.length];
      },
      (c) => void tw.compacted.push(c),
    );
    watchers.push(tw);
  };
  // a watcher over everything from revision 1, with prevKv, that is sometimes slow
  addWatcher({ t: 'watch', k: 'a', end: 'ALL', startBack: null, prevKv: true, noPut: false, noDelete: false, accept: [true, true, false] }, 1);

  for (const op of ops) {
    switch (op.t) {
      case 'put':
      case 'del':
      case 'txn':
      case 'compact': {
        const cmd = toCommand(m, op);
        const hashBefore = store.hashKV(0).hash;
        const want = outcome(() => modelApply(m, op));
        const got = outcome(() => normResp(op, store.apply(cmd)));
        expect({ op, got }).toEqual({ op, got: want });
        if ('err' in got) expect(store.hashKV(0).hash).toBe(hashBefore);
        break;
      }
      case 'range': {
        const req = toRangeReq(m, op);
        const want = outcome(() => mRange(m, op, m.rev, null));
        const got = outcome(() => normRange(store.range(req)));
        expect({ op, got }).toEqual({ op, got: want });
        break;
      }
      case 'watch':
        addWatcher(op, op.startBack === null ? 0 : m.rev - op.startBack);
        break;
      case 'drain':
        sched.drain(op.n);
        break;
      case 'resume':
        if (watchers.length > 0) watchers[op.w % watchers.length].handle.resume();
        break;
    }
    expect(store.currentRevision).toBe(m.rev);
    expect(store.compactRevision).toBe(m.compact);
  }
  for (const w of watchers) {
    w.forceAccept = true;
    w.handle.resume();
  }
  sched.drain();
  for (const w of watchers) checkWatcher(m, w);

  // snapshot/restore reproduces every readable revision
  const r = MvccStore.restore(store.snapshot());
  expect(r.hashKV(0)).toEqual(store.hashKV(0));
  for (let rev = Math.max(1, m.compact); rev <= m.rev; rev++) {
    const all: RangeRequest = { key: Buffer.from([0]), rangeEnd: Buffer.from([0]), revision: rev };
    expect(r.range(all)).toEqual(store.range(all));
  }
}

describe('mvcc against a naive model', () => {
  it('responses, revisions and watch streams match', () => {
    fc.assert(
      fc.property(fc.array(gOp, { minLength: 1, maxLength: 60 }), (ops) => run(ops)),
      { numRuns: 1000 },
    );
  });

  it('longer runs with many watchers', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 6, arbitrary: gOp }, { weight: 1, arbitrary: gWatch }), { minLength: 100, maxLength: 250 }),
        (ops) => run(ops),
      ),
      { numRuns: 120 },
    );
  });
});
