import { ByteArena, spanLength, spanView } from './arena';
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

describe('ByteArena spans', () => {
  it('keeps a value as a span of a chunk, read back as a view of that chunk', () => {
    const arena = new ByteArena(1024);
    const spans = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(200, 7), Buffer.alloc(600, 9)].map((src) => {
      const span = arena.keep(src);
      return { src: Buffer.from(src), chunk: arena.held, span };
    });
    const [small, empty, packed, big] = spans;
    expect(packed.chunk).toBe(small.chunk); // packed side by side in one chunk
    expect(big.chunk).not.toBe(small.chunk); // over a quarter chunk: memory of its own
    for (const { src, chunk, span } of spans) {
      expect(spanView(chunk, span).equals(src)).toBe(true);
      expect(spanLength(chunk, span)).toBe(src.length);
    }
    expect(spanView(empty.chunk, empty.span).length).toBe(0);
    // the packed value sits after the first, not over it
    expect(spanView(small.chunk, small.span).toString()).toBe('first');
    expect(spanView(packed.chunk, packed.span).byteOffset).toBe(small.chunk.byteOffset + 5);
  });

  it('refuses chunks too big for a span to address', () => {
    expect(() => new ByteArena(1 << 16)).toThrow(RangeError);
    expect(() => new ByteArena(1 << 15)).not.toThrow();
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

  it('holds one heap object per revision: the value stays in the arena, not in a view of its own', () => {
    const { store } = newStore();
    for (let i = 0; i < 50; i++) put(store, 'k', `value-${i}`);
    type Held = { recs: object[] };
    const recs = (store as unknown as { tree: { get(k: string): Held | undefined } }).tree.get('k')!.recs;
    expect(recs).toHaveLength(50);
    for (const [i, rec] of recs.entries()) {
      // the value is read through a getter from the arena chunk; no Buffer view of it is kept per revision
      expect(Object.keys(rec)).not.toContain('value');
      expect(Object.values(rec).filter((v) => Buffer.isBuffer(v) && v.length === `value-${i}`.length)).toEqual([]);
      expect(s((rec as { value: Buffer }).value)).toBe(`value-${i}`);
    }
    expect(store.range({ key: b('k'), revision: 10 }).kvs.map((kv) => s(kv.value))).toEqual(['value-8']);
  });
});

