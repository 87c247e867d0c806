import { prefixEnd, type KeyValue } from '@nestcd/client';

/** The range end that covers every key starting with a prefix (etcd's GetPrefixRangeEnd), from the client. */
export { prefixEnd };

/** A Buffer from a string key. */
export const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

/** A name as one path segment: "jobs/42" must not share a prefix with "jobs/42/x". */
export const segment = (name: string): string => encodeURIComponent(name);

/** The lease ID as etcd's concurrency package writes it in keys. */
export const leaseHex = (id: bigint): string => id.toString(16);

/** Keys the recipes write, all under one namespace. */
export class Keyspace {
  constructor(readonly namespace: string) {}

  key(...parts: string[]): string {
    return this.namespace + parts.join('/');
  }

  prefix(...parts: string[]): string {
    return this.key(...parts) + '/';
  }

  /** The part of `key` after `prefix`. */
  static rest(kv: KeyValue | Buffer, prefix: string): string {
    const k = Buffer.isBuffer(kv) ? kv : kv.key;
    return k.subarray(Buffer.byteLength(prefix, 'utf8')).toString('utf8');
  }
}

export function parseJson(value: Buffer): unknown {
  const text = value.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
