// Minimal binary writer/reader for snapshots: LEB128 unsigned varints (safe integers), signed int64 bigints,
// length-prefixed bytes. No JSON.
import { Errors } from '@nestcd/errors';

export class Writer {
  private buf: Buffer;
  private pos = 0;
  constructor(initial = 1 << 16) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  uint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`uint out of range: ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }
  i64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigInt64BE(v, this.pos);
    this.pos += 8;
  }
  bytes(b: Buffer): void {
    this.uint(b.length);
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
  raw(b: Buffer): void {
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
  /** Forgets what was written: the buffer is written again from its start (its size is kept). */
  rewind(): void {
    this.pos = 0;
  }
  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }
  /** The bytes written so far, not copied (later writes may move them to a new buffer). */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
  /** The bytes written; copied out only when most of the buffer would be wasted (big snapshots skip the copy). */
  finish(): Buffer {
    const used = this.buf.subarray(0, this.pos);
    return this.pos * 2 >= this.buf.length ? used : Buffer.from(used);
  }
}

const corrupt = () => Errors.invalidArgument('nestcd: mvcc: corrupt snapshot');

export class Reader {
  private pos = 0;
  /**
   * `copyBytes` false: bytes() returns views into `buf` instead of copies, for buffers whose contents are used only
   * while they are read (a command being applied: the store copies what it keeps).
   */
  constructor(
    private readonly buf: Buffer,
    private readonly copyBytes = true,
  ) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  /** True if every byte left is zero (padding). */
  get onlyZerosLeft(): boolean {
    for (let i = this.pos; i < this.buf.length; i++) if (this.buf[i] !== 0) return false;
    return true;
  }
  /** The bytes not read yet, not copied. */
  rest(): Buffer {
    const b = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return b;
  }
  uint(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.buf.length) throw corrupt();
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) break;
      mul *= 0x80;
      if (mul > 2 ** 56) throw corrupt();
    }
    return v;
  }
  i64(): bigint {
    if (this.pos + 8 > this.buf.length) throw corrupt();
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v === 0n ? 0n : v; // the literal: a zero kept by the store (a key's lease) is not a new heap object each time
  }
  bytes(): Buffer {
    const n = this.uint();
    if (this.pos + n > this.buf.length) throw corrupt();
    const view = this.buf.subarray(this.pos, this.pos + n);
    const b = this.copyBytes ? Buffer.from(view) : view; // a copy does not pin a snapshot's buffer
    this.pos += n;
    return b;
  }
  raw(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw corrupt();
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

export { corrupt as corruptSnapshot };
