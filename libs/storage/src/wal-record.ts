import * as zlib from 'node:zlib';
import type { Entry, EntryType, HardState } from '@nestcd/raft';

/**
 * WAL record framing (all integers little-endian):
 *
 *   offset 0  u32  len      length of the body (>= 1)
 *   offset 4  u32  ~len     bitwise complement of len: a torn or flipped length is detected before it is trusted
 *   offset 8  u32  crc      crc32(body) seeded with the previous record's crc (the chain); see below for CRC records
 *   offset 12 body          u8 type, then the type's payload
 *
 * A header of 12 zero bytes marks the end of the data in a (preallocated, zero-filled) segment.
 *
 * Body payloads (u64 = two u32 little-endian halves, lo then hi; ids are full 64-bit bigints):
 *   CRC (1)        u32 running crc carried from the previous segment. Its own crc field = crc32(body, that value),
 *                  so a segment can be verified on its own after older segments are purged; when the previous
 *                  segment is read too, the carried value must equal that segment's last crc.
 *   METADATA (2)   u64 memberId, u64 clusterId, u32 n, n bytes opaque server data
 *   ENTRY (3)      u64 index, u64 term, u8 entry type, rest = entry data
 *   HARDSTATE (4)  u64 term, u64 vote, u64 commit
 *   SNAPSHOT (5)   u64 index, u64 term (a snapshot marker)
 */
export const HEADER_SIZE = 12;

export enum RecordType {
  Crc = 1,
  Metadata = 2,
  Entry = 3,
  HardState = 4,
  Snapshot = 5,
}

export interface WalMetadata {
  memberId: bigint;
  clusterId: bigint;
  /** Opaque to the WAL (the server's own bytes). Returned as a Buffer (empty if none was given). */
  data?: Uint8Array;
}

export interface SnapshotMarker {
  index: number;
  term: number;
}

export type WalRecord =
  | { type: RecordType.Crc; crc: number }
  | { type: RecordType.Metadata; metadata: Required<WalMetadata> }
  | { type: RecordType.Entry; entry: Entry }
  | { type: RecordType.HardState; hardState: HardState }
  | { type: RecordType.Snapshot; snapshot: SnapshotMarker };

export function crc32(data: Uint8Array, seed: number): number {
  return zlib.crc32(data, seed) >>> 0;
}

const TWO32 = 2 ** 32;

function putU64(buf: Buffer, off: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`WAL: ${n} is not a non-negative safe integer`);
  buf.writeUInt32LE(n % TWO32, off);
  buf.writeUInt32LE(Math.floor(n / TWO32), off + 4);
}

function getU64(buf: Buffer, off: number): number {
  const n = buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * TWO32;
  if (!Number.isSafeInteger(n)) throw new RangeError(`u64 ${n} beyond 2^53`);
  return n;
}

/** Body length of a record (without the 12-byte header). */
export function bodySize(r: WalRecord): number {
  switch (r.type) {
    case RecordType.Crc:
      return 1 + 4;
    case RecordType.Metadata:
      return 1 + 8 + 8 + 4 + (r.metadata.data?.byteLength ?? 0);
    case RecordType.Entry:
      return 1 + 8 + 8 + 1 + r.entry.data.byteLength;
    case RecordType.HardState:
      return 1 + 24;
    case RecordType.Snapshot:
      return 1 + 16;
  }
}

export function frameSize(r: WalRecord): number {
  return HEADER_SIZE + bodySize(r);
}

function writeBody(r: WalRecord, buf: Buffer, off: number): void {
  buf[off] = r.type;
  const p = off + 1;
  switch (r.type) {
    case RecordType.Crc:
      buf.writeUInt32LE(r.crc >>> 0, p);
      return;
    case RecordType.Metadata: {
      buf.writeBigUInt64LE(BigInt.asUintN(64, r.metadata.memberId), p);
      buf.writeBigUInt64LE(BigInt.asUintN(64, r.metadata.clusterId), p + 8);
      const d = r.metadata.data ?? new Uint8Array(0);
      buf.writeUInt32LE(d.byteLength, p + 16);
      buf.set(d, p + 20);
      return;
    }
    case RecordType.Entry:
      putU64(buf, p, r.entry.index);
      putU64(buf, p + 8, r.entry.term);
      buf[p + 16] = r.entry.type;
      buf.set(r.entry.data, p + 17);
      return;
    case RecordType.HardState:
      putU64(buf, p, r.hardState.term);
      buf.writeBigUInt64LE(BigInt.asUintN(64, r.hardState.vote), p + 8);
      putU64(buf, p + 16, r.hardState.commit);
      return;
    case RecordType.Snapshot:
      putU64(buf, p, r.snapshot.index);
      putU64(buf, p + 8, r.snapshot.term);
      return;
  }
}

/**
 * Encodes `r` as a frame into buf at `off` (buf must have frameSize(r) bytes there), chained to `prevCrc`.
 * Returns the record's crc (the next record's seed).
 */
export function encodeFrame(r: WalRecord, prevCrc: number, buf: Buffer, off: number): number {
  const len = bodySize(r);
  const bodyOff = off + HEADER_SIZE;
  writeBody(r, buf, bodyOff);
  const seed = r.type === RecordType.Crc ? r.crc >>> 0 : prevCrc;
  const crc = crc32(buf.subarray(bodyOff, bodyOff + len), seed);
  buf.writeUInt32LE(len, off);
  buf.writeUInt32LE(~len >>> 0, off + 4);
  buf.writeUInt32LE(crc, off + 8);
  return crc;
}

/** Encodes a sequence of records chained from `prevCrc`. */
export function encodeFrames(records: WalRecord[], prevCrc: number): { buf: Buffer; crc: number } {
  let size = 0;
  for (const r of records) size += frameSize(r);
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  let crc = prevCrc;
  for (const r of records) {
    crc = encodeFrame(r, crc, buf, off);
    off += frameSize(r);
  }
  return { buf, crc };
}

const NO_DATA = new Uint8Array(0);

/**
 * Decodes a body whose crc has been verified. Throws on a malformed body. Entry data is copied, unless the entry's
 * index is below `entryDataFrom`: such entries (already in a snapshot, or read only for the markers) come without it.
 */
export function decodeBody(body: Buffer, entryDataFrom = 0): WalRecord {
  if (body.length < 1) throw new Error('empty record body');
  const type = body[0] as RecordType;
  const need = (n: number): void => {
    if (body.length !== n) throw new Error(`record type ${type} has body length ${body.length}, expected ${n}`);
  };
  switch (type) {
    case RecordType.Crc:
      need(5);
      return { type, crc: body.readUInt32LE(1) };
    case RecordType.Metadata: {
      if (body.length < 21) throw new Error(`metadata record too short (${body.length} bytes)`);
      const n = body.readUInt32LE(17);
      need(21 + n);
      return {
        type,
        metadata: {
          memberId: body.readBigUInt64LE(1),
          clusterId: body.readBigUInt64LE(9),
          data: Buffer.from(body.subarray(21, 21 + n)),
        },
      };
    }
    case RecordType.Entry: {
      if (body.length < 18) throw new Error(`entry record too short (${body.length} bytes)`);
      const index = getU64(body, 1);
      let data = NO_DATA;
      if (index >= entryDataFrom) {
        data = new Uint8Array(body.length - 18);
        data.set(body.subarray(18));
      }
      return { type, entry: { index, term: getU64(body, 9), type: body[17] as EntryType, data } };
    }
    case RecordType.HardState:
      need(25);
      return { type, hardState: { term: getU64(body, 1), vote: body.readBigUInt64LE(9), commit: getU64(body, 17) } };
    case RecordType.Snapshot:
      need(17);
      return { type, snapshot: { index: getU64(body, 1), term: getU64(body, 9) } };
    default:
      throw new Error(`unknown record type ${type as number}`);
  }
}

const ZEROS = Buffer.alloc(1 << 16);

/** True if buf[from, to) holds only zero bytes. */
export function allZero(buf: Buffer, from: number, to: number = buf.length): boolean {
  for (let i = Math.max(0, from); i < to; i += ZEROS.length) {
    const n = Math.min(ZEROS.length, to - i);
    if (!buf.subarray(i, i + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

/**
 * True if a well-formed frame (len >= 1, ~len check, fits in the buffer, body decodes) starts anywhere at or after
 * `from`: evidence of real records, as opposed to zeros or the garbage of a torn write. A random match needs the
 * 32-bit len/~len check to pass by chance.
 */
export function hasFrameFrom(buf: Buffer, from: number): boolean {
  if (allZero(buf, from)) return false;
  for (let y = from; y + HEADER_SIZE < buf.length; y++) {
    const len = buf.readUInt32LE(y);
    if (len === 0 || buf.readUInt32LE(y + 4) !== (~len >>> 0) || y + HEADER_SIZE + len > buf.length) continue;
    try {
      decodeBody(buf.subarray(y + HEADER_SIZE, y + HEADER_SIZE + len));
      return true;
    } catch {
      // not a frame
    }
  }
  return false;
}

export type ScanResult =
  | { kind: 'end'; offset: number }
  /** A bad record that is the tail (only zeros after its extent): a torn write. */
  | { kind: 'torn'; offset: number; reason: string }
  /** A bad record followed by data: corruption. */
  | { kind: 'corrupt'; offset: number; reason: string };

/**
 * Walks the frames of one segment buffer, calling `onRecord` for each verified, decoded record.
 * `crc` is the running crc before the segment (undefined if the previous segment was not read: the CRC record
 * at the start of the segment provides it). Returns how the scan ended and the running crc at that point.
 *
 * Torn vs corrupt: the WAL only ever appends, and a crash tears at most the end of the last write, so after a torn
 * record the file holds only zeros (preallocated space) or garbage, never another record. A bad record is
 * therefore classified "torn" iff no well-formed frame starts after its extent (hasFrameFrom), where the extent is
 * its declared length if the header's len/~len check holds (so a flipped length cannot swallow later records) and
 * its 12-byte header otherwise. Anything else (a damaged record with records after it) is corruption. The caller
 * treats "torn" as corruption too unless this is the last segment. Every record's CRC is checked; entries below
 * `entryDataFrom` are passed on without their data (see decodeBody).
 */
export function scanSegment(
  buf: Buffer,
  crc: number | undefined,
  onRecord: (r: WalRecord, offset: number, end: number) => void,
  entryDataFrom = 0,
): { result: ScanResult; crc: number | undefined } {
  let off = 0;
  let first = true;
  const bad = (offset: number, extentEnd: number, reason: string): { result: ScanResult; crc: number | undefined } => {
    const torn = !hasFrameFrom(buf, Math.min(extentEnd, buf.length));
    return { result: { kind: torn ? 'torn' : 'corrupt', offset, reason }, crc };
  };
  while (off < buf.length) {
    if (off + HEADER_SIZE > buf.length) {
      if (allZero(buf, off)) return { result: { kind: 'end', offset: off }, crc };
      return bad(off, buf.length, 'truncated record header');
    }
    const len = buf.readUInt32LE(off);
    const chk = buf.readUInt32LE(off + 4);
    const stored = buf.readUInt32LE(off + 8);
    if (len === 0 && chk === 0 && stored === 0) {
      if (allZero(buf, off)) return { result: { kind: 'end', offset: off }, crc };
      return bad(off, off + HEADER_SIZE, 'zeroed record header followed by non-zero bytes');
    }
    if (len === 0 || chk !== (~len >>> 0)) return bad(off, off + HEADER_SIZE, 'invalid record header (length check failed)');
    const end = off + HEADER_SIZE + len;
    if (end > buf.length) return bad(off, end, `record of ${len} bytes runs past the end of the file (${buf.length} bytes)`);
    const body = buf.subarray(off + HEADER_SIZE, end);
    let seed: number;
    if (body[0] === RecordType.Crc && body.length === 5) {
      if (!first) return { result: { kind: 'corrupt', offset: off, reason: 'CRC record in the middle of a segment' }, crc };
      seed = body.readUInt32LE(1);
    } else {
      if (first) return bad(off, end, 'segment does not start with a CRC record');
      seed = crc as number;
    }
    if (crc32(body, seed) !== stored) return bad(off, end, 'CRC mismatch');
    let rec: WalRecord;
    try {
      rec = decodeBody(body, entryDataFrom);
    } catch (e) {
      // The CRC holds, so this is not a torn write: treat as corruption (or a format this build does not know).
      return { result: { kind: 'corrupt', offset: off, reason: `undecodable record: ${(e as Error).message}` }, crc };
    }
    if (rec.type === RecordType.Crc && crc !== undefined && rec.crc !== crc) {
      return {
        result: { kind: 'corrupt', offset: off, reason: `CRC chain broken across segments (carried ${rec.crc.toString(16)}, previous segment ended with ${crc.toString(16)})` },
        crc,
      };
    }
    crc = stored;
    first = false;
    onRecord(rec, off, end);
    off = end;
  }
  return { result: { kind: 'end', offset: off }, crc };
}
