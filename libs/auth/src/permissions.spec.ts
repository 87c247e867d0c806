import fc from 'fast-check';
import { isPermitted, Permission, PermType } from './permissions';

const b = (s: string) => Buffer.from(s);
const perm = (permType: PermType, key: string, rangeEnd = ''): Permission => ({ permType, key: b(key), rangeEnd: b(rangeEnd) });
const OPEN = '\0';

describe('isPermitted (etcd range permission semantics)', () => {
  it('a single-key permission allows that key only', () => {
    const perms = [perm(PermType.READ, 'a')];
    expect(isPermitted(perms, b('a'), b(''), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('ab'), b(''), PermType.READ)).toBe(false);
    expect(isPermitted(perms, b('a'), b(''), PermType.WRITE)).toBe(false);
    // the range [a, a\0) is exactly that key
    expect(isPermitted(perms, b('a'), b('a\0'), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('a'), b('b'), PermType.READ)).toBe(false);
  });

  it('readwrite counts for both; a prefix covers ranges inside it and not past it', () => {
    const perms = [perm(PermType.READWRITE, 'p/', 'p0')];
    expect(isPermitted(perms, b('p/x'), b(''), PermType.WRITE)).toBe(true);
    expect(isPermitted(perms, b('p/'), b('p0'), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('p/a'), b('p/z'), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('p/'), b('p1'), PermType.READ)).toBe(false);
    expect(isPermitted(perms, b('p'), b('p0'), PermType.READ)).toBe(false);
    expect(isPermitted(perms, b('p/'), b(OPEN), PermType.READ)).toBe(false);
  });

  it('adjacent and overlapping permissions together cover a range; a gap does not', () => {
    const perms = [perm(PermType.READ, 'a', 'c'), perm(PermType.READWRITE, 'b', 'e'), perm(PermType.READ, 'f', OPEN)];
    expect(isPermitted(perms, b('a'), b('e'), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('a'), b('f'), PermType.READ)).toBe(false);
    expect(isPermitted(perms, b('f'), b(OPEN), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('zzz'), b(''), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('a'), b('c'), PermType.WRITE)).toBe(false);
  });

  it('an open-ended permission from the empty key allows everything', () => {
    const perms = [perm(PermType.READ, '', OPEN)];
    expect(isPermitted(perms, b(''), b(OPEN), PermType.READ)).toBe(true);
    expect(isPermitted(perms, b('any'), b(''), PermType.READ)).toBe(true);
  });

  it('agrees with a key-by-key model over a small alphabet', () => {
    const key = fc.stringMatching(/^[ab]{0,3}$/);
    const permArb = fc.record({ permType: fc.constantFrom(PermType.READ, PermType.WRITE, PermType.READWRITE), key, rangeEnd: fc.oneof(fc.constant(''), key) });
    // every key over {a,b} up to length 4 (and each followed by \0): every gap between permissions starts at one of
    // them, so a range is permitted iff every one of them inside it is
    const universe: string[] = [''];
    for (let len = 1; len <= 4; len++) for (const prev of universe.filter((u) => u.length === len - 1)) universe.push(`${prev}a`, `${prev}b`);
    // keys just past a point (k + \0) start the gaps a point permission leaves
    for (const u of [...universe]) universe.push(`${u}\0`);
    universe.sort();
    fc.assert(
      fc.property(fc.array(permArb, { maxLength: 4 }), key, key, (raw, k, end) => {
        const perms = raw.map((p) => perm(p.permType, p.key, p.rangeEnd));
        const allows = (x: string) =>
          raw.some((p) => (p.permType === PermType.READ || p.permType === PermType.READWRITE) &&
            (p.rangeEnd === '' ? x === p.key : x >= p.key && x < p.rangeEnd));
        const inRange = universe.filter((x) => x >= k && x < end);
        if (end <= k) return;
        expect(isPermitted(perms, b(k), b(end), PermType.READ)).toBe(inRange.every(allows));
      }),
      { numRuns: 500 },
    );
  });
});
