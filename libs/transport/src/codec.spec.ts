import fc from 'fast-check';
import { EntryType, Message, MessageType, emptyMessage } from '@nestcd/raft';
import { CodecError, decodeMessage, encodedMessageSize, encodeMessage, MESSAGE_TYPE_CODES } from './codec';
import { decodeMsgsBody, encodeMsgsFrame, frame, FrameDecoder, FrameKind } from './frames';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const num = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeInteger().map((n) => Math.abs(n)), fc.constant(Number.MAX_SAFE_INTEGER));
const bytes = (max: number) => fc.uint8Array({ maxLength: max });

const entry = fc.record({
  type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange),
  term: num,
  index: num,
  data: bytes(64),
});

const snapshot = fc.record({
  data: bytes(256),
  metadata: fc.record({
    index: num,
    term: num,
    confState: fc.record({ voters: fc.array(u64, { maxLength: 7 }), learners: fc.array(u64, { maxLength: 3 }) }),
  }),
});

export const arbMessage: fc.Arbitrary<Message> = fc
  .record(
    {
      type: fc.constantFrom(...(Object.keys(MESSAGE_TYPE_CODES) as MessageType[])),
      to: u64,
      from: u64,
      term: num,
      logTerm: num,
      index: num,
      entries: fc.array(entry, { maxLength: 8 }),
      commit: num,
      snapshot,
      reject: fc.boolean(),
      rejectHint: num,
      context: bytes(32),
    },
    { requiredKeys: ['type', 'to', 'from', 'term', 'logTerm', 'index', 'entries', 'commit', 'reject', 'rejectHint'] },
  );

describe('message codec', () => {
  it('round-trips every field of any message (property)', () => {
    fc.assert(
      fc.property(arbMessage, (m) => {
        const buf = encodeMessage(m);
        expect(buf.length).toBe(encodedMessageSize(m));
        const d = decodeMessage(buf);
        expect(d).toEqual(m);
        // Optional fields stay absent when absent (not materialised as empty values).
        expect('snapshot' in d).toBe(m.snapshot !== undefined);
        expect('context' in d).toBe(m.context !== undefined);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips batches through MSGS frames split at arbitrary chunk boundaries (property)', () => {
    fc.assert(
      fc.property(fc.array(arbMessage, { maxLength: 10 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
        (msgs, cuts) => {
          const wire = Buffer.concat([encodeMsgsFrame(msgs), encodeMsgsFrame(msgs.slice(0, 1))]);
          const dec = new FrameDecoder(1 << 20);
          const frames = [];
          let off = 0;
          for (let i = 0; off < wire.length; i++) {
            const n = cuts[i % cuts.length];
            frames.push(...dec.push(wire.subarray(off, off + n)));
            off += n;
          }
          expect(frames.map((f) => f.kind)).toEqual([FrameKind.Msgs, FrameKind.Msgs]);
          expect(decodeMsgsBody(frames[0].body)).toEqual(msgs);
          expect(decodeMsgsBody(frames[1].body)).toEqual(msgs.slice(0, 1));
          expect(dec.pendingBytes).toBe(0);
        }),
      { numRuns: 200 },
    );
  });

  it('splittable frames come out as pieces whose bodies concatenate to the original (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 10 }),
        (data, cuts) => {
          const wire = Buffer.concat([frame(FrameKind.SnapChunk, Buffer.from(data)), frame(FrameKind.SnapEnd, Buffer.from([1, 2, 3, 4]))]);
          const dec = new FrameDecoder(16, new Set([FrameKind.SnapChunk]));
          const frames = [];
          let off = 0;
          for (let i = 0; off < wire.length; i++) {
            const n = cuts[i % cuts.length];
            frames.push(...dec.push(wire.subarray(off, off + n)));
            off += n;
          }
          const last = frames.pop()!;
          expect(last.kind).toBe(FrameKind.SnapEnd);
          expect(frames.every((f) => f.kind === FrameKind.SnapChunk)).toBe(true);
          expect(Buffer.concat(frames.map((f) => f.body)).equals(Buffer.from(data))).toBe(true);
        }),
      { numRuns: 200 },
    );
  });

  it('decoded byte fields are copies, not views of the frame', () => {
    const m: Message = { ...emptyMessage(MessageType.MsgApp, 2n), from: 1n,
      entries: [{ type: EntryType.Normal, term: 1, index: 1, data: new Uint8Array([1, 2, 3]) }] };
    const buf = encodeMessage(m);
    const d = decodeMessage(buf);
    buf.fill(0);
    expect(Array.from(d.entries[0].data)).toEqual([1, 2, 3]);
    expect(d.entries[0].data).toBeInstanceOf(Uint8Array);
  });

  it('rejects malformed input with CodecError', () => {
    const m: Message = { ...emptyMessage(MessageType.MsgHeartbeat, 2n), from: 1n, context: new Uint8Array([9]) };
    const buf = encodeMessage(m);
    for (let n = 0; n < buf.length; n++) expect(() => decodeMessage(buf.subarray(0, n))).toThrow(CodecError);
    expect(() => decodeMessage(Buffer.concat([buf, Buffer.from([0])]))).toThrow(/trailing/);
    const bad = Buffer.from(buf);
    bad[0] = 200;
    expect(() => decodeMessage(bad)).toThrow(/unknown message type/);
    expect(() => encodeMessage({ ...m, term: -1 })).toThrow(CodecError);
    expect(() => encodeMessage({ ...m, index: 1.5 })).toThrow(CodecError);
    expect(() => encodeMessage({ ...m, to: 1n << 64n })).toThrow(CodecError);
    expect(() => new FrameDecoder(16).push(Buffer.from([0, 0, 1, 0, 1]))).toThrow(/frame length/);
  });

  it('type codes are unique and stable', () => {
    const codes = Object.values(MESSAGE_TYPE_CODES);
    expect(new Set(codes).size).toBe(codes.length);
    expect(MESSAGE_TYPE_CODES[MessageType.MsgApp]).toBe(7);
    expect(MESSAGE_TYPE_CODES[MessageType.MsgHeartbeat]).toBe(14);
  });
});
