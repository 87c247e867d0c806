/**
 * Where the store keeps the bytes it holds on to (keys and values): small ones packed into chunks of its own.
 *
 * Buffer.from() puts small copies in Node's shared 8 KiB pool, beside the short-lived buffers of everything else
 * the process does (frames, WAL records, answers). One kept value then pins a whole pool slab: on a follower,
 * 22,000 puts of 256 B held 62 MB of slabs, about 3 KB per put. Chunks that only the store writes hold kept bytes
 * densely, so they cost what they hold, and a chunk is freed once every key and value in it is gone (compaction).
 *
 * A value can be kept as a span (keep()): its chunk and a number, rather than a Buffer view of its own. A view is
 * a heap object of about 100 bytes that the major GC marks on every cycle; a store with a deep history holds one
 * value per revision, so views would double its heap objects.
 */
export class ByteArena {
  private chunk: Buffer;
  private used = 0;
  /** the chunk the last keep() copied into (the copy itself when it got memory of its own) */
  held: Buffer = EMPTY;

  /**
   * @param chunkBytes size of each chunk: the worst case, one surviving value pinning a chunk, is no worse than
   * a pool slab's at 8 KiB. At most 32 KiB, so a span stays a small integer.
   */
  constructor(private readonly chunkBytes = 8192) {
    if (chunkBytes > MAX_CHUNK) throw new RangeError(`arena chunks are at most ${MAX_CHUNK} bytes`);
    this.chunk = Buffer.allocUnsafeSlow(chunkBytes);
  }

  /** A copy of `src` that shares no memory with it. */
  copy(src: Uint8Array): Buffer {
    const span = this.keep(src);
    return spanView(this.held, span);
  }

  /** The bytes of a latin1 string (one byte per char, as the store's keys are kept). */
  copyLatin1(s: string): Buffer {
    const n = s.length;
    if (n === 0) return EMPTY;
    const span = this.take(n);
    const out = spanView(this.held, span);
    out.write(s, 0, n, 'latin1');
    return out;
  }

  /** Copies `src` in and returns its span in `held` (read it back with spanView). */
  keep(src: Uint8Array): number {
    if (src.length === 0) {
      this.held = EMPTY;
      return 0;
    }
    const span = this.take(src.length);
    if (span === WHOLE) this.held.set(src);
    else this.held.set(src, span >>> SPAN_SHIFT);
    return span;
  }

  private take(n: number): number {
    // a big one gets its own memory: packing it would waste up to its size at a chunk's end
    if (n > this.chunkBytes >>> 2) {
      this.held = Buffer.allocUnsafeSlow(n);
      return WHOLE;
    }
    if (this.used + n > this.chunkBytes) {
      this.chunk = Buffer.allocUnsafeSlow(this.chunkBytes);
      this.used = 0;
    }
    const span = this.used * SPAN_SCALE + n;
    this.used += n;
    this.held = this.chunk;
    return span;
  }
}

const MAX_CHUNK = 32768;
/** a span is offset << SPAN_SHIFT | length within a chunk (a kept length is at most a quarter chunk), or WHOLE */
const SPAN_SHIFT = 16;
const SPAN_SCALE = 1 << SPAN_SHIFT;
/** the span of a copy that has its memory to itself */
const WHOLE = -1;
const EMPTY = Buffer.alloc(0);

/** The bytes at `span` of `chunk` (a new view each call; the empty value's is shared). */
export function spanView(chunk: Buffer, span: number): Buffer {
  if (span === WHOLE) return chunk;
  const length = span & (SPAN_SCALE - 1);
  if (length === 0) return EMPTY;
  const offset = span >>> SPAN_SHIFT;
  return chunk.subarray(offset, offset + length);
}

/** The length of the bytes at `span` of `chunk`. */
export function spanLength(chunk: Buffer, span: number): number {
  return span === WHOLE ? chunk.length : span & (SPAN_SCALE - 1);
}
