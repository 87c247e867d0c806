/**
 * Binary encoding of raft messages (no JSON). All integers are big-endian (network order).
 *
 * Message layout:
 *
 *   u8   type code (MESSAGE_TYPE_CODES, stable across versions)
 *   u64  to            u64 from
 *   u64  term          u64 logTerm     u64 index     u64 commit     u64 rejectHint
 *   u8   flags         bit0 reject, bit1 context present, bit2 snapshot present
 *   u32  entry count, then per entry:
 *          u8 entry type, u64 term, u64 index, u32 data length, data bytes
 *   [flags bit1] u32 context length, context bytes
 *   [flags bit2] u64 snapshot index, u64 snapshot term,
 *                u32 voter count, u64 voter ids..., u32 learner count, u64 learner ids...,
 *                u32 data length, data bytes
 *
 * Terms and indexes are JS numbers and must be safe non-negative integers; node IDs are unsigned 64-bit bigints.
 * Decoded byte fields are fresh `Uint8Array`s (copies), so they never pin the frame they arrived in.
 */
import { Entry, EntryType, Message, MessageType, Snapshot } from '@nestcd/raft';

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

/** Wire codes of message types. Never renumber: these are part of the protocol. */
export const MESSAGE_TYPE_CODES: Readonly<Record<MessageType, number>> = {
  [MessageType.MsgHup]: 1,
  [MessageType.MsgBeat]: 2,
  [MessageType.MsgCheckQuorum]: 3,
  [MessageType.MsgUnreachable]: 4,
  [MessageType.MsgSnapStatus]: 5,
  [MessageType.MsgProp]: 6,
  [MessageType.MsgApp]: 7,
  [MessageType.MsgAppResp]: 8,
  [MessageType.MsgVote]: 9,
  [MessageType.MsgVoteResp]: 10,
  [MessageType.MsgPreVote]: 11,
  [MessageType.MsgPreVoteResp]: 12,
  [MessageType.MsgSnap]: 13,
  [MessageType.MsgHeartbeat]: 14,
  [MessageType.MsgHeartbeatResp]: 15,
  [MessageType.MsgTransferLeader]: 16,
  [MessageType.MsgTimeoutNow]: 17,
  [MessageType.MsgReadIndex]: 18,
  [MessageType.MsgReadIndexResp]: 19,
};

const TYPE_BY_CODE: (MessageType | undefined)[] = [];
for (const [t, c] of Object.entries(MESSAGE_TYPE_CODES)) TYPE_BY_CODE[c] = t as MessageType;

const FLAG_REJECT = 1;
const FLAG_CONTEXT = 2;
const FLAG_SNAPSHOT = 4;

const FIXED_HEADER = 1 + 8 * 2 + 8 * 5 + 1 + 4;
const ENTRY_HEADER = 1 + 8 + 8 + 4;
const TWO_32 = 2 ** 32;
const MAX_U64 = (1n << 64n) - 1n;
const MAX_U32 = TWO_32 - 1;

/** Exact number of bytes `encodeMessageInto` writes for `m`. */
export function encodedMessageSize(m: Message): number {
  let n = FIXED_HEADER;
  for (const e of m.entries) n += ENTRY_HEADER + e.data.byteLength;
  if (m.context !== undefined) n += 4 + m.context.byteLength;
  if (m.snapshot !== undefined) {
    const cs = m.snapshot.metadata.confState;
    n += 8 + 8 + 4 + 8 * cs.voters.length + 4 + 8 * cs.learners.length + 4 + m.snapshot.data.byteLength;
  }
  return n;
}

/** Encodes `m` into a new buffer. */
export function encodeMessage(m: Message): Buffer {
  const buf = Buffer.allocUnsafe(encodedMessageSize(m));
  const end = encodeMessageInto(m, buf, 0);
  if (end !== buf.length) throw new CodecError(`internal: encoded ${end} bytes, expected ${buf.length}`);
  return buf;
}

/** Writes `m` at `off` (the caller sized `buf` with `encodedMessageSize`); returns the offset after it. */
export function encodeMessageInto(m: Message, buf: Buffer, off: number): number {
  const code = MESSAGE_TYPE_CODES[m.type];
  if (code === undefined) throw new CodecError(`unknown message type ${String(m.type)}`);
  off = buf.writeUInt8(code, off);
  off = writeId(buf, m.to, off, 'to');
  off = writeId(buf, m.from, off, 'from');
  off = writeNum(buf, m.term, off, 'term');
  off = writeNum(buf, m.logTerm, off, 'logTerm');
  off = writeNum(buf, m.index, off, 'index');
  off = writeNum(buf, m.commit, off, 'commit');
  off = writeNum(buf, m.rejectHint, off, 'rejectHint');
  const flags = (m.reject ? FLAG_REJECT : 0) | (m.context !== undefined ? FLAG_CONTEXT : 0) |
    (m.snapshot !== undefined ? FLAG_SNAPSHOT : 0);
  off = buf.writeUInt8(flags, off);
  off = writeCount(buf, m.entries.length, off);
  for (const e of m.entries) {
    if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) {
      throw new CodecError(`unknown entry type ${String(e.type)}`);
    }
    off = buf.writeUInt8(e.type, off);
    off = writeNum(buf, e.term, off, 'entry.term');
    off = writeNum(buf, e.index, off, 'entry.index');
    off = writeBytes(buf, e.data, off);
  }
  if (m.context !== undefined) off = writeBytes(buf, m.context, off);
  if (m.snapshot !== undefined) {
    const md = m.snapshot.metadata;
    off = writeNum(buf, md.index, off, 'snapshot.index');
    off = writeNum(buf, md.term, off, 'snapshot.term');
    off = writeCount(buf, md.confState.voters.length, off);
    for (const id of md.confState.voters) off = writeId(buf, id, off, 'voter');
    off = writeCount(buf, md.confState.learners.length, off);
    for (const id of md.confState.learners) off = writeId(buf, id, off, 'learner');
    off = writeBytes(buf, m.snapshot.data, off);
  }
  return off;
}

/** Decodes exactly one message occupying `buf[off, end)`; throws CodecError on malformed input. */
export function decodeMessage(buf: Buffer, off = 0, end = buf.length): Message {
  const r = new Reader(buf, off, end);
  const code = r.u8();
  const type = TYPE_BY_CODE[code];
  if (type === undefined) throw new CodecError(`unknown message type code ${code}`);
  const to = r.u64big();
  const from = r.u64big();
  const term = r.num();
  const logTerm = r.num();
  const index = r.num();
  const commit = r.num();
  const rejectHint = r.num();
  const flags = r.u8();
  if ((flags & ~(FLAG_REJECT | FLAG_CONTEXT | FLAG_SNAPSHOT)) !== 0) throw new CodecError(`unknown flags ${flags}`);
  const nEntries = r.count(ENTRY_HEADER);
  const entries: Entry[] = new Array<Entry>(nEntries);
  for (let i = 0; i < nEntries; i++) {
    const et = r.u8();
    if (et !== EntryType.Normal && et !== EntryType.ConfChange) throw new CodecError(`unknown entry type ${et}`);
    const eterm = r.num();
    const eindex = r.num();
    entries[i] = { type: et, term: eterm, index: eindex, data: r.bytes() };
  }
  const m: Message = { type, to, from, term, logTerm, index, entries, commit, reject: (flags & FLAG_REJECT) !== 0, rejectHint };
  if (flags & FLAG_CONTEXT) m.context = r.bytes();
  if (flags & FLAG_SNAPSHOT) {
    const sIndex = r.num();
    const sTerm = r.num();
    const voters = r.ids();
    const learners = r.ids();
    const data = r.bytes();
    const snapshot: Snapshot = { data, metadata: { index: sIndex, term: sTerm, confState: { voters, learners } } };
    m.snapshot = snapshot;
  }
  if (r.off !== end) throw new CodecError(`${end - r.off} trailing bytes after message`);
  return m;
}

function writeId(buf: Buffer, id: bigint, off: number, what: string): number {
  if (typeof id !== 'bigint' || id < 0n || id > MAX_U64) throw new CodecError(`${what}: not a u64 node id: ${String(id)}`);
  return buf.writeBigUInt64BE(id, off);
}

function writeNum(buf: Buffer, n: number, off: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new CodecError(`${what}: not a non-negative safe integer: ${n}`);
  const hi = (n / TWO_32) >>> 0;
  const lo = n >>> 0; // ToUint32 is exact modulo 2^32 for safe integers
  buf[off] = hi >>> 24;
  buf[off + 1] = hi >>> 16;
  buf[off + 2] = hi >>> 8;
  buf[off + 3] = hi;
  buf[off + 4] = lo >>> 24;
  buf[off + 5] = lo >>> 16;
  buf[off + 6] = lo >>> 8;
  buf[off + 7] = lo;
  return off + 8;
}

function writeCount(buf: Buffer, n: number, off: number): number {
  if (n > MAX_U32) throw new CodecError(`count ${n} too large`);
  return buf.writeUInt32BE(n, off);
}

function writeBytes(buf: Buffer, data: Uint8Array, off: number): number {
  off = writeCount(buf, data.byteLength, off);
  buf.set(data, off);
  return off + data.byteLength;
}

class Reader {
  constructor(private readonly buf: Buffer, public off: number, private readonly end: number) {
    if (off < 0 || end > buf.length || off > end) throw new CodecError('bad message bounds');
  }

  private need(n: number): void {
    if (this.end - this.off < n) throw new CodecError(`truncated message: need ${n} bytes at ${this.off}, have ${this.end - this.off}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.off++];
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  u64big(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }

  num(): number {
    this.need(8);
    const b = this.buf;
    const o = this.off;
    const hi = ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
    const lo = ((b[o + 4] << 24) | (b[o + 5] << 16) | (b[o + 6] << 8) | b[o + 7]) >>> 0;
    if (hi >= 0x200000) throw new CodecError(`integer out of safe range at ${o}`);
    this.off = o + 8;
    return hi * TWO_32 + lo;
  }

  /** A count whose items take at least `minItemBytes` each (rejects absurd counts before allocating). */
  count(minItemBytes: number): number {
    const n = this.u32();
    if (n * minItemBytes > this.end - this.off) throw new CodecError(`count ${n} exceeds remaining bytes`);
    return n;
  }

  bytes(): Uint8Array {
    const n = this.u32();
    this.need(n);
    const out = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.off, n).slice();
    this.off += n;
    return out;
  }

  ids(): bigint[] {
    const n = this.count(8);
    const out: bigint[] = new Array<bigint>(n);
    for (let i = 0; i < n; i++) out[i] = this.u64big();
    return out;
  }
}
