import { MvccStore, Writer } from '@nestcd/mvcc';
import { EntryKind, MemberState } from './member-state';

const v2 = (state: MemberState, cmd: object) => state.apply(EntryKind.V2, Buffer.from(JSON.stringify(cmd)));

describe('MemberState: the v2 store', () => {
  it('applies v2 entries; a store error is a value, not a throw (so the member keeps running)', () => {
    const state = new MemberState(new MvccStore());
    expect(v2(state, { op: 'set', path: '/a', value: '1' })).toMatchObject({ result: { action: 'set', node: { key: '/a', value: '1' } } });
    expect(v2(state, { op: 'create', path: '/a', value: '2' })).toEqual({ error: { errorCode: 105, cause: '/a', index: 1 } });
    expect(state.apply(EntryKind.V2, Buffer.from('not json'))).toMatchObject({ error: { errorCode: 300 } });
    // the v3 keyspace is untouched by v2 writes
    expect(state.store.currentRevision).toBe(1);
  });

  it('keeps the v2 store in the member snapshot, and restores one written before the v2 store existed as empty', () => {
    const state = new MemberState(new MvccStore());
    v2(state, { op: 'set', path: '/d/k', value: 'v', expireTime: 10_000 });
    const copy = new MemberState(new MvccStore());
    copy.restore(state.snapshot());
    expect(copy.v2.get('/', true, true)).toEqual(state.v2.get('/', true, true));
    expect(copy.v2.nextExpiry()).toBe(10_000);
    // a saved snapshot (etcdctl snapshot save) carries zero padding after the keyspace; anything else there is corruption
    const padded = new MemberState(new MvccStore());
    padded.restore(Buffer.concat([state.snapshot(), Buffer.alloc(7)]));
    expect(padded.v2.get('/', true, true)).toEqual(state.v2.get('/', true, true));
    expect(() => padded.restore(Buffer.concat([state.snapshot(), Buffer.from([0, 1])]))).toThrow(/corrupt snapshot/);

    // The previous layout (NSM2: the keyspace's length, the keyspace, then the small parts) is still read. An older
    // snapshot of it ends right after the member list (no removed IDs, v2 store or auth), or in zero padding there.
    const source = new MvccStore();
    source.apply({ put: { key: Buffer.from('k'), value: Buffer.from('v') } });
    const mvcc = source.snapshot();
    const w = new Writer();
    w.raw(Buffer.from('NSM2'));
    w.uint(mvcc.length);
    w.raw(mvcc);
    w.uint(0); // alarms
    w.uint(0); // members
    const old = w.finish();
    for (const bytes of [old, Buffer.concat([old, Buffer.alloc(7)])]) {
      const restored = new MemberState(new MvccStore());
      v2(restored, { op: 'set', path: '/gone', value: 'x' });
      restored.restore(bytes);
      expect(restored.v2.index).toBe(0);
      expect(restored.v2.get('/').node).toEqual({ dir: true });
      expect(restored.store.range({ key: Buffer.from('k') }).kvs.map((kv) => kv.value.toString())).toEqual(['v']);
    }
  });
});
