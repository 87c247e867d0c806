import { Namespace, prefixEnd } from './namespace';

const b = (s: string) => Buffer.from(s);

describe('prefixEnd', () => {
  it('is the first key after every key with the prefix', () => {
    expect(prefixEnd(b('a/'))).toEqual(b('a0'));
    expect(prefixEnd(Buffer.from([0x61, 0xff]))).toEqual(b('b'));
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toEqual(Buffer.from([0]));
  });
});

describe('Namespace', () => {
  const ns = new Namespace('/ns/');

  it('maps single keys, ranges and "from key" into the namespace', () => {
    expect(ns.range(b('k'), undefined)).toEqual({ key: b('/ns/k'), rangeEnd: undefined });
    expect(ns.range(b('a'), b('z'))).toEqual({ key: b('/ns/a'), rangeEnd: b('/ns/z') });
    expect(ns.range(b('a'), Buffer.from([0]))).toEqual({ key: b('/ns/a'), rangeEnd: b('/ns0') });
  });

  it('strips the prefix from results and leaves other keys alone', () => {
    expect(ns.strip(b('/ns/k'))).toEqual(b('k'));
    expect(ns.strip(b('/other'))).toEqual(b('/other'));
  });

  it('is the identity without a prefix', () => {
    const none = new Namespace(undefined);
    expect(none.range(b('a'), Buffer.from([0]))).toEqual({ key: b('a'), rangeEnd: Buffer.from([0]) });
    expect(none.strip(b('a'))).toEqual(b('a'));
  });
});
