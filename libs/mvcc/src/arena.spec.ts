import { ByteArena } from './arena';
import { MvccStore, type PutResponse } from './index';
import { b, newStore, s } from './test-util';

describe('ByteArena', () => {
  it('copies share no memory with their source, and small copies are packed into one chunk of its own', () => {
    const arena = new ByteArena(1024);
    const src = Buffer.from('value-1');
    const a = arena.copy(src);
    const k = arena.copyLatin1('k\u00ff');
    src.fill(0);
    expect(s(a)).toBe('value-1');
    expect([...k]).toEqual([0x6b, 0xff]);
    expect(k.buffer).toBe(a.buffer);
    expect(a.buffer.byteLength).toBe(1024);
    // not Node's shared pool: buffers allocated by anything else land elsewhere
    expect(Buffer.allocUnsafe(16).buffer).not.toBe(a.buffer);
  });

  it('starts a new chunk when one is full, and gives a big copy memory of its own', () => {
    const arena = new ByteArena(1024);
    const first = arena.copy(Buffer.alloc(200, 1));
    const copies = Array.from({ length: 5 }, (_, i) => arena.copy(Buffer.alloc(200, i + 2)));
    const chunks = new Set([first, ...copies].map((c) => c.buffer));
    expect(chunks.size).toBe(2); // 5 x 200 fit in the first 1024 bytes, the sixth does not
    copies.forEach((c, i) => expect(c.equals(Buffer.alloc(200, i + 2))).toBe(true));
    expect(first.equals(Buffer.alloc(200, 1))).toBe(true);
    const big = arena.copy(Buffer.alloc(600, 9));
    expect(big.buffer.byteLength).toBe(600);
    expect(chunks.has(big.buffer)).toBe(false);
    expect(arena.copy(Buffer.alloc(0)).length).toBe(0);
  });
});

describe('what the store keeps', () => {
  const put = (st: MvccStore, k: string, v: string) => st.apply({ put: { key: b(k), value: b(v) } }) as PutResponse;

  it('keeps keys and values outside the pool that short-lived buffers share, after a put and after a restore', () => {
    const { store } = newStore();
    put(store, 'k1', 'v1');
    const pooled = Buffer.from('short-lived'); // Node's pool, where Buffer.from(value) used to put kept values
    const [kv] = store.range({ key: b('k1') }).kvs;
    expect(s(kv.value)).toBe('v1');
    expect(kv.value.buffer).not.toBe(pooled.buffer);
    expect(kv.key.buffer).not.toBe(pooled.buffer);

    const restored = MvccStore.restore(store.snapshot());
    const pooledAfter = Buffer.from('short-lived');
    const [again] = restored.range({ key: b('k1') }).kvs;
    expect(s(again.key)).toBe('k1');
    expect(s(again.value)).toBe('v1');
    expect(again.value.buffer).not.toBe(pooledAfter.buffer);
  });
});
