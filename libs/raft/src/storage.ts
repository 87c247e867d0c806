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

/**
 * In-memory Storage. The server keeps one next to its WAL: on restart it replays the WAL into it
 * (applySnapshot, setHardState, append); while running it appends every Ready to both.
 * ents[0] is a dummy entry holding the snapshot's index and term.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = emptyHardState();
  private snap: Snapshot = emptySnapshot();
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  hardStateSnapshot(): HardState {
    return { ...this.hardState };
  }

  private get offset(): number {
    return this.ents[0].index;
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.offset;
    if (lo <= offset) throw new CompactedError();
    invariant(hi <= this.lastIndex() + 1, `entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    if (this.ents.length === 1) throw new UnavailableError();
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.offset;
    if (i < offset) throw new CompactedError();
    if (i - offset >= this.ents.length) throw new UnavailableError();
    return this.ents[i - offset].term;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replace the whole contents with a snapshot (a follower installing one from the leader, or a restart). */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw new SnapOutOfDateError();
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Record a snapshot of the applied state at index i (<= applied). Call compact() afterwards to free the log. */
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapOutOfDateError();
    invariant(i <= this.lastIndex(), `snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = { data, metadata: { index: i, term: this.ents[i - this.offset].term, confState } };
    return this.snap;
  }

  /** Discard entries up to and including compactIndex (keep it as the dummy). compactIndex must be <= applied. */
  compact(compactIndex: number): void {
    const offset = this.offset;
    if (compactIndex <= offset) throw new CompactedError();
    invariant(compactIndex <= this.lastIndex(), `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const dummy: Entry = { term: this.ents[i].term, index: this.ents[i].index, type: EntryType.Normal, data: new Uint8Array(0) };
    const rest = this.ents.slice(i + 1);
    rest.unshift(dummy);
    this.ents = rest;
  }

  /** Append (or overwrite a conflicting suffix with) new entries. Entries must be contiguous. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return; // all already compacted
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const offset = entries[0].index - this.offset;
    if (this.ents.length > offset) this.ents.length = offset; // truncate conflicting suffix
    invariant(this.ents.length === offset, `missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`);
    for (let k = 0; k < entries.length; k++) this.ents.push(entries[k]);
  }
}
