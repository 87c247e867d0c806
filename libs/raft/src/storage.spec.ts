import fc from 'fast-check';
import { MemoryStorage, limitSize } from './storage';
import { Entry, EntryType, Snapshot, entrySize } from './types';

/** The simple model: a plain array of entries behind a dummy entry holding the last compacted index and term. */
class ModelLog {
  ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }];
  get offset(): number {
    return this.ents[0].index;
  }
  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }
  term(i: number): number | 'compacted' | 'unavailable' {
    if (i < this.offset) return 'compacted';
    if (i - this.offset >= this.ents.length) return 'unavailable';
    return this.ents[i - this.offset].term;
  }
  entries(lo: number, hi: number, maxSize: number): Entry[] | 'compacted' | 'unavailable' {
    if (lo <= this.offset) return 'compacted';
    if (this.ents.length === 1) return 'unavailable';
    return limitSize(this.ents.slice(lo - this.offset, hi - this.offset), maxSize);
  }
  compact(i: number): void {
    const k = i - this.offset;
    this.ents = [{ ...this.ents[k], type: EntryType.Normal, data: new Uint8Array(0) }, ...this.ents.slice(k + 1)];
  }
  reset(index: number, term: number): void {
    this.ents = [{ term, index, type: EntryType.Normal, data: new Uint8Array(0) }];
  }
  append(entries: Entry[]): void {
    const first = this.offset + 1;
    if (entries[0].index + entries.length - 1 < first) return;
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    this.ents.length = entries[0].index - this.offset;
    this.ents.push(...entries.map((e) => ({ ...e, data: Uint8Array.from(e.data) })));
  }
}

const outcome = (f: () => unknown): unknown => {
  try {
    return f();
  } catch (err) {
    const name = (err as Error).constructor.name;
    return name === 'CompactedError' ? 'compacted' : name === 'UnavailableError' ? 'unavailable' : err;
  }
};
const plain = (es: unknown): unknown =>
  Array.isArray(es) ? es.map((e: Entry) => ({ term: e.term, index: e.index, type: e.type, data: Buffer.from(e.data).toString('hex') })) : es;

type Op =
  | { t: 'append'; back: number; sizes: number[]; term: number; fill: number }
  | { t: 'compact'; back: number }
  | { t: 'snapshot'; ahead: number; term: number }
  | { t: 'read'; lo: number; hi: number; maxSize: number };

const gOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('append' as const), back: fc.nat(6), sizes: fc.array(fc.oneof(fc.nat(40), fc.integer({ min: 200_000, max: 1_200_000 })), { minLength: 1, maxLength: 6 }), term: fc.integer({ min: 1, max: 9 }), fill: fc.nat(255) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('compact' as const), back: fc.nat(8) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapshot' as const), ahead: fc.integer({ min: 1, max: 5 }), term: fc.integer({ min: 1, max: 9 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('read' as const), lo: fc.nat(12), hi: fc.nat(12), maxSize: fc.oneof(fc.constant(Infinity), fc.nat(300_000)) }) },
);

describe('MemoryStorage', () => {
  it('answers every read like a plain array of entries, across appends, conflicting overwrites, compactions and snapshots', () => {
    fc.assert(
      fc.property(fc.array(gOp, { minLength: 1, maxLength: 40 }), (ops) => {
        const s = new MemoryStorage();
        const m = new ModelLog();
        const handedOut: { e: Entry; hex: string }[] = [];
        let snapIndex = 0;
        for (const op of ops) {
          if (op.t === 'append') {
            const at = Math.max(1, m.lastIndex() + 1 - op.back);
            const es = op.sizes.map((n, j) => ({ term: op.term, index: at + j, type: j % 3 === 2 ? EntryType.ConfChange : EntryType.Normal, data: Buffer.alloc(n, op.fill + j) }));
            s.append(es);
            m.append(es);
          } else if (op.t === 'compact') {
            const i = m.lastIndex() - op.back;
            if (i > m.offset && i <= m.lastIndex()) {
              s.compact(i);
              m.compact(i);
            } else if (i <= m.offset) {
              expect(outcome(() => s.compact(i))).toBe('compacted');
            }
          } else if (op.t === 'snapshot') {
            const index = Math.max(snapIndex, m.lastIndex()) + op.ahead;
            const snap: Snapshot = { data: new Uint8Array(0), metadata: { index, term: op.term, confState: { voters: [1n], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } } as never };
            s.applySnapshot(snap);
            m.reset(index, op.term);
            snapIndex = index;
          } else {
            const lo = m.offset + op.lo - 2;
            const hi = Math.min(lo + op.hi, m.lastIndex() + 1);
            const got = outcome(() => s.entries(lo, hi, op.maxSize));
            expect(plain(got)).toEqual(plain(m.entries(lo, hi, op.maxSize)));
            if (Array.isArray(got)) for (const e of got as Entry[]) handedOut.push({ e, hex: Buffer.from(e.data).toString('hex') });
            for (let i = lo - 1; i <= hi + 1; i++) expect(outcome(() => s.term(i))).toEqual(m.term(i));
          }
          expect(s.lastIndex()).toBe(m.lastIndex());
          expect(s.firstIndex()).toBe(m.offset + 1);
        }
        // entries handed out earlier keep their bytes, whatever was appended, truncated or compacted since
        for (const { e, hex } of handedOut) expect(Buffer.from(e.data).toString('hex')).toBe(hex);
      }),
      { numRuns: 300 },
    );
  });

  it('counts sizes as limitSize does and hands out Buffers', () => {
    const s = new MemoryStorage();
    s.append([1, 2, 3].map((i) => ({ term: 1, index: i, type: EntryType.Normal, data: Buffer.alloc(10, i) })));
    expect(s.entries(1, 4, 2 * entrySize({ term: 1, index: 1, type: EntryType.Normal, data: Buffer.alloc(10) }))).toHaveLength(2);
    expect(s.entries(1, 4, 0)).toHaveLength(1);
    const [a] = s.entries(1, 2, Infinity);
    expect(Buffer.isBuffer(a.data)).toBe(true);
  });
});
