/**
 * Framing of the peer protocol. Every frame is
 *
 *   u32 length (big-endian, counts the kind byte and the body)   u8 kind   body
 *
 * A connection starts with HELLO (dialer -> listener) answered by HELLO_OK or HELLO_REJECT (then the listener
 * closes). After that a message stream carries only MSGS frames dialer -> listener; a snapshot stream carries
 * SNAP_BEGIN, SNAP_CHUNK..., SNAP_END dialer -> listener and one SNAP_RESULT back.
 *
 *   HELLO        "NCDP" u16 version  u8 stream (1 messages, 2 snapshot)  u64 clusterId  u64 fromId  u64 toId
 *   HELLO_OK     u16 version  u64 clusterId  u64 memberId
 *   HELLO_REJECT u16 reason code  utf8 text
 *   MSGS         u32 count, then per message: u32 length, encoded message (codec.ts)
 *   SNAP_BEGIN   u64 snapshot data length, encoded MsgSnap whose snapshot.data is empty
 *   SNAP_CHUNK   raw snapshot data bytes (consecutive chunks concatenate to the data)
 *   SNAP_END     u32 CRC-32 (zlib) of the whole snapshot data
 *   SNAP_RESULT  u8 ok (1/0), utf8 reason
 *   CLUSTER_INFO the member table as the application encodes it (answer to a cluster-info stream, then close)
 *
 * A cluster-info stream (stream 3) needs no cluster or member ID: a member joining an existing cluster asks
 * for the member list before it knows either (etcd's GET /members on the peer URL).
 */
import { Message } from '@nestcd/raft';
import { CodecError, decodeMessage, encodedMessageSize, encodeMessageInto } from './codec';

export const PROTOCOL_VERSION = 1;
export const HELLO_MAGIC = 0x4e434450; // "NCDP"

export enum FrameKind {
  Hello = 1,
  HelloOk = 2,
  HelloReject = 3,
  Msgs = 4,
  SnapBegin = 5,
  SnapChunk = 6,
  SnapEnd = 7,
  SnapResult = 8,
  ClusterInfo = 9,
}

export enum StreamKind {
  Messages = 1,
  Snapshot = 2,
  ClusterInfo = 3,
}

export enum RejectCode {
  BadHello = 1,
  VersionMismatch = 2,
  ClusterIdMismatch = 3,
  MemberIdMismatch = 4,
  PeerRefused = 5,
}

export interface Frame {
  kind: FrameKind;
  /** The body (after the kind byte). May be a view into a socket chunk: consume it before the next read. */
  body: Buffer;
}

export interface Hello {
  version: number;
  stream: StreamKind;
  clusterId: bigint;
  from: bigint;
  /** The member the dialer expects to reach (0n: any). */
  to: bigint;
}

const FRAME_HEADER = 5;

export function frameHeader(kind: FrameKind, bodyLength: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER);
  h.writeUInt32BE(bodyLength + 1, 0);
  h[4] = kind;
  return h;
}

export function frame(kind: FrameKind, body: Buffer): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  b.writeUInt32BE(body.length + 1, 0);
  b[4] = kind;
  body.copy(b, FRAME_HEADER);
  return b;
}

export function encodeHello(h: Hello): Buffer {
  const body = Buffer.allocUnsafe(4 + 2 + 1 + 24);
  body.writeUInt32BE(HELLO_MAGIC, 0);
  body.writeUInt16BE(h.version, 4);
  body.writeUInt8(h.stream, 6);
  body.writeBigUInt64BE(h.clusterId, 7);
  body.writeBigUInt64BE(h.from, 15);
  body.writeBigUInt64BE(h.to, 23);
  return frame(FrameKind.Hello, body);
}

/** Returns undefined when the body is not a HELLO of any version this code can read. */
export function decodeHello(body: Buffer): Hello | undefined {
  if (body.length < 6 || body.readUInt32BE(0) !== HELLO_MAGIC) return undefined;
  const version = body.readUInt16BE(4);
  if (body.length < 31) return { version, stream: 0 as StreamKind, clusterId: 0n, from: 0n, to: 0n };
  return {
    version,
    stream: body.readUInt8(6) as StreamKind,
    clusterId: body.readBigUInt64BE(7),
    from: body.readBigUInt64BE(15),
    to: body.readBigUInt64BE(23),
  };
}

export function encodeHelloOk(version: number, clusterId: bigint, memberId: bigint): Buffer {
  const body = Buffer.allocUnsafe(18);
  body.writeUInt16BE(version, 0);
  body.writeBigUInt64BE(clusterId, 2);
  body.writeBigUInt64BE(memberId, 10);
  return frame(FrameKind.HelloOk, body);
}

export function decodeHelloOk(body: Buffer): { version: number; clusterId: bigint; memberId: bigint } {
  if (body.length !== 18) throw new CodecError('malformed HELLO_OK');
  return { version: body.readUInt16BE(0), clusterId: body.readBigUInt64BE(2), memberId: body.readBigUInt64BE(10) };
}

export function encodeReject(code: RejectCode, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8');
  const body = Buffer.allocUnsafe(2 + text.length);
  body.writeUInt16BE(code, 0);
  text.copy(body, 2);
  return frame(FrameKind.HelloReject, body);
}

export function decodeReject(body: Buffer): { code: number; reason: string } {
  if (body.length < 2) return { code: 0, reason: 'malformed rejection' };
  return { code: body.readUInt16BE(0), reason: body.toString('utf8', 2) };
}

/** One MSGS frame holding all of `msgs`, in a single buffer (one socket write). */
export function encodeMsgsFrame(msgs: readonly Message[], sizes?: readonly number[]): Buffer {
  let bodyLen = 4;
  const sz = sizes ?? msgs.map(encodedMessageSize);
  for (const s of sz) bodyLen += 4 + s;
  const b = Buffer.allocUnsafe(FRAME_HEADER + bodyLen);
  b.writeUInt32BE(bodyLen + 1, 0);
  b[4] = FrameKind.Msgs;
  let off = b.writeUInt32BE(msgs.length, FRAME_HEADER);
  for (let i = 0; i < msgs.length; i++) {
    off = b.writeUInt32BE(sz[i], off);
    const end = encodeMessageInto(msgs[i], b, off);
    if (end !== off + sz[i]) throw new CodecError('internal: message size mismatch');
    off = end;
  }
  return b;
}

export function decodeMsgsBody(body: Buffer): Message[] {
  if (body.length < 4) throw new CodecError('truncated MSGS frame');
  const n = body.readUInt32BE(0);
  if (n * 4 > body.length - 4) throw new CodecError(`MSGS count ${n} exceeds frame`);
  const out: Message[] = new Array<Message>(n);
  let off = 4;
  for (let i = 0; i < n; i++) {
    if (body.length - off < 4) throw new CodecError('truncated MSGS frame');
    const len = body.readUInt32BE(off);
    off += 4;
    if (body.length - off < len) throw new CodecError('truncated message in MSGS frame');
    out[i] = decodeMessage(body, off, off + len);
    off += len;
  }
  if (off !== body.length) throw new CodecError('trailing bytes in MSGS frame');
  return out;
}

export function encodeSnapBegin(meta: Message, dataLength: number): Buffer {
  const size = encodedMessageSize(meta);
  const b = Buffer.allocUnsafe(FRAME_HEADER + 8 + size);
  b.writeUInt32BE(1 + 8 + size, 0);
  b[4] = FrameKind.SnapBegin;
  b.writeUInt32BE(Math.floor(dataLength / 2 ** 32), FRAME_HEADER);
  b.writeUInt32BE(dataLength % 2 ** 32, FRAME_HEADER + 4);
  encodeMessageInto(meta, b, FRAME_HEADER + 8);
  return b;
}

export function decodeSnapBegin(body: Buffer): { dataLength: number; msg: Message } {
  if (body.length < 8) throw new CodecError('truncated SNAP_BEGIN');
  const dataLength = body.readUInt32BE(0) * 2 ** 32 + body.readUInt32BE(4);
  return { dataLength, msg: decodeMessage(body, 8, body.length) };
}

export function encodeSnapResult(ok: boolean, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8');
  const body = Buffer.allocUnsafe(1 + text.length);
  body[0] = ok ? 1 : 0;
  text.copy(body, 1);
  return frame(FrameKind.SnapResult, body);
}

export function decodeSnapResult(body: Buffer): { ok: boolean; reason: string } {
  if (body.length < 1) throw new CodecError('truncated SNAP_RESULT');
  return { ok: body[0] === 1, reason: body.toString('utf8', 1) };
}

/**
 * Splits a byte stream into frames. Frames that fit in one socket chunk are zero-copy views of it; others are
 * assembled once. Frames of a `splittable` kind (snapshot data) are never assembled: they come out as several
 * consecutive frames of the same kind whose bodies concatenate to the original body (zero-copy views).
 * A frame longer than `maxFrameBytes` (or empty) is a protocol error.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private partial?: { kind: FrameKind; remaining: number };

  constructor(private readonly maxFrameBytes: number, private readonly splittable: ReadonlySet<FrameKind> = new Set()) {}

  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Frame[] = [];
    for (;;) {
      if (this.partial) {
        if (this.buffered === 0) break;
        const first = this.chunks[0];
        const n = Math.min(this.partial.remaining, first.length);
        out.push({ kind: this.partial.kind, body: this.take(n) });
        this.partial.remaining -= n;
        if (this.partial.remaining === 0) this.partial = undefined;
        continue;
      }
      if (this.buffered < 5) break;
      const head = this.peek5();
      const len = head.readUInt32BE(0);
      const kind = head[4] as FrameKind;
      if (this.splittable.has(kind)) {
        if (len < 1) throw new CodecError(`frame length ${len} too small`);
        this.take(5);
        if (len === 1) out.push({ kind, body: Buffer.alloc(0) });
        else this.partial = { kind, remaining: len - 1 };
        continue;
      }
      if (len < 1 || len > this.maxFrameBytes) {
        throw new CodecError(`frame length ${len} outside 1..${this.maxFrameBytes}`);
      }
      if (this.buffered < 4 + len) break;
      const bytes = this.take(4 + len);
      out.push({ kind: bytes[4] as FrameKind, body: bytes.subarray(5) });
    }
    return out;
  }

  get pendingBytes(): number {
    return this.buffered;
  }

  private peek5(): Buffer {
    const first = this.chunks[0];
    if (first.length >= 5) return first;
    const head = Buffer.allocUnsafe(5);
    let got = 0;
    for (const c of this.chunks) {
      const n = Math.min(5 - got, c.length);
      c.copy(head, got, 0, n);
      got += n;
      if (got === 5) break;
    }
    return head;
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0];
      const k = Math.min(n - got, c.length);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
