import * as grpc from '@grpc/grpc-js';
import { Errors, EtcdError } from '@nestcd/errors';
import type { LeaseTimeToLiveResponse } from '@nestcd/mvcc';

/**
 * A follower's lease renewals go to the leader's lessor (etcd forwards them to the leader too; it uses the
 * leader's peer URL, nestcd uses the leader's published client URL and the ordinary gRPC LeaseKeepAlive call).
 * One short keep-alive stream per renewal: renewals are rare (a third of a lease's TTL) and this keeps no state
 * that a leader change could leave stale. Client connections are cached per URL and closed on `close()`.
 */
export class LeaseForwarder {
  private readonly clients = new Map<string, grpc.Client>();
  private closed = false;

  /** `tls`: this member's client certificate and the CA, for https:// client URLs (with client cert auth the leader wants one). */
  constructor(private readonly timeoutMs: number, private readonly tls?: { ca?: Buffer; key: Buffer; cert: Buffer; selfSigned: boolean }) {}

  /** Renews lease `id` on the member serving clients at `clientUrl`; resolves with the TTL (0: no such lease). */
  renew(clientUrl: string, id: bigint): Promise<number> {
    if (this.closed) return Promise.reject(Errors.stopped());
    const client = this.client(clientUrl);
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const call = client.makeBidiStreamRequest(
        '/etcdserverpb.Lease/LeaseKeepAlive',
        (req: bigint) => encodeKeepAliveRequest(req),
        (buf: Buffer) => decodeKeepAliveResponse(buf),
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
      );
      const finish = (err: Error | undefined, ttl?: number) => {
        if (settled) return;
        settled = true;
        call.cancel();
        if (err) reject(err);
        else resolve(ttl!);
      };
      call.on('data', (res: { id: bigint; ttl: number }) => {
        if (res.id === id) finish(undefined, res.ttl);
      });
      call.on('error', (err: grpc.ServiceError) => {
        if (err.code === grpc.status.DEADLINE_EXCEEDED) finish(Errors.timeout());
        else if (err.code === grpc.status.UNAVAILABLE && !err.details?.startsWith('etcdserver:')) finish(Errors.noLeader());
        else finish(new EtcdError(err.code as number, err.details || err.message));
      });
      call.on('end', () => finish(Errors.timeout()));
      call.write(id);
    });
  }

  /**
   * Hands a MemberPromote to the leader serving clients at `clientUrl` (etcd forwards it over the peer URL:
   * only the leader knows whether the learner caught up). Rejects with the leader's etcd error.
   */
  promote(clientUrl: string, id: bigint): Promise<void> {
    if (this.closed) return Promise.reject(Errors.stopped());
    const client = this.client(clientUrl);
    return new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest(
        '/etcdserverpb.Cluster/MemberPromote',
        (req: bigint) => encodeKeepAliveRequest(req), // MemberPromoteRequest { uint64 ID = 1; }: the same single field
        (buf: Buffer) => buf,
        id,
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (err: grpc.ServiceError | null) => {
          if (!err) resolve();
          else if (err.code === grpc.status.DEADLINE_EXCEEDED) reject(Errors.timeout());
          else if (err.code === grpc.status.UNAVAILABLE && !err.details?.startsWith('etcdserver:')) reject(Errors.noLeader());
          else reject(new EtcdError(err.code as number, err.details || err.message));
        },
      );
    });
  }

  /**
   * Asks the leader serving clients at `clientUrl` for a lease's TimeToLive: only the leader's lessor knows the
   * remaining TTL (etcd forwards LeaseTimeToLive to the leader too).
   */
  timeToLive(clientUrl: string, id: bigint, keys: boolean): Promise<LeaseTimeToLiveResponse> {
    if (this.closed) return Promise.reject(Errors.stopped());
    const client = this.client(clientUrl);
    return new Promise<LeaseTimeToLiveResponse>((resolve, reject) => {
      client.makeUnaryRequest(
        '/etcdserverpb.Lease/LeaseTimeToLive',
        () => Buffer.concat([encodeKeepAliveRequest(id), Buffer.from([0x10, keys ? 1 : 0])]),
        (buf: Buffer) => decodeTimeToLiveResponse(buf),
        id,
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (err: grpc.ServiceError | null, res?: LeaseTimeToLiveResponse) => {
          if (!err) resolve(res!);
          else if (err.code === grpc.status.DEADLINE_EXCEEDED) reject(Errors.timeout());
          else if (err.code === grpc.status.UNAVAILABLE && !err.details?.startsWith('etcdserver:')) reject(Errors.noLeader());
          else reject(new EtcdError(err.code as number, err.details || err.message));
        },
      );
    });
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private client(url: string): grpc.Client {
    let c = this.clients.get(url);
    if (!c) {
      const u = new URL(url);
      const t = this.tls;
      const credentials = u.protocol !== 'https:'
        ? grpc.credentials.createInsecure()
        : t ? grpc.credentials.createSsl(t.ca ?? null, t.key, t.cert, { rejectUnauthorized: !t.selfSigned }) : grpc.credentials.createSsl();
      c = new grpc.Client(u.host, credentials);
      this.clients.set(url, c);
    }
    return c;
  }
}

// etcdserverpb.LeaseKeepAliveRequest { int64 ID = 1; } and
// LeaseKeepAliveResponse { ResponseHeader header = 1; int64 ID = 2; int64 TTL = 3; }, encoded by hand: two fields.

function encodeKeepAliveRequest(id: bigint): Buffer {
  const out: number[] = [0x08];
  let v = BigInt.asUintN(64, id);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

function decodeKeepAliveResponse(buf: Buffer): { id: bigint; ttl: number } {
  let pos = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  let id = 0n;
  let ttl = 0n;
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const v = BigInt.asIntN(64, varint());
      if (field === 2) id = v;
      else if (field === 3) ttl = v;
    } else if (wire === 2) {
      const length = Number(varint()); // read before adding: `pos += varint()` would add to the old pos
      pos += length;
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return { id, ttl: Number(ttl) };
}

/** A minimal protobuf reader: calls `field` for each (number, wire type, varint value or bytes). */
function readFields(buf: Buffer, field: (n: number, v: bigint | Buffer) => void): void {
  let pos = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const wire = key & 7;
    if (wire === 0) field(key >>> 3, varint());
    else if (wire === 2) {
      const length = Number(varint());
      field(key >>> 3, buf.subarray(pos, pos + length));
      pos += length;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
}

// LeaseTimeToLiveResponse { ResponseHeader header = 1; int64 ID = 2; int64 TTL = 3; int64 grantedTTL = 4;
// repeated bytes keys = 5; }, ResponseHeader { ...; int64 revision = 3; ... }.
function decodeTimeToLiveResponse(buf: Buffer): LeaseTimeToLiveResponse {
  const res: LeaseTimeToLiveResponse = { revision: 0, id: 0n, ttl: 0, grantedTtl: 0, keys: [] };
  readFields(buf, (n, v) => {
    if (n === 1 && Buffer.isBuffer(v)) {
      readFields(v, (hn, hv) => {
        if (hn === 3 && typeof hv === 'bigint') res.revision = Number(BigInt.asIntN(64, hv));
      });
    } else if (n === 2 && typeof v === 'bigint') res.id = BigInt.asIntN(64, v);
    else if (n === 3 && typeof v === 'bigint') res.ttl = Number(BigInt.asIntN(64, v));
    else if (n === 4 && typeof v === 'bigint') res.grantedTtl = Number(BigInt.asIntN(64, v));
    else if (n === 5 && Buffer.isBuffer(v)) res.keys.push(Buffer.from(v));
  });
  return res;
}
