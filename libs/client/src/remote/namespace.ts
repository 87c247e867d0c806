// A key prefix applied to every request and stripped from every result, as etcd's clientv3/namespace does:
// the client sees its own keyspace [ns, prefixEnd(ns)) as if it were the whole store.

const ALL_KEYS = Buffer.from([0]);

/** The smallest key greater than every key starting with `prefix` ([0] when there is none: all keys). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from(ALL_KEYS);
}

export class Namespace {
  readonly prefix: Buffer;

  constructor(prefix: string | Buffer | undefined) {
    this.prefix = prefix === undefined ? Buffer.alloc(0) : Buffer.from(prefix);
  }

  get empty(): boolean {
    return this.prefix.length === 0;
  }

  key(key: Buffer): Buffer {
    return this.empty ? key : Buffer.concat([this.prefix, key]);
  }

  /** [key, rangeEnd) of the caller mapped into the namespace, with etcd's special ends kept meaningful. */
  range(key: Buffer, rangeEnd: Buffer | undefined): { key: Buffer; rangeEnd: Buffer | undefined } {
    if (this.empty) return { key, rangeEnd };
    if (!rangeEnd || rangeEnd.length === 0) return { key: this.key(key), rangeEnd };
    if (rangeEnd.length === 1 && rangeEnd[0] === 0) {
      // "every key >= key" stops at the end of the namespace.
      return { key: this.key(key), rangeEnd: prefixEnd(this.prefix) };
    }
    return { key: this.key(key), rangeEnd: this.key(rangeEnd) };
  }

  strip(key: Buffer): Buffer {
    if (this.empty || key.length < this.prefix.length) return key;
    return key.subarray(0, this.prefix.length).equals(this.prefix) ? key.subarray(this.prefix.length) : key;
  }
}
