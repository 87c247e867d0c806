import { CompactedError, UnavailableError, invariant } from './errors';
import { Storage, limitSize } from './storage';
import { Entry, Snapshot } from './types';

/**
 * Entries (and possibly an incoming snapshot) not yet persisted by the application.
 * entries[k] has index offset + k.
 */
export class UnstableLog {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  constructor(public offset: number) {}

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset].term;
  }

  /** Entries up to (i, t) were persisted: drop them (unless they were replaced meanwhile). */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.offset = i + 1;
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      for (let k = 0; k < ents.length; k++) this.entries.push(ents[k]);
    } else if (after <= this.offset) {
      // Replace everything unstable; storage will be overwritten from `after` when persisted.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      const kept = this.entries.slice(0, after - this.offset);
      for (let k = 0; k < ents.length; k++) kept.push(ents[k]);
      this.entries = kept;
    }
  }

  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

/** The raft log: stable storage plus the unstable tail, with commit and applied cursors. */
export class RaftLog {
  readonly unstable: UnstableLog;
  committed: number;
  applied: number;

  constructor(
    readonly storage: Storage,
    private readonly maxNextEntsSize: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new UnstableLog(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  /**
   * Follower side of MsgApp: if our log matches (index, logTerm), append `ents` (truncating a conflicting suffix)
   * and advance commit. Returns the last index of the new entries, or undefined on mismatch.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(ci > this.committed, `entry ${ci} conflict with committed entry [committed(${this.committed})]`);
      this.append(ci === index + 1 ? ents : ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    invariant(after >= this.committed, `after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** First index whose term differs from ours (or that we lack); 0 if all match. */
  findConflict(ents: Entry[]): number {
    // Fast path: most appends extend the log, so start checking at the first entry past our last index.
    for (let k = 0; k < ents.length; k++) {
      const e = ents[k];
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Largest index <= `index` whose term is <= `term` (or the first unavailable index). Used for the
   * conflict hint: every entry in (result, index] has a term > `term`, so it cannot match the other log.
   */
  findConflictByTerm(index: number, term: number): number {
    for (; index > 0; index--) {
      const t = this.termOrUndefined(index);
      if (t === undefined || t <= term) break;
    }
    return index;
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  /** Committed entries ready to apply. */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, this.maxNextEntsSize);
    return [];
  }

  hasNextEnts(): boolean {
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex());
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  commitTo(toCommit: number): void {
    if (this.committed < toCommit) {
      invariant(this.lastIndex() >= toCommit, `tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]`);
      this.committed = toCommit;
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    invariant(this.committed >= i && i >= this.applied, `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  lastTerm(): number {
    return this.termOrUndefined(this.lastIndex()) ?? 0;
  }

  /** Term of entry i; throws CompactedError below the first index - 1; returns 0 beyond the last index. */
  term(i: number): number {
    const dummy = this.firstIndex() - 1;
    if (i < dummy) throw new CompactedError();
    if (i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  termOrUndefined(i: number): number | undefined {
    try {
      return this.term(i);
    } catch (e) {
      if (e instanceof CompactedError || e instanceof UnavailableError) return undefined;
      throw e;
    }
  }

  /** Is a candidate's log (lastIndex, lastTerm) at least as up to date as ours? (§5.4.1) */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    return this.termOrUndefined(i) === term;
  }

  /** Commit maxIndex only if that entry is from `term` (the leader's current term): never count older terms. */
  maybeCommit(maxIndex: number, term: number, anyTerm = false): boolean {
    if (maxIndex > this.committed && (anyTerm || this.termOrUndefined(maxIndex) === term)) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi) limited to maxSize bytes. Throws CompactedError if lo is compacted. */
  slice(lo: number, hi: number, maxSize: number): Entry[] {
    this.checkOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const uOff = this.unstable.offset;
    if (lo < uOff) {
      const stored = this.storage.entries(lo, Math.min(hi, uOff), maxSize);
      // Storage returned fewer entries than asked: the size limit hit, stop here.
      if (stored.length < Math.min(hi, uOff) - lo) return stored;
      ents = stored;
    }
    if (hi > uOff) {
      const u = this.unstable.slice(Math.max(lo, uOff), hi);
      if (ents.length > 0) {
        const combined = ents.slice();
        for (let k = 0; k < u.length; k++) combined.push(u[k]);
        ents = combined;
      } else {
        ents = u;
      }
    }
    return limitSize(ents, maxSize);
  }

  /** Entries from i to the end, limited to maxSize. */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  private checkOutOfBounds(lo: number, hi: number): void {
    invariant(lo <= hi, `invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new CompactedError();
    const length = this.lastIndex() + 1 - fi;
    invariant(hi <= fi + length, `slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}
