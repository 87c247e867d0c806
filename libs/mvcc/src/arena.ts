/**
 * Where the store keeps the bytes it holds on to (keys and values): small ones packed into chunks of its own.
 *
 * Buffer.from() puts small copies in Node's shared 8 KiB pool, beside the short-lived buffers of everything else
 * the process does (frames, WAL records, answers). One kept value then pins a whole pool slab: on a follower,
 * 22,000 puts of 256 B held 62 MB of slabs, about 3 KB per put. Chunks that only the store writes hold kept bytes
 * densely, so they cost what they hold, and a chunk is freed once every key and value in it is gone (compaction).
 */
export class ByteArena {
  private chunk: Buffer;
  private used = 0;

  /**
   * @param chunkBytes size of each chunk: the worst case, one surviving value pinning a chunk, is no worse than
   * a pool slab's at 8 KiB.
   */
  constructor(private readonly chunkBytes = 8192) {
    this.chunk = Buffer.allocUnsafeSlow(chunkBytes);
  }

  /** A copy of `src` that shares no memory with it. */
  copy(src: Uint8Array): Buffer {
    const out = this.take(src.length);
    out.set(src);
    return out;
  }

  /** The bytes of a latin1 string (one byte per char, as the store's keys are kept). */
  copyLatin1(s: string): Buffer {
    const out = this.take(s.length);
    out.write(s, 0, s.length, 'latin1');
    return out;
  }

  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    // a big one gets its own memory: packing it would waste up to its size at a chunk's end
    if (n > this.chunkBytes >>> 2) return Buffer.allocUnsafeSlow(n);
    if (this.used + n > this.chunkBytes) {
      this.chunk = Buffer.allocUnsafeSlow(this.chunkBytes);
      this.used = 0;
    }
    const out = this.chunk.subarray(this.used, this.used + n);
    this.used += n;
    return out;
  }
}

const EMPTY = Buffer.alloc(0);
