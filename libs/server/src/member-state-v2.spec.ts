import { MvccStore } from '@nestcd/mvcc';
import { AuthStore } from '@nestcd/auth';
import { V2Store } from '@nestcd/v2store';
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
    // an older snapshot ends right after the member list; a saved one may carry zero padding after it
    // (the auth store's trailer follows the v2 store's, so both go)
    const emptyV2 = new V2Store().snapshot().length;
    const emptyAuth = AuthStore.EMPTY_SNAPSHOT.length;
    expect(Math.max(emptyV2, emptyAuth)).toBeLessThan(128); // one length byte in front of each
    const withoutV2 = Buffer.from(new MemberState(new MvccStore()).snapshot()).subarray(0, -(emptyV2 + 1 + emptyAuth + 1));
    copy.restore(Buffer.concat([withoutV2, Buffer.alloc(7)]));
    expect(copy.v2.index).toBe(0);
    copy.restore(withoutV2);
    expect(copy.v2.get('/').node).toEqual({ dir: true });
  });
});
