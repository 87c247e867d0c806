import { Errors } from '@nestcd/errors';
import {
  CompareResult,
  CompareTarget,
  type DeleteRangeResponse,
  EventType,
  MvccStore,
  type PutResponse,
  type RangeRequest,
  type RequestOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResponse,
  validateTxn,
} from './index';
import { b, expectEtcdError, fakeClock, manualScheduler, newStore, recorder, s } from './test-util';

const put = (st: MvccStore, k: string, v: string, extra: object = {}) =>
  st.apply({ put: { key: b(k), value: b(v), ...extra } }) as PutResponse;
const del = (st: MvccStore, k: string, end?: string, prevKv = false) =>
  st.apply({ deleteRange: { key: b(k), rangeEnd: end === undefined ? undefined : b(end), prevKv } }) as DeleteRangeResponse;
const get = (st: MvccStore, k: string, extra: Partial<RangeRequest> = {}) => st.range({ key: b(k), ...extra });
const keysOf = (r: { kvs: { key: Buffer }[] }) => r.kvs.map((kv) => s(kv.key));
const txn = (st: MvccStore, t: Partial<TxnRequest>) =>
  st.apply({ txn: { compare: [], success: [], failure: [], ...t } }) as TxnResponse;
const opPut = (k: string, v: string, extra: object = {}): RequestOp => ({ requestPut: { key: b(k), value: b(v), ...extra } });
const opDel = (k: string, end?: string): RequestOp => ({ requestDeleteRange: { key: b(k), rangeEnd: end ? b(end) : undefined } });
const opGet = (k: string, extra: Partial<RangeRequest> = {}): RequestOp => ({ requestRange: { key: b(k), ...extra } });
const ALL = Buffer.from([0]);

describe('revisions and versions', () => {
  it('starts at revision 1 and bumps once per changing command', () => {
    const { store } = newStore();
    expect(store.currentRevision).toBe(1);
    expect(store.compactRevision).toBe(0);
    expect(put(store, 'a', '1').revision).toBe(2);
    expect(put(store, 'b', '1').revision).toBe(3);
    expect(store.currentRevision).toBe(3);
  });

  it('tracks create/mod revision and version per generation', () => {
    const { store } = newStore();
    put(store, 'k', 'v1'); // 2
    put(store, 'k', 'v2'); // 3
    let kv = get(store, 'k').kvs[0];
    expect(kv).toMatchObject({ createRevision: 2, modRevision: 3, version: 2, lease: 0n });
    expect(s(kv.value)).toBe('v2');
    expect(del(store, 'k').revision).toBe(4);
    expect(get(store, 'k').kvs).toHaveLength(0);
    put(store, 'k', 'v3'); // 5
    kv = get(store, 'k').kvs[0];
    expect(kv).toMatchObject({ createRevision: 5, modRevision: 5, version: 1 });
    // history is readable
    expect(get(store, 'k', { revision: 3 }).kvs[0]).toMatchObject({ createRevision: 2, version: 2 });
    expect(get(store, 'k', { revision: 4 }).kvs).toHaveLength(0);
    expect(get(store, 'k', { revision: 1 }).kvs).toHaveLength(0);
    expect(get(store, 'k', { revision: 4 }).revision).toBe(5);
  });

  it('does not bump for no-op commands', () => {
    const { store } = newStore();
    put(store, 'a', '1');
    const r = del(store, 'zzz');
    expect(r).toEqual({ revision: 2, deleted: 0, prevKvs: [] });
    expect(txn(store, { success: [opGet('a')] }).revision).toBe(2);
    expect(
      txn(store, {
        compare: [{ key: b('a'), target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: b('x') }],
        success: [opPut('a', '2')],
      }).revision,
    ).toBe(2);
    store.apply({ leaseGrant: { id: 5n, ttl: 10 } });
    expect(store.apply({ leaseRevoke: { id: 5n } })).toEqual({ revision: 2 });
    expect(store.currentRevision).toBe(2);
  });

  it('copies caller buffers', () => {
    const { store } = newStore();
    const key = b('key');
    const val = b('val');
    store.apply({ put: { key, value: val } });
    key.write('zzz');
    val.write('zzz');
    expect(s(get(store, 'key').kvs[0].value)).toBe('val');
  });
});

describe('compaction and memory', () => {
  // White-box: a key's records double as its history events, and the event at a revision holds the previous value
  // (prevKv). Once compaction takes that revision out of the history, the kept record must let the old value go.
  it('a key kept at or below the compact revision no longer holds its overwritten value', () => {
    const { store } = newStore();
    put(store, 'a', 'old'); // 2
    put(store, 'a', 'kept'); // 3
    put(store, 'b', 'x'); // 4
    put(store, 'a', 'new'); // 5
    type Held = { recs: Array<{ modRevision: number; prevKv?: unknown }> };
    const recsOf = (k: string) => (store as unknown as { tree: { get(k: string): Held | undefined } }).tree.get(k)!.recs;
    expect(recsOf('a').map((r) => r.prevKv !== undefined)).toEqual([false, true, true]);
    store.apply({ compaction: { revision: 4 } });
    expect(recsOf('a').map((r) => [r.modRevision, r.prevKv !== undefined])).toEqual([[3, false], [5, true]]);
    expect(recsOf('b').map((r) => r.prevKv)).toEqual([undefined]);
  });
});

describe('range', () => {
  function seeded() {
    const { store } = newStore();
    put(store, 'a', '3'); // 2
    put(store, 'b', '1'); // 3
    put(store, 'c', '2'); // 4
    put(store, 'b', '0'); // 5  b: create 3, version 2
    put(store, 'd', '9'); // 6
    return store;
  }

  it('single key, range, from-key, all keys, empty range', () => {
    const st = seeded();
    expect(keysOf(get(st, 'b'))).toEqual(['b']);
    expect(keysOf(get(st, 'bb'))).toEqual([]);
    expect(keysOf(get(st, 'b', { rangeEnd: b('d') }))).toEqual(['b', 'c']);
    expect(keysOf(get(st, 'b', { rangeEnd: ALL }))).toEqual(['b', 'c', 'd']);
    expect(keysOf(st.range({ key: ALL, rangeEnd: ALL }))).toEqual(['a', 'b', 'c', 'd']);
    expect(keysOf(get(st, 'c', { rangeEnd: b('b') }))).toEqual([]);
    expect(keysOf(get(st, 'c', { rangeEnd: b('c') }))).toEqual([]);
    expect(get(st, 'a', { rangeEnd: b('z') }).count).toBe(4);
  });

  it('byte order, not UTF-16 order', () => {
    const { store } = newStore();
    store.apply({ put: { key: Buffer.from([0xff]), value: b('x') } });
    store.apply({ put: { key: Buffer.from([0x7f]), value: b('y') } });
    store.apply({ put: { key: Buffer.from([0x00, 0x01]), value: b('z') } });
    const r = store.range({ key: ALL, rangeEnd: ALL });
    expect(r.kvs.map((kv) => kv.key.toString('hex'))).toEqual(['0001', '7f', 'ff']);
    expect(store.range({ key: Buffer.from([0x80]), rangeEnd: Buffer.from([0xff, 0x00]) }).count).toBe(1);
  });

  it('limit, more and count', () => {
    const st = seeded();
    const r = get(st, 'a', { rangeEnd: ALL, limit: 2 });
    expect(keysOf(r)).toEqual(['a', 'b']);
    expect(r.more).toBe(true);
    expect(r.count).toBe(4);
    const r2 = get(st, 'a', { rangeEnd: ALL, limit: 4 });
    expect(r2.more).toBe(false);
    expect(r2.kvs).toHaveLength(4);
  });

  it('countOnly and keysOnly', () => {
    const st = seeded();
    const c = get(st, 'a', { rangeEnd: ALL, countOnly: true });
    expect(c.kvs).toEqual([]);
    expect(c.count).toBe(4);
    const k = get(st, 'a', { rangeEnd: ALL, keysOnly: true });
    expect(k.kvs.every((kv) => kv.value.length === 0)).toBe(true);
    expect(k.kvs[0].version).toBe(1);
    // the stored value is untouched
    expect(s(get(st, 'a').kvs[0].value)).toBe('3');
  });

  it('sort targets and orders (stable, default ASCEND for non-key targets)', () => {
    const st = seeded();
    const r = (sortTarget: SortTarget, sortOrder?: SortOrder) => keysOf(get(st, 'a', { rangeEnd: ALL, sortTarget, sortOrder }));
    expect(r(SortTarget.KEY, SortOrder.DESCEND)).toEqual(['d', 'c', 'b', 'a']);
    expect(r(SortTarget.KEY, SortOrder.NONE)).toEqual(['a', 'b', 'c', 'd']);
    expect(r(SortTarget.VALUE)).toEqual(['b', 'c', 'a', 'd']);
    expect(r(SortTarget.VALUE, SortOrder.DESCEND)).toEqual(['d', 'a', 'c', 'b']);
    expect(r(SortTarget.VERSION)).toEqual(['a', 'c', 'd', 'b']);
    expect(r(SortTarget.VERSION, SortOrder.DESCEND)).toEqual(['b', 'a', 'c', 'd']);
    expect(r(SortTarget.CREATE)).toEqual(['a', 'b', 'c', 'd']);
    expect(r(SortTarget.CREATE, SortOrder.DESCEND)).toEqual(['d', 'c', 'b', 'a']);
    expect(r(SortTarget.MOD)).toEqual(['a', 'c', 'b', 'd']);
    expect(r(SortTarget.MOD, SortOrder.DESCEND)).toEqual(['d', 'b', 'c', 'a']);
  });

  it('sort fetches everything before limiting', () => {
    const st = seeded();
    const r = get(st, 'a', { rangeEnd: ALL, sortTarget: SortTarget.KEY, sortOrder: SortOrder.DESCEND, limit: 1 });
    expect(keysOf(r)).toEqual(['d']);
    expect(r.more).toBe(true);
    expect(r.count).toBe(4);
  });

  it('min/max mod/create revision filters (count is before filtering)', () => {
    const st = seeded();
    const r = (o: Partial<RangeRequest>) => get(st, 'a', { rangeEnd: ALL, ...o });
    expect(keysOf(r({ minModRevision: 4 }))).toEqual(['b', 'c', 'd']);
    expect(keysOf(r({ maxModRevision: 4 }))).toEqual(['a', 'c']);
    expect(keysOf(r({ minCreateRevision: 3 }))).toEqual(['b', 'c', 'd']);
    expect(keysOf(r({ maxCreateRevision: 3 }))).toEqual(['a', 'b']);
    expect(keysOf(r({ minModRevision: 3, maxModRevision: 5 }))).toEqual(['b', 'c']);
    expect(r({ minModRevision: 6 }).count).toBe(4);
    const lim = r({ minCreateRevision: 3, limit: 1 });
    expect(keysOf(lim)).toEqual(['b']);
    expect(lim.more).toBe(true);
  });

  it('past revisions, compacted and future errors; header is the current revision', () => {
    const st = seeded();
    const r = get(st, 'b', { revision: 3 });
    expect(s(r.kvs[0].value)).toBe('1');
    expect(r.revision).toBe(6);
    expect(get(st, 'a', { rangeEnd: ALL, revision: 4 }).count).toBe(3);
    expectEtcdError(() => get(st, 'a', { revision: 7 }), Errors.futureRev());
    st.apply({ compaction: { revision: 4 } });
    expectEtcdError(() => get(st, 'a', { revision: 3 }), Errors.compacted());
    expect(s(get(st, 'b', { revision: 4 }).kvs[0].value)).toBe('1');
    expect(get(st, 'a', { revision: -1 }).kvs).toHaveLength(1);
  });

  it('rejects an empty key', () => {
    const { store } = newStore();
    expectEtcdError(() => store.range({ key: Buffer.alloc(0) }), Errors.emptyKey());
  });
});

describe('put', () => {
  it('errors: empty key, unknown lease, ignore flags', () => {
    const { store } = newStore();
    expectEtcdError(() => put(store, '', 'v'), Errors.emptyKey());
    expectEtcdError(() => put(store, 'k', 'v', { lease: 7n }), Errors.leaseNotFound());
    expectEtcdError(() => put(store, 'k', '', { ignoreValue: true }), Errors.keyNotFound());
    expectEtcdError(() => put(store, 'k', 'v', { ignoreLease: true }), Errors.keyNotFound());
    expectEtcdError(() => put(store, 'k', 'v', { ignoreValue: true }), Errors.valueProvided());
    expectEtcdError(() => put(store, 'k', 'v', { ignoreLease: true, lease: 3n }), Errors.leaseProvided());
    expect(store.currentRevision).toBe(1);
  });

  it('ignoreValue keeps the value, ignoreLease keeps the lease, prevKv returns the previous kv', () => {
    const { store } = newStore();
    store.apply({ leaseGrant: { id: 1n, ttl: 10 } });
    store.apply({ leaseGrant: { id: 2n, ttl: 10 } });
    expect(put(store, 'k', 'v1', { lease: 1n, prevKv: true }).prevKv).toBeUndefined();
    const r = put(store, 'k', '', { ignoreValue: true, lease: 2n, prevKv: true });
    expect(r.prevKv).toMatchObject({ modRevision: 2, version: 1, lease: 1n });
    expect(s(r.prevKv!.value)).toBe('v1');
    let kv = get(store, 'k').kvs[0];
    expect(s(kv.value)).toBe('v1');
    expect(kv.lease).toBe(2n);
    put(store, 'k', 'v2', { ignoreLease: true });
    kv = get(store, 'k').kvs[0];
    expect(s(kv.value)).toBe('v2');
    expect(kv.lease).toBe(2n);
    expect(kv.version).toBe(3);
    // re-attaching detached the key from lease 1
    expect(store.leaseTimeToLive(1n, true).keys).toEqual([]);
    expect(store.leaseTimeToLive(2n, true).keys.map(s)).toEqual(['k']);
  });
});

describe('deleteRange', () => {
  it('deletes a range in one revision with prevKvs and detaches leases', () => {
    const { store } = newStore();
    store.apply({ leaseGrant: { id: 9n, ttl: 10 } });
    put(store, 'a', '1', { lease: 9n });
    put(store, 'b', '2');
    put(store, 'c', '3');
    const r = del(store, 'a', 'c', true);
    expect(r.revision).toBe(5);
    expect(r.deleted).toBe(2);
    expect(r.prevKvs.map((kv) => s(kv.value))).toEqual(['1', '2']);
    expect(keysOf(store.range({ key: ALL, rangeEnd: ALL }))).toEqual(['c']);
    expect(store.leaseTimeToLive(9n, true).keys).toEqual([]);
    expect(del(store, 'a', 'c').deleted).toBe(0);
    expect(store.currentRevision).toBe(5);
    expect(del(store, 'a', '\0').deleted).toBe(1);
    expect(store.currentRevision).toBe(6);
    expect(del(store, 'x', undefined, true)).toEqual({ revision: 6, deleted: 0, prevKvs: [] });
  });
});

describe('txn', () => {
  const cmp = (k: string, target: CompareTarget, result: CompareResult, v: Record<string, unknown> = {}) => ({
    key: b(k),
    target,
    result,
    ...v,
  });

  it('compares each target; missing keys compare against zero, VALUE fails', () => {
    const { store } = newStore();
    store.apply({ leaseGrant: { id: 4n, ttl: 10 } });
    put(store, 'k', 'abc', { lease: 4n }); // rev 2
    const ok = (c: ReturnType<typeof cmp>) => txn(store, { compare: [c] }).succeeded;
    expect(ok(cmp('k', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('abc') }))).toBe(true);
    expect(ok(cmp('k', CompareTarget.VALUE, CompareResult.GREATER, { value: b('abb') }))).toBe(true);
    expect(ok(cmp('k', CompareTarget.VALUE, CompareResult.LESS, { value: b('abd') }))).toBe(true);
    expect(ok(cmp('k', CompareTarget.VALUE, CompareResult.NOT_EQUAL, { value: b('abc') }))).toBe(false);
    expect(ok(cmp('k', CompareTarget.VERSION, CompareResult.EQUAL, { version: 1 }))).toBe(true);
    expect(ok(cmp('k', CompareTarget.CREATE, CompareResult.EQUAL, { createRevision: 2 }))).toBe(true);
    expect(ok(cmp('k', CompareTarget.MOD, CompareResult.LESS, { modRevision: 3 }))).toBe(true);
    expect(ok(cmp('k', CompareTarget.LEASE, CompareResult.EQUAL, { lease: 4n }))).toBe(true);
    expect(ok(cmp('k', CompareTarget.LEASE, CompareResult.GREATER, { lease: 3n }))).toBe(true);
    // missing key
    expect(ok(cmp('m', CompareTarget.VERSION, CompareResult.EQUAL, { version: 0 }))).toBe(true);
    expect(ok(cmp('m', CompareTarget.CREATE, CompareResult.EQUAL))).toBe(true);
    expect(ok(cmp('m', CompareTarget.MOD, CompareResult.LESS, { modRevision: 1 }))).toBe(true);
    expect(ok(cmp('m', CompareTarget.LEASE, CompareResult.EQUAL, { lease: 0n }))).toBe(true);
    expect(ok(cmp('m', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('') }))).toBe(false);
    expect(ok(cmp('m', CompareTarget.VALUE, CompareResult.NOT_EQUAL, { value: b('x') }))).toBe(false);
    // all compares must hold
    expect(
      txn(store, {
        compare: [
          cmp('k', CompareTarget.VERSION, CompareResult.EQUAL, { version: 1 }),
          cmp('k', CompareTarget.VERSION, CompareResult.EQUAL, { version: 2 }),
        ],
      }).succeeded,
    ).toBe(false);
  });

  it('compares over a range: every key must satisfy; empty range compares against zero', () => {
    const { store } = newStore();
    put(store, 'a1', 'x');
    put(store, 'a2', 'x');
    put(store, 'a2', 'y');
    const ok = (c: object) => txn(store, { compare: [c as never] }).succeeded;
    expect(ok({ ...cmp('a', CompareTarget.VERSION, CompareResult.GREATER, { version: 0 }), rangeEnd: b('b') })).toBe(true);
    expect(ok({ ...cmp('a', CompareTarget.VERSION, CompareResult.EQUAL, { version: 1 }), rangeEnd: b('b') })).toBe(false);
    expect(ok({ ...cmp('a', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('x') }), rangeEnd: b('a2') })).toBe(true);
    expect(ok({ ...cmp('b', CompareTarget.VERSION, CompareResult.EQUAL, { version: 0 }), rangeEnd: b('c') })).toBe(true);
    expect(ok({ ...cmp('b', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('') }), rangeEnd: b('c') })).toBe(false);
    expect(ok({ ...cmp('a', CompareTarget.MOD, CompareResult.LESS, { modRevision: 100 }), rangeEnd: ALL })).toBe(true);
  });

  it('runs the chosen branch in one revision; reads see earlier writes; per-op revisions like etcd', () => {
    const { store } = newStore();
    put(store, 'x', '0'); // 2
    const r = txn(store, {
      compare: [cmp('x', CompareTarget.VALUE, CompareResult.EQUAL, { value: b('0') })],
      success: [opGet('a'), opPut('a', '1'), opGet('a'), opPut('b', '2'), opDel('x'), opGet('a', { rangeEnd: ALL })],
      failure: [opPut('fail', '1')],
    });
    expect(r.succeeded).toBe(true);
    expect(r.revision).toBe(3);
    expect(store.currentRevision).toBe(3);
    const [r0, p1, r2, p3, d4, r5] = r.responses as any[];
    expect(r0.responseRange.kvs).toHaveLength(0);
    expect(r0.responseRange.revision).toBe(2);
    expect(p1.responsePut.revision).toBe(3);
    expect(r2.responseRange.revision).toBe(3);
    expect(s(r2.responseRange.kvs[0].value)).toBe('1');
    expect(p3.responsePut.revision).toBe(3);
    expect(d4.responseDeleteRange).toEqual({ revision: 3, deleted: 1, prevKvs: [] });
    expect(keysOf(r5.responseRange)).toEqual(['a', 'b']);
    expect(get(store, 'a').kvs[0]).toMatchObject({ createRevision: 3, modRevision: 3, version: 1 });
    // failure branch
    const f = txn(store, {
      compare: [cmp('x', CompareTarget.VERSION, CompareResult.GREATER, { version: 0 })],
      success: [opPut('s', '1')],
      failure: [opDel('nothing'), opPut('f', '1')],
    });
    expect(f.succeeded).toBe(false);
    expect((f.responses[0] as any).responseDeleteRange.revision).toBe(3);
    expect(f.revision).toBe(4);
    expect(keysOf(get(store, 'f'))).toEqual(['f']);
    expect(keysOf(get(store, 's'))).toEqual([]);
  });

  it('nested txns share the revision and evaluate compares against the pre-txn state', () => {
    const { store } = newStore();
    const r = txn(store, {
      success: [
        opPut('a', '1'),
        {
          requestTxn: {
            // 'a' does not exist before the txn, so this compare fails even though 'a' was just written
            compare: [cmp('a', CompareTarget.VERSION, CompareResult.GREATER, { version: 0 })],
            success: [opPut('yes', '1')],
            failure: [opPut('no', '1'), opGet('a')],
          },
        },
        { requestTxn: { compare: [], success: [opPut('c', '1')], failure: [] } },
      ],
    });
    expect(r.revision).toBe(2);
    const n1 = (r.responses[1] as any).responseTxn as TxnResponse;
    expect(n1.succeeded).toBe(false);
    expect(n1.revision).toBe(0); // etcd 3.4 leaves nested headers empty
    expect(s((n1.responses[1] as any).responseRange.kvs[0].value)).toBe('1');
    expect(keysOf(store.range({ key: ALL, rangeEnd: ALL }))).toEqual(['a', 'c', 'no']);
    expect(store.range({ key: ALL, rangeEnd: ALL }).kvs.every((kv) => kv.modRevision === 2)).toBe(true);
  });

  it('checks the whole branch first: a failing txn changes nothing', () => {
    const { store } = newStore();
    put(store, 'a', '1'); // 2
    const before = store.hashKV(0).hash;
    expectEtcdError(() => txn(store, { success: [opPut('b', '1'), opPut('c', '1', { lease: 99n })] }), Errors.leaseNotFound());
    expectEtcdError(() => txn(store, { success: [opPut('b', '1'), opPut('c', '', { ignoreValue: true })] }), Errors.keyNotFound());
    expectEtcdError(() => txn(store, { success: [opPut('b', '1'), opGet('a', { revision: 3 })] }), Errors.futureRev());
    expectEtcdError(
      () =>
        txn(store, {
          success: [opPut('b', '1'), { requestTxn: { compare: [], success: [opPut('c', '1', { lease: 5n })], failure: [] } }],
        }),
      Errors.leaseNotFound(),
    );
    // put errors are reported before range errors, like etcd
    expectEtcdError(() => txn(store, { success: [opGet('a', { revision: 9 }), opPut('c', '1', { lease: 5n })] }), Errors.leaseNotFound());
    // only the chosen branch is checked
    expect(txn(store, { success: [opPut('b', '1')], failure: [opPut('c', '1', { lease: 99n })] }).succeeded).toBe(true);
    expect(store.currentRevision).toBe(3);
    put(store, 'a', '2'); // 4
    store.apply({ compaction: { revision: 3 } });
    expectEtcdError(() => txn(store, { success: [opPut('z', '1'), opGet('a', { revision: 2 })] }), Errors.compacted());
    expect(store.currentRevision).toBe(4);
    expect(before).not.toBe(store.hashKV(0).hash);
  });

  it('duplicate keys and too many ops (validateTxn and apply)', () => {
    const { store } = newStore();
    const t = (x: Partial<TxnRequest>): TxnRequest => ({ compare: [], success: [], failure: [], ...x });
    const dup = [
      t({ success: [opPut('a', '1'), opPut('a', '2')] }),
      t({ failure: [opPut('a', '1'), opPut('a', '2')] }),
      t({ success: [opDel('a', 'c'), opPut('b', '2')] }),
      t({ success: [opPut('b', '2'), opDel('b')] }),
      t({ success: [opPut('a', '1'), { requestTxn: t({ success: [opPut('a', '2')] }) }] }),
      t({ success: [opDel('a', 'z'), { requestTxn: t({ failure: [opPut('b', '2')] }) }] }),
      t({ success: [{ requestTxn: t({ success: [opPut('b', '1'), opPut('b', '2')] }) }] }),
      t({ success: [{ requestTxn: t({ success: [opDel('b')] }) }, opPut('b', '1')] }),
      t({ success: [{ requestTxn: t({ success: [opPut('b', '1')] }) }, { requestTxn: t({ failure: [opPut('b', '1')] }) }] }),
    ];
    for (const d of dup) {
      expectEtcdError(() => validateTxn(d, 128), Errors.duplicateKey());
      expectEtcdError(() => store.apply({ txn: d }), Errors.duplicateKey());
    }
    const okTxns = [
      t({ success: [opPut('a', '1')], failure: [opPut('a', '2')] }),
      t({ success: [opDel('a'), opDel('a'), opGet('a')] }),
      t({ success: [opDel('a', 'c'), opPut('c', '1')] }),
      t({ success: [{ requestTxn: t({ success: [opPut('b', '1')], failure: [opPut('b', '2')] }) }] }),
    ];
    for (const o of okTxns) expect(() => validateTxn(o, 128)).not.toThrow();
    const many = t({ success: [opPut('a', '1'), opPut('b', '1'), opPut('c', '1')] });
    expectEtcdError(() => validateTxn(many, 2), Errors.tooManyOps());
    expect(() => validateTxn(many, 3)).not.toThrow();
    const manyCmp = t({ compare: Array.from({ length: 3 }, () => cmp('a', CompareTarget.VERSION, CompareResult.EQUAL)) });
    expectEtcdError(() => validateTxn(manyCmp, 2), Errors.tooManyOps());
    expectEtcdError(() => validateTxn(t({ success: [opPut('', '1')] }), 10), Errors.emptyKey());
    expectEtcdError(() => validateTxn(t({ compare: [cmp('', CompareTarget.VERSION, CompareResult.EQUAL)] }), 10), Errors.emptyKey());
    expect(store.currentRevision).toBe(1);
  });
});

describe('compaction', () => {
  it('keeps the newest version <= rev (dropping tombstones) and everything newer, without bumping', () => {
    const { store } = newStore();
    put(store, 'a', '1'); // 2
    put(store, 'a', '2'); // 3
    put(store, 'b', '1'); // 4
    del(store, 'b'); // 5
    put(store, 'a', '3'); // 6
    expect(store.apply({ compaction: { revision: 5 } })).toEqual({ revision: 6 });
    expect(store.currentRevision).toBe(6);
    expect(store.compactRevision).toBe(5);
    expect(s(get(store, 'a', { revision: 5 }).kvs[0].value)).toBe('2');
    expect(get(store, 'b', { revision: 5 }).kvs).toHaveLength(0);
    expectEtcdError(() => get(store, 'a', { revision: 4 }), Errors.compacted());
    expectEtcdError(() => store.apply({ compaction: { revision: 5 } }), Errors.compacted());
    expectEtcdError(() => store.apply({ compaction: { revision: 3 } }), Errors.compacted());
    expectEtcdError(() => store.apply({ compaction: { revision: 7 } }), Errors.futureRev());
    const size = store.dbSize();
    store.apply({ compaction: { revision: 6 } });
    expect(store.dbSize()).toBeLessThan(size);
    expect(s(get(store, 'a').kvs[0].value)).toBe('3');
    expect(get(store, 'a').kvs[0]).toMatchObject({ createRevision: 2, version: 3 });
  });

  it('revision 0 is always compacted', () => {
    const { store } = newStore();
    expectEtcdError(() => store.apply({ compaction: { revision: 0 } }), Errors.compacted());
    expect(store.apply({ compaction: { revision: 1 } })).toEqual({ revision: 1 });
  });
});

describe('leases', () => {
  it('grant: errors, minimum TTL, no revision bump', () => {
    const { store } = newStore({ minLeaseTtl: 5 });
    expect(store.apply({ leaseGrant: { id: 1n, ttl: 1 } })).toEqual({ revision: 1, id: 1n, ttl: 5 });
    expect(store.apply({ leaseGrant: { id: 2n, ttl: 60 } })).toEqual({ revision: 1, id: 2n, ttl: 60 });
    expectEtcdError(() => store.apply({ leaseGrant: { id: 1n, ttl: 10 } }), Errors.leaseExist());
    expectEtcdError(() => store.apply({ leaseGrant: { id: 3n, ttl: 9_000_000_001 } }), Errors.leaseTTLTooLarge());
    expectEtcdError(() => store.apply({ leaseGrant: { id: 0n, ttl: 10 } }), Errors.leaseNotFound());
    expect(store.leaseList()).toEqual([1n, 2n]);
    expect(store.hasLease(2n)).toBe(true);
    expect(store.hasLease(3n)).toBe(false);
    expect(store.currentRevision).toBe(1);
  });

  it('ttl, keepalive and expiry with a fake clock', () => {
    const { store, clk } = newStore();
    store.apply({ leaseGrant: { id: 7n, ttl: 10 } });
    store.apply({ leaseGrant: { id: 8n, ttl: 20 } });
    expect(store.leaseTimeToLive(7n, false)).toEqual({ revision: 1, id: 7n, ttl: 10, grantedTtl: 10, keys: [] });
    clk.advance(2500);
    expect(store.leaseTimeToLive(7n, false).ttl).toBe(7);
    expect(store.leaseKeepAlive(7n)).toBe(10);
    expect(store.leaseTimeToLive(7n, false).ttl).toBe(10);
    expect(store.expiredLeases()).toEqual([]);
    clk.advance(10_000);
    expect(store.expiredLeases()).toEqual([7n]);
    expect(store.leaseTimeToLive(7n, false).ttl).toBe(0);
    expectEtcdError(() => store.leaseKeepAlive(7n), Errors.leaseNotFound());
    expectEtcdError(() => store.leaseKeepAlive(99n), Errors.leaseNotFound());
    expect(store.leaseTimeToLive(99n, true)).toEqual({ revision: 1, id: 99n, ttl: -1, grantedTtl: 0, keys: [] });
    clk.advance(10_000);
    expect(store.expiredLeases()).toEqual([7n, 8n]);
    store.renewAllLeases();
    expect(store.expiredLeases()).toEqual([]);
  });

  it('revoke deletes attached keys in one revision, sorted; unknown lease errors', () => {
    const { store, sched } = newStore();
    store.apply({ leaseGrant: { id: 1n, ttl: 10 } });
    put(store, 'b', '1', { lease: 1n }); // 2
    put(store, 'a', '1', { lease: 1n }); // 3
    put(store, 'c', '1'); // 4
    expect(store.leaseTimeToLive(1n, true).keys.map(s)).toEqual(['a', 'b']);
    const rec = recorder();
    store.watch({ key: b('a'), rangeEnd: ALL, startRevision: 5 }, rec.sink, rec.onCompacted);
    expect(store.apply({ leaseRevoke: { id: 1n } })).toEqual({ revision: 5 });
    expect(keysOf(store.range({ key: ALL, rangeEnd: ALL }))).toEqual(['c']);
    expect(store.hasLease(1n)).toBe(false);
    expect(rec.flat()).toEqual(['D a@5', 'D b@5']);
    expect(rec.calls).toHaveLength(1);
    expectEtcdError(() => store.apply({ leaseRevoke: { id: 1n } }), Errors.leaseNotFound());
    expect(sched.pending).toBe(0);
  });
});

describe('watch', () => {
  it('history then live, no gaps or duplicates, live once per revision', () => {
    const { store, sched } = newStore();
    put(store, 'a', '1'); // 2
    put(store, 'b', '1'); // 3
    const rec = recorder();
    const w = store.watch({ key: b('a'), rangeEnd: ALL, startRevision: 2 }, rec.sink, rec.onCompacted);
    expect(w.synced).toBe(false);
    expect(rec.calls).toHaveLength(0); // never synchronous inside watch()
    txn(store, { success: [opPut('c', '1'), opPut('d', '1')] }); // 4: arrives while unsynced
    sched.drain();
    expect(w.synced).toBe(true);
    expect(rec.calls).toHaveLength(1);
    expect(rec.calls[0].revision).toBe(4);
    put(store, 'a', '2'); // 5
    txn(store, { success: [opPut('e', '1'), opDel('b')] }); // 6
    expect(rec.calls.map((c) => c.revision)).toEqual([4, 5, 6]);
    expect(rec.flat()).toEqual([
      'P a@2 c=2 v=1 1 l=0',
      'P b@3 c=3 v=1 1 l=0',
      'P c@4 c=4 v=1 1 l=0',
      'P d@4 c=4 v=1 1 l=0',
      'P a@5 c=2 v=2 2 l=0',
      'P e@6 c=6 v=1 1 l=0',
      'D b@6',
    ]);
    const delEv = rec.calls[2].events[1];
    expect(delEv.kv).toEqual({ key: b('b'), createRevision: 0, modRevision: 6, version: 0, value: Buffer.alloc(0), lease: 0n });
    expect(delEv.prevKv).toBeUndefined();
  });

  it('startRevision <= 0 watches from now; future start revisions wait', () => {
    const { store, sched } = newStore();
    put(store, 'a', '1');
    const now = recorder();
    const fut = recorder();
    const w = store.watch({ key: b('a') }, now.sink, now.onCompacted);
    store.watch({ key: b('a'), startRevision: 5 }, fut.sink, fut.onCompacted);
    expect(w.synced).toBe(true);
    expect(sched.pending).toBe(0);
    put(store, 'a', '2'); // 3
    put(store, 'a', '3'); // 4
    put(store, 'a', '4'); // 5
    expect(now.calls.map((c) => c.revision)).toEqual([3, 4, 5]);
    expect(fut.calls.map((c) => c.revision)).toEqual([5]);
  });

  it('filters and prevKv', () => {
    const { store, sched } = newStore();
    const np = recorder();
    const nd = recorder();
    const pv = recorder();
    store.watch({ key: b('k'), noPut: true }, np.sink, np.onCompacted);
    store.watch({ key: b('k'), noDelete: true }, nd.sink, nd.onCompacted);
    store.watch({ key: b('k'), prevKv: true }, pv.sink, pv.onCompacted);
    put(store, 'k', '1'); // 2
    put(store, 'k', '2'); // 3
    del(store, 'k'); // 4
    expect(np.flat()).toEqual(['D k@4']);
    expect(np.calls).toHaveLength(1);
    expect(nd.flat()).toEqual(['P k@2 c=2 v=1 1 l=0', 'P k@3 c=2 v=2 2 l=0']);
    expect(pv.flat(true)).toEqual(['P k@2 c=2 v=1 1 l=0 prev=-', 'P k@3 c=2 v=2 2 l=0 prev=1@2', 'D k@4 prev=2@3']);
    // the same from history
    const hist = recorder();
    store.watch({ key: b('k'), prevKv: true, noPut: true, startRevision: 1 }, hist.sink, hist.onCompacted);
    sched.drain();
    expect(hist.flat(true)).toEqual(['D k@4 prev=2@3']);
  });

  it('range watchers', () => {
    const { store } = newStore();
    const r = recorder();
    store.watch({ key: b('b'), rangeEnd: b('d') }, r.sink, r.onCompacted);
    for (const k of ['a', 'b', 'bz', 'c', 'd', 'e']) put(store, k, 'v');
    expect(r.flat().map((x) => x.split(' ')[1])).toEqual(['b@3', 'bz@4', 'c@5']);
  });

  it('compacted watchers are told and removed', () => {
    const { store, sched } = newStore();
    for (let i = 0; i < 5; i++) put(store, 'k', `${i}`); // 2..6
    store.apply({ compaction: { revision: 4 } });
    const old = recorder();
    store.watch({ key: b('k'), startRevision: 3 }, old.sink, old.onCompacted);
    expect(old.compacted).toEqual([]); // not synchronous
    const atC = recorder();
    store.watch({ key: b('k'), startRevision: 4 }, atC.sink, atC.onCompacted);
    sched.drain();
    expect(old.compacted).toEqual([4]);
    expect(old.calls).toHaveLength(0);
    expect(atC.compacted).toEqual([]);
    expect(atC.flat()).toEqual(['P k@4 c=2 v=3 2 l=0', 'P k@5 c=2 v=4 3 l=0', 'P k@6 c=2 v=5 4 l=0']);
    put(store, 'k', 'x');
    expect(old.calls).toHaveLength(0);
    expect(store.watcherCounts()).toEqual({ synced: 1, unsynced: 0 });
  });

  it('a paused watcher that falls behind a compaction is told', () => {
    const { store, sched } = newStore();
    const slow = recorder(() => false);
    store.watch({ key: b('k') }, slow.sink, slow.onCompacted);
    put(store, 'k', '1'); // 2 delivered, then paused
    put(store, 'k', '2'); // 3
    put(store, 'k', '3'); // 4
    store.apply({ compaction: { revision: 4 } });
    sched.drain();
    expect(slow.compacted).toEqual([4]);
    expect(slow.flat()).toEqual(['P k@2 c=2 v=1 1 l=0']);
  });

  it('slow watcher: sink false pauses, resume catches up in bounded batches, then rejoins synced', () => {
    const { store, sched } = newStore();
    let accept = true;
    const rec = recorder(() => accept);
    const w = store.watch({ key: b('a'), rangeEnd: ALL }, rec.sink, rec.onCompacted);
    accept = false;
    put(store, 'k1', 'x'); // 2: delivered, returns false
    expect(w.synced).toBe(false);
    for (let i = 0; i < 2500; i++) put(store, `k${i % 7}`, `${i}`); // 3..2502, none delivered
    txn(store, { success: Array.from({ length: 1200 }, (_, i) => opPut(`big${i}`, 'v')) }); // 2503: 1200 events
    put(store, 'k', 'last'); // 2504
    expect(rec.calls).toHaveLength(1);
    sched.drain();
    expect(rec.calls).toHaveLength(1); // nothing until resume
    accept = true;
    w.resume();
    sched.drain();
    expect(w.synced).toBe(true);
    const sizes = rec.calls.map((c) => c.events.length);
    expect(sizes.slice(1, 4)).toEqual([1000, 1000, 500]);
    expect(sizes[4]).toBe(1200); // one revision is never split
    expect(sizes[5]).toBe(1);
    const revs = rec.calls.flatMap((c) => c.events.map((e) => e.kv.modRevision));
    expect(revs.length).toBe(1 + 2500 + 1200 + 1);
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThanOrEqual(revs[i - 1]);
    expect(new Set(revs).size).toBe(2504 - 1);
    put(store, 'k', 'live');
    expect(rec.calls[rec.calls.length - 1].revision).toBe(2505);
    expect(rec.calls[rec.calls.length - 1].events).toHaveLength(1);
  });

  it('pause during catch-up keeps the position', () => {
    const { store, sched } = newStore();
    for (let i = 0; i < 1500; i++) put(store, 'k', `${i}`); // 2..1501
    let n = 0;
    const rec = recorder(() => ++n !== 1);
    const w = store.watch({ key: b('k'), startRevision: 2 }, rec.sink, rec.onCompacted);
    sched.drain();
    expect(rec.calls).toHaveLength(1);
    expect(w.synced).toBe(false);
    put(store, 'k', 'more'); // 1502
    w.resume();
    sched.drain();
    expect(w.synced).toBe(true);
    const revs = rec.calls.flatMap((c) => c.events.map((e) => e.kv.modRevision));
    expect(revs).toEqual(Array.from({ length: 1501 }, (_, i) => i + 2));
  });

  it('cancel stops delivery, in both sets', () => {
    const { store, sched } = newStore();
    put(store, 'k', '1');
    const a = recorder();
    const c = recorder();
    const wa = store.watch({ key: b('k') }, a.sink, a.onCompacted);
    const wc = store.watch({ key: b('k'), startRevision: 1 }, c.sink, c.onCompacted);
    wa.cancel();
    wc.cancel();
    wc.cancel();
    sched.drain();
    put(store, 'k', '2');
    expect(a.calls).toHaveLength(0);
    expect(c.calls).toHaveLength(0);
    expect(store.watcherCounts()).toEqual({ synced: 0, unsynced: 0 });
  });

  it('a sink that writes sees its write delivered after, in order', () => {
    const { store } = newStore();
    const order: number[] = [];
    store.watch(
      { key: b('a') },
      (evs, rev) => {
        order.push(rev);
        if (rev === 2) put(store, 'a', 'again');
        return true;
      },
      () => undefined,
    );
    const other = recorder();
    store.watch({ key: b('a') }, other.sink, other.onCompacted);
    put(store, 'a', 'first');
    expect(order).toEqual([2, 3]);
    expect(other.calls.map((c) => c.revision)).toEqual([2, 3]);
  });

  it('a throwing sink cancels its watcher and never breaks apply', () => {
    const errors: unknown[] = [];
    const { store } = newStore({ onWatchError: (e) => void errors.push(e) });
    store.watch({ key: b('a') }, () => {
      throw new Error('boom');
    }, () => undefined);
    expect(put(store, 'a', '1').revision).toBe(2);
    expect(errors).toHaveLength(1);
    expect(store.watcherCounts().synced).toBe(0);
  });

  it('default schedule is setImmediate', async () => {
    const store = new MvccStore();
    put(store, 'a', '1');
    const rec = recorder();
    store.watch({ key: b('a'), startRevision: 1 }, rec.sink, rec.onCompacted);
    expect(rec.calls).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(rec.flat()).toEqual(['P a@2 c=2 v=1 1 l=0']);
  });
});

describe('hashKV, snapshot, restore', () => {
  function feed(st: MvccStore) {
    st.apply({ leaseGrant: { id: 3n, ttl: 30 } });
    put(st, 'a', '1', { lease: 3n });
    put(st, 'b', '1');
    put(st, 'a', '2', { ignoreLease: true });
    del(st, 'b');
    txn(st, { success: [opPut('c', 'x'), opPut(String.fromCharCode(0xff), 'y')] });
    put(st, 'b', 'again');
    st.apply({ compaction: { revision: 4 } });
    put(st, 'd', '1');
  }

  it('equal for equal command streams, different when diverging; revision rules', () => {
    const s1 = newStore().store;
    const s2 = newStore().store;
    feed(s1);
    feed(s2);
    expect(s1.hashKV(0)).toEqual(s2.hashKV(0));
    expect(s1.hashKV(0)).toMatchObject({ compactRevision: 4, revision: 8 });
    expect(s1.hashKV(6)).toEqual(s2.hashKV(6));
    expect(s1.hashKV(6).hash).not.toBe(s1.hashKV(7).hash);
    expect(s1.hashKV(6).revision).toBe(8);
    expectEtcdError(() => s1.hashKV(4), Errors.compacted());
    expectEtcdError(() => s1.hashKV(9), Errors.futureRev());
    put(s2, 'e', '1');
    expect(s1.hashKV(8)).toEqual({ ...s2.hashKV(8), revision: 8 });
    expect(s1.hashKV(0).hash).not.toBe(s2.hashKV(0).hash);
    const s3 = newStore().store;
    feed(s3);
    put(s3, 'e', '2');
    expect(s3.hashKV(0).hash).not.toBe(s2.hashKV(0).hash);
  });

  it('snapshot is binary and restore is its exact inverse', () => {
    const { store, clk } = newStore();
    feed(store);
    const snap = store.snapshot();
    expect(Buffer.isBuffer(snap)).toBe(true);
    expect(snap.subarray(0, 8).toString('latin1')).toBe('NCDMVCC1');
    clk.advance(20_000);
    const clk2 = fakeClock(5_000_000);
    const sched2 = manualScheduler();
    const r = MvccStore.restore(snap, { clock: clk2.clock, schedule: sched2.schedule });
    expect(r.currentRevision).toBe(store.currentRevision);
    expect(r.compactRevision).toBe(store.compactRevision);
    expect(r.hashKV(0)).toEqual(store.hashKV(0));
    expect(r.dbSize()).toBe(store.dbSize());
    expect(r.snapshot().equals(snap)).toBe(true);
    const all = { key: ALL, rangeEnd: ALL };
    expect(r.range(all)).toEqual(store.range(all));
    for (let rev = 4; rev <= 8; rev++) expect(r.range({ ...all, revision: rev })).toEqual(store.range({ ...all, revision: rev }));
    // leases re-armed with a fresh TTL
    expect(r.leaseTimeToLive(3n, true)).toEqual({ revision: 8, id: 3n, ttl: 30, grantedTtl: 30, keys: [b('a')] });
    // watch history survives
    const w1 = recorder();
    const w2 = recorder();
    const s1 = manualScheduler();
    const live = MvccStore.restore(store.snapshot(), { schedule: s1.schedule });
    live.watch({ key: ALL, rangeEnd: ALL, startRevision: 4, prevKv: true }, w1.sink, w1.onCompacted);
    r.watch({ key: ALL, rangeEnd: ALL, startRevision: 4, prevKv: true }, w2.sink, w2.onCompacted);
    store.watch({ key: ALL, rangeEnd: ALL, startRevision: 4, prevKv: true }, w2.sink, w2.onCompacted);
    s1.drain();
    sched2.drain();
    expect(w1.flat(true).length).toBeGreaterThan(3);
    expect(w2.flat(true).slice(0, w1.flat(true).length)).toEqual(w1.flat(true));
    // both continue identically
    put(r, 'z', '1');
    put(store, 'z', '1');
    expect(r.hashKV(0)).toEqual(store.hashKV(0));
    expectEtcdError(() => MvccStore.restore(Buffer.from('garbage!')), Errors.invalidArgument('nestcd: mvcc: corrupt snapshot'));
  });

  it("restore keeps each revision's events in sub-revision order, not key order, for watchers replaying history", () => {
    const store = newStore().store;
    put(store, 'a', '0');
    // one txn: z, then m, then a (sub-revisions 0, 1, 2): key order would be a, m, z
    store.apply({ txn: { compare: [], failure: [], success: ['z', 'm', 'a'].map((k) => ({ requestPut: { key: b(k), value: b('1') } })) } });
    store.apply({ deleteRange: { key: b('m') } });
    const sched = manualScheduler();
    const restored = MvccStore.restore(store.snapshot(), { schedule: sched.schedule });
    const w = recorder();
    restored.watch({ key: ALL, rangeEnd: ALL, startRevision: 1 }, w.sink, w.onCompacted);
    sched.drain();
    expect(w.flat().map((e) => e.split(' ').slice(0, 2).join(' '))).toEqual(['P a@2', 'P z@3', 'P m@3', 'P a@3', 'D m@4']);
  });

  it('restore of an empty store', () => {
    const st = new MvccStore();
    const r = MvccStore.restore(st.snapshot());
    expect(r.currentRevision).toBe(1);
    expect(put(r, 'a', '1').revision).toBe(2);
  });
});
