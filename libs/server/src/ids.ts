import { createHash } from 'node:crypto';

const first8 = (digest: Buffer): bigint => digest.readBigUInt64BE(0);

/**
 * A member's ID depends only on its peer URLs and the cluster token (etcd derives it the same way), so every
 * member of a new cluster computes the same IDs for all members without talking to each other.
 */
export function memberIdOf(peerUrls: string[], clusterToken: string, salt = ''): bigint {
  const h = createHash('sha1');
  for (const u of [...peerUrls].sort()) h.update(u);
  h.update(clusterToken);
  if (salt) h.update(salt);
  return first8(h.digest());
}

/** The cluster ID is a digest of its initial members' IDs. */
export function clusterIdOf(memberIds: bigint[]): bigint {
  const h = createHash('sha1');
  const buf = Buffer.alloc(8);
  for (const id of [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    buf.writeBigUInt64BE(id);
    h.update(buf);
  }
  return first8(h.digest());
}

const MAX_INT64 = (1n << 63n) - 1n;

/**
 * Unique request and lease IDs: the member's low 16 bits, then a 40-bit millisecond timestamp taken once at
 * start, then an 8-bit counter that carries into the timestamp. IDs from different members never collide and a
 * restarted member starts past its old IDs. Kept positive because lease IDs travel as int64.
 */
export class IdGenerator {
  private next: bigint;

  constructor(memberId: bigint, nowMs: number) {
    const prefix = (memberId & 0xffffn) << 48n;
    const suffix = (BigInt(nowMs) & ((1n << 40n) - 1n)) << 8n;
    this.next = prefix | suffix;
  }

  nextId(): bigint {
    this.next += 1n;
    const id = this.next & MAX_INT64;
    return id === 0n ? this.nextId() : id;
  }
}
