import { CompactedError, SnapOutOfDateError, UnavailableError, invariant } from './errors';
import { ConfState, Entry, EntryType, HardState, Snapshot, emptyHardState, emptySnapshot, entrySize } from './types';

/**
 * Stable storage as raft reads it. Writes happen in the application (it persists each Ready); raft only reads.
 * Methods throw CompactedError / UnavailableError like etcd's storage returns ErrCompacted / ErrUnavailable.
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), total size limited by maxSize (at least one entry is returned if any). */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** Term of entry i, valid for firstIndex()-1 <= i <= lastIndex(). */
  term(i: number): number;
  lastIndex(): number;
  firstIndex(): number;
  /** Most recent snapshot; may throw SnapshotTemporarilyUnavailableError. */
  snapshot(): Snapshot;
}

/** Trim `ents` (in place semantics: returns a prefix) so that its total size is <= maxSize, keeping at least one. */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length <= 1 || maxSize === Infinity) return ents;
  let size = entrySize(ents[0]);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n]);
    if (size > maxSize) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/** Arena chunk size: entry bytes are copied into chunks this big (a bigger entry gets a chunk of its own). */
const ARENA_CHUNK = 1 << 20;
const NO_DATA: Uint8Array = Buffer.alloc(0);

/**
 * In-memory Storage. The server keeps one next to its WAL: on restart it replays the WAL into it
 * (applySnapshot, setHardState, append); while running it appends every Ready to both.
 *
 * The log is kept without an object per entry: terms and types in number arrays, entry bytes copied into
 * append-only arena chunks, Entry objects made on demand. A long log (up to --snapshot-count entries) then
 * costs the garbage collector a few arrays and chunks to trace, not hundreds of thousands of objects.
 * Arena bytes are never overwritten (a truncated suffix just leaves a gap): views handed out stay valid.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = emptyHardState();
  private snap: Snapshot = emptySnapshot();
  /** index and term of the entry before the first one held (the last compacted one, or the snapshot's) */
  private baseIndex = 0;
  private baseTerm = 0;
  // entry baseIndex + 1 + k: terms[k], types[k], bytes chunks[chunkOf[k] - firstChunk][offs[k], offs[k] + lens[k])
  private terms: number[] = [];
  private types: number[] = [];
  private chunkOf: number[] = [];
  private offs: number[] = [];
  private lens: number[] = [];
  /** live chunks; chunks[0] is chunk number firstChunk (numbers only grow, so chunkOf stays valid) */
  private chunks: Buffer[] = [];
  private firstChunk = 0;
  private tail = 0;

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  hardStateSnapshot(): HardState {
    return { ...this.hardState };
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    if (lo <= this.baseIndex) throw new CompactedError();
    invariant(hi <= this.lastIndex() + 1, `entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    if (this.terms.length === 0) throw new UnavailableError();
    // limitSize's rule: the first entry always, then more while the total stays within maxSize
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entryAt(i - this.baseIndex - 1);
      size += entrySize(e);
      if (out.length > 0 && size > maxSize) break;
      out.push(e);
    }
    return out;
  }

  term(i: number): number {
    const k = i - this.baseIndex;
    if (k < 0) throw new CompactedError();
    if (k > this.terms.length) throw new UnavailableError();
    return k === 0 ? this.baseTerm : this.terms[k - 1];
  }

  lastIndex(): number {
    return this.baseIndex + this.terms.length;
  }

  firstIndex(): number {
    return this.baseIndex + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replace the whole contents with a snapshot (a follower installing one from the leader, or a restart). */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw new SnapOutOfDateError();
    this.snap = snap;
    this.baseIndex = snap.metadata.index;
    this.baseTerm = snap.metadata.term;
    this.keepFrom(this.terms.length);
  }

  /** Record a snapshot of the applied state at index i (<= applied). Call compact() afterwards to free the log. */
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapOutOfDateError();
    invariant(i <= this.lastIndex(), `snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = { data, metadata: { index: i, term: this.term(i), confState } };
    return this.snap;
  }

  /** Discard entries up to and including compactIndex (its term is kept). compactIndex must be <= applied. */
  compact(compactIndex: number): void {
    if (compactIndex <= this.baseIndex) throw new CompactedError();
    invariant(compactIndex <= this.lastIndex(), `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const k = compactIndex - this.baseIndex;
    this.baseTerm = this.terms[k - 1];
    this.baseIndex = compactIndex;
    this.keepFrom(k);
  }

  /** Append (or overwrite a conflicting suffix with) new entries. Entries must be contiguous. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return; // all already compacted
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const at = entries[0].index - first;
    if (this.terms.length > at) this.truncate(at); // conflicting suffix
    invariant(this.terms.length === at, `missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`);
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j];
      const len = e.data.byteLength;
      if (this.chunks.length === 0 || this.tail + len > this.chunks[this.chunks.length - 1].length) {
        this.chunks.push(Buffer.allocUnsafeSlow(Math.max(ARENA_CHUNK, len)));
        this.tail = 0;
      }
      const chunk = this.chunks[this.chunks.length - 1];
      chunk.set(e.data, this.tail);
      this.terms.push(e.term);
      this.types.push(e.type);
      this.chunkOf.push(this.firstChunk + this.chunks.length - 1);
      this.offs.push(this.tail);
      this.lens.push(len);
      this.tail += len;
    }
  }

  private entryAt(k: number): Entry {
    const len = this.lens[k];
    const data = len === 0 ? NO_DATA : this.chunks[this.chunkOf[k] - this.firstChunk].subarray(this.offs[k], this.offs[k] + len);
    return { term: this.terms[k], index: this.baseIndex + 1 + k, type: this.types[k], data };
  }

  /** drop the first k held entries and the chunks no remaining entry uses (the newest chunk stays for appends) */
  private keepFrom(k: number): void {
    this.terms = this.terms.slice(k);
    this.types = this.types.slice(k);
    this.chunkOf = this.chunkOf.slice(k);
    this.offs = this.offs.slice(k);
    this.lens = this.lens.slice(k);
    const lastChunk = this.firstChunk + this.chunks.length - 1;
    const need = this.chunkOf.length > 0 ? this.chunkOf[0] : lastChunk;
    if (need > this.firstChunk) {
      this.chunks.splice(0, need - this.firstChunk);
      this.firstChunk = need;
    }
  }

  private truncate(n: number): void {
    this.terms.length = n;
    this.types.length = n;
    this.chunkOf.length = n;
    this.offs.length = n;
    this.lens.length = n;
  }
}
