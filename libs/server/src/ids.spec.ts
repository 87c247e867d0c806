import { clusterIdOf, IdGenerator, memberIdOf } from './ids';

describe('member and cluster IDs', () => {
  it('derive from peer URLs and token only, whatever the URL order', () => {
    const a = memberIdOf(['http://127.0.0.1:2380', 'http://127.0.0.1:2381'], 'tok');
    expect(memberIdOf(['http://127.0.0.1:2381', 'http://127.0.0.1:2380'], 'tok')).toBe(a);
    expect(memberIdOf(['http://127.0.0.1:2380', 'http://127.0.0.1:2381'], 'other')).not.toBe(a);
    expect(clusterIdOf([1n, 2n, 3n])).toBe(clusterIdOf([3n, 1n, 2n]));
    expect(clusterIdOf([1n, 2n])).not.toBe(clusterIdOf([1n, 3n]));
  });
});

describe('IdGenerator', () => {
  it('hands out distinct positive int64 IDs that carry the member prefix', () => {
    const gen = new IdGenerator(0xabcdn, 1_700_000_000_000);
    const seen = new Set<bigint>();
    for (let i = 0; i < 10000; i++) {
      const id = gen.nextId();
      expect(id > 0n && id < 1n << 63n).toBe(true);
      seen.add(id);
    }
    expect(seen.size).toBe(10000);
    expect(new IdGenerator(0x1n, 5).nextId()).not.toBe(new IdGenerator(0x2n, 5).nextId());
  });

  it('starts past its old IDs after a restart later in time', () => {
    const before = new IdGenerator(7n, 1000);
    let last = 0n;
    for (let i = 0; i < 100; i++) last = before.nextId();
    expect(new IdGenerator(7n, 1001).nextId() > last).toBe(true);
  });
});
