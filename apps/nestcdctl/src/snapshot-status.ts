// `snapshot status`: what etcdctl 3.4 reports of an etcd snapshot file (a bbolt database, read here without
// bbolt: meta pages, then every bucket's B+tree in key order), and the same figures for a nestcd snapshot.

export interface SnapshotStatus {
  /** CRC-32C over every bucket name, key and value, in bbolt's iteration order (etcdctl's hash). */
  hash: number;
  /** the main revision of the last key in the "key" bucket. */
  revision: number;
  /** entries in all buckets. */
  totalKey: number;
  /** the database size: its high-water page times the page size. */
  totalSize: number;
}

export class InvalidDatabaseError extends Error {
  constructor() {
    super('invalid database');
  }
}

const BOLT_MAGIC = 0xed0cdaed;
const PAGE_HEADER_BYTES = 16;
const ELEMENT_BYTES = 16;
const BRANCH_PAGE = 0x01;
const LEAF_PAGE = 0x02;
const BUCKET_LEAF = 0x01;
const META_BYTES = 64;

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** Castagnoli CRC-32, fed piece by piece as Go's hash.Hash32 is. */
class Crc32c {
  private crc = 0xffffffff;
  write(b: Buffer): void {
    let c = this.crc;
    for (let i = 0; i < b.length; i++) c = CRC32C_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
    this.crc = c >>> 0;
  }
  sum(): number {
    return (this.crc ^ 0xffffffff) >>> 0;
  }
}

function fnv64a(b: Buffer): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of b) h = BigInt.asUintN(64, (h ^ BigInt(byte)) * 0x100000001b3n);
  return h;
}

interface Meta {
  pageSize: number;
  root: bigint;
  pgid: bigint;
  txid: bigint;
}

function readMeta(db: Buffer, pageOffset: number): Meta | undefined {
  const m = pageOffset + PAGE_HEADER_BYTES;
  if (m + META_BYTES > db.length || db.readUInt32LE(m) !== BOLT_MAGIC) return undefined;
  if (fnv64a(db.subarray(m, m + 56)) !== db.readBigUInt64LE(m + 56)) return undefined;
  return { pageSize: db.readUInt32LE(m + 8), root: db.readBigUInt64LE(m + 16), pgid: db.readBigUInt64LE(m + 40), txid: db.readBigUInt64LE(m + 48) };
}

/** Calls `leaf` for every leaf element under the page at `offset` of `buf`, in key order. */
function walk(db: Buffer, pageSize: number, buf: Buffer, offset: number, leaf: (flags: number, key: Buffer, value: Buffer) => void, depth = 0): void {
  if (depth > 64 || offset < 0 || offset + PAGE_HEADER_BYTES > buf.length) throw new InvalidDatabaseError();
  const flags = buf.readUInt16LE(offset + 8);
  const count = buf.readUInt16LE(offset + 10);
  const elements = offset + PAGE_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const e = elements + i * ELEMENT_BYTES;
    if (e + ELEMENT_BYTES > buf.length) throw new InvalidDatabaseError();
    if (flags & BRANCH_PAGE) {
      const child = Number(buf.readBigUInt64LE(e + 8));
      walk(db, pageSize, db, child * pageSize, leaf, depth + 1);
    } else if (flags & LEAF_PAGE) {
      const pos = buf.readUInt32LE(e + 4);
      const ksize = buf.readUInt32LE(e + 8);
      const vsize = buf.readUInt32LE(e + 12);
      const k = e + pos;
      if (k + ksize + vsize > buf.length) throw new InvalidDatabaseError();
      leaf(buf.readUInt32LE(e), buf.subarray(k, k + ksize), buf.subarray(k + ksize, k + ksize + vsize));
    } else {
      throw new InvalidDatabaseError();
    }
  }
}

/** etcdctl's `snapshot status` of an etcd (bbolt) snapshot; InvalidDatabaseError if `db` is not one. */
export function boltSnapshotStatus(db: Buffer): SnapshotStatus {
  const first = readMeta(db, 0);
  if (!first) throw new InvalidDatabaseError();
  const second = readMeta(db, first.pageSize);
  const meta = second && second.txid > first.txid ? second : first;
  const { pageSize } = meta;
  const hash = new Crc32c();
  let revision = 0;
  let totalKey = 0;
  walk(db, pageSize, db, Number(meta.root) * pageSize, (flags, name, header) => {
    if (!(flags & BUCKET_LEAF) || header.length < 16) throw new InvalidDatabaseError();
    hash.write(name);
    const isKeyBucket = name.toString('latin1') === 'key';
    const root = header.readBigUInt64LE(0);
    // A bucket with root 0 is inline: its one page follows the bucket header inside the value.
    const [buf, offset] = root === 0n ? [header.subarray(16), 0] : [db, Number(root) * pageSize];
    walk(db, pageSize, buf, offset, (elementFlags, key, value) => {
      hash.write(key);
      if (!(elementFlags & BUCKET_LEAF)) hash.write(value);
      if (isKeyBucket && key.length >= 8) revision = Number(key.readBigUInt64BE(0));
      totalKey++;
    });
  });
  return { hash: hash.sum(), revision, totalKey, totalSize: Number(meta.pgid) * pageSize };
}

/** The same figures for a nestcd snapshot, computed by `nestcdStatus` over the decoded keyspace. */
export function snapshotStatus(file: Buffer, nestcdStatus: (file: Buffer) => SnapshotStatus | undefined): SnapshotStatus {
  try {
    return boltSnapshotStatus(file);
  } catch (err) {
    if (!(err instanceof InvalidDatabaseError)) throw err;
    const status = nestcdStatus(file);
    if (!status) throw err;
    return status;
  }
}
