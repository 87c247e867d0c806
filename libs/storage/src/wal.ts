import * as path from 'node:path';
import { Entry, HardState, emptyHardState } from '@nestcd/raft';
import {
  WalClosedError,
  WalCorruptionError,
  WalExistsError,
  WalFailedError,
  WalNotFoundError,
  WalSnapshotMismatchError,
} from './errors';
import { FileHandle, FileSystem, defaultFileSystem, errnoCode, readWholeFile, writeFully, writeFullyNow } from './fs';
import { DirLock } from './lock';
import { RecordType, SnapshotMarker, WalMetadata, WalRecord, encodeFrames, frameSize, scanSegment } from './wal-record';

export type { SnapshotMarker, WalMetadata } from './wal-record';

export const DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024;
/** Batches up to this size are written on the event loop's thread (see writeBatch); bigger ones via the pool. */
export const WRITE_NOW_MAX_BYTES = 256 * 1024;

export interface WalOptions {
  /** All file access goes through this (default: node:fs). */
  fs?: FileSystem;
  /** Preallocated size of each segment file (default 64 MiB). A batch larger than this still fits: the file grows. */
  segmentSize?: number;
  /** Receives notable events: torn tail cut off, segment rollover, purges, failures. */
  log?: (msg: string) => void;
  /** Open only: replay from this snapshot (entries <= its index are skipped; older segments are not read). */
  fromSnapshot?: SnapshotMarker;
  /** Take the directory's lock file (default true). See lock.ts. */
  lock?: boolean;
  /** Told the duration in seconds of each fdatasync of a segment that succeeded (etcd's wal_fsync_duration metric). */
  onSync?: (seconds: number) => void;
}

export interface WalOpenResult {
  wal: Wal;
  metadata: WalMetadata & { data: Buffer };
  hardState: HardState;
  /** Entries after the snapshot (fromSnapshot, or else the newest marker in the WAL), contiguous. */
  entries: Entry[];
  /** The newest snapshot marker found in the replayed segments. */
  snapshot?: SnapshotMarker;
}

interface Segment {
  seq: number;
  /** Index of the first entry appended to this segment (the last index written before it, plus one). */
  index: number;
  path: string;
}

/** How a save() may be written. */
export interface SaveOptions {
  /**
   * The caller has nothing else to do until this save is durable: a small batch is then fdatasynced on this thread
   * instead of the thread pool. That spares the hand-off to a pool thread and the wake-up back, two scheduling
   * delays per write on a busy machine (11-15% more puts/s for one client on a lone member, see RaftMember). The
   * event loop waits for the disk meanwhile, so busier callers leave it unset.
   */
  syncHere?: boolean;
}

interface Pending {
  hardState?: HardState;
  entries: Entry[];
  marker?: SnapshotMarker;
  syncHere?: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

const hex16 = (n: number): string => n.toString(16).padStart(16, '0');

/** `%016x-%016x.wal` (sequence, first index), like etcd. */
export function segmentName(seq: number, index: number): string {
  return `${hex16(seq)}-${hex16(index)}.wal`;
}

export function parseSegmentName(name: string): { seq: number; index: number } | undefined {
  const m = SEGMENT_RE.exec(name);
  return m ? { seq: parseInt(m[1], 16), index: parseInt(m[2], 16) } : undefined;
}

async function listSegments(fs: FileSystem, dir: string): Promise<Segment[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
  const segs: Segment[] = [];
  for (const name of names) {
    const p = parseSegmentName(name);
    if (p) segs.push({ ...p, path: path.join(dir, name) });
  }
  return segs.sort((a, b) => a.seq - b.seq);
}

/** Writes a new segment durably: `<name>.tmp` with the header records, preallocate, fdatasync, rename, fsync dir. */
async function createSegmentFile(fs: FileSystem, seg: Segment, header: Buffer, size: number): Promise<FileHandle> {
  const tmp = `${seg.path}.tmp`;
  const fh = await fs.open(tmp, 'w', 0o600);
  try {
    await writeFully(fh, header, 0);
    if (size > header.length) await fh.truncate(size);
    await fh.datasync();
    await fs.rename(tmp, seg.path);
    await fs.fsyncDir(path.dirname(seg.path));
    return fh;
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

interface ReplayVisitor {
  (rec: WalRecord, seg: Segment, offset: number): void;
}

/**
 * Reads segments[from..] in order, verifying the crc chain; calls `visit` for each record.
 * A torn tail is only accepted in the last segment. Returns the position after the last good record.
 */
async function replaySegments(
  fs: FileSystem,
  segments: Segment[],
  from: number,
  visit: ReplayVisitor,
  entryDataFrom = 0,
): Promise<{ tail: number; crc: number; torn?: { offset: number; reason: string; fileSize: number }; lastHeaderEnd: number }> {
  let crc: number | undefined;
  let tail = 0;
  let lastHeaderEnd = 0;
  let torn: { offset: number; reason: string; fileSize: number } | undefined;
  // Segments are read one after another into the same memory: nothing decoded keeps a view of it (entry data and
  // metadata are copied out).
  let scratch: Buffer | undefined;
  for (let i = from; i < segments.length; i++) {
    const seg = segments[i];
    if (i > from && seg.seq !== segments[i - 1].seq + 1) {
      throw new WalCorruptionError(seg.path, 0, `segment sequence ${segments[i - 1].seq + 1} is missing`);
    }
    const buf = await readWholeFile(fs, seg.path, scratch);
    if (!scratch || buf.buffer !== scratch.buffer) scratch = buf;
    let nrec = 0;
    let headerEnd = 0;
    const scan = scanSegment(buf, crc, (rec, offset, end) => {
      if (nrec++ < 2) headerEnd = end; // CRC + metadata records open every segment
      try {
        visit(rec, seg, offset);
      } catch (e) {
        if (e instanceof WalCorruptionError || e instanceof WalSnapshotMismatchError) throw e;
        throw new WalCorruptionError(seg.path, offset, (e as Error).message);
      }
    }, entryDataFrom);
    const last = i === segments.length - 1;
    const r = scan.result;
    if (r.kind === 'corrupt' || (r.kind === 'torn' && !last)) {
      throw new WalCorruptionError(seg.path, r.offset, r.kind === 'torn' ? `${r.reason} (in a segment that is not the last)` : r.reason);
    }
    if (nrec === 0) throw new WalCorruptionError(seg.path, 0, 'segment holds no valid records');
    if (r.kind === 'torn') torn = { offset: r.offset, reason: r.reason, fileSize: buf.length };
    crc = scan.crc;
    tail = r.offset;
    lastHeaderEnd = headerEnd;
  }
  return { tail, crc: crc ?? 0, torn, lastHeaderEnd };
}

/**
 * The write-ahead log. See wal-record.ts for the record format and the torn/corrupt rule.
 *
 * Durability contract: a save()/saveSnapshot() promise resolves only after its records were written and
 * fdatasynced. Calls made while a batch is being written join the next batch (group commit: one write and one
 * fdatasync per batch). A batch that only moves the commit index (no entries, same term and vote) is written but
 * not fdatasynced, as etcd's raft.MustSync decides: a lost commit index is re-learned from the log after a crash,
 * while entries, term and vote are promises to other members and must be on disk before anyone hears of them. Any write/fdatasync error fails the Wal permanently (WalFailedError for the failed batch,
 * everything queued and everything later): after a failed fdatasync the kernel may have dropped the dirty pages, so
 * retrying could acknowledge data that is not on disk (PostgreSQL's "fsyncgate"). Restart (Wal.open) to go on.
 */
export class Wal {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private failed: WalFailedError | undefined;
  private closed = false;
  private releasedTo = 0;
  private purging: Promise<void> = Promise.resolve();
  private readonly segmentSize: number;
  private readonly log: (msg: string) => void;
  private readonly onSync: ((seconds: number) => void) | undefined;

  private constructor(
    readonly dir: string,
    private readonly fs: FileSystem,
    opts: WalOptions,
    private readonly segments: Segment[],
    private fh: FileHandle,
    private tail: number,
    private headerEnd: number,
    private crc: number,
    private readonly metadata: WalMetadata,
    private hardState: HardState,
    private lastIndex: number,
    private readonly lock: DirLock | undefined,
  ) {
    this.segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    this.log = opts.log ?? (() => undefined);
    this.onSync = opts.onSync;
  }

  /** True if `dir` holds at least one WAL segment. */
  static async exists(dir: string, fs: FileSystem = defaultFileSystem): Promise<boolean> {
    return (await listSegments(fs, dir)).length > 0;
  }

  /** Creates a new WAL in `dir` (created with mode 0700 if missing). Refuses a directory that already has one. */
  static async create(dir: string, metadata: WalMetadata, opts: WalOptions = {}): Promise<Wal> {
    const fs = opts.fs ?? defaultFileSystem;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = opts.lock === false ? undefined : await DirLock.acquire(fs, dir);
    try {
      if (await Wal.exists(dir, fs)) throw new WalExistsError(dir);
      await removeTmpFiles(fs, dir);
      const seg: Segment = { seq: 0, index: 0, path: path.join(dir, segmentName(0, 0)) };
      const header: WalRecord[] = [
        { type: RecordType.Crc, crc: 0 },
        { type: RecordType.Metadata, metadata: { data: new Uint8Array(0), ...metadata } },
      ];
      const { buf: headerBuf, crc: hcrc } = encodeFrames(header, 0);
      const { buf: markerBuf, crc } = encodeFrames([{ type: RecordType.Snapshot, snapshot: { index: 0, term: 0 } }], hcrc);
      const segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
      const fh = await createSegmentFile(fs, seg, Buffer.concat([headerBuf, markerBuf]), segmentSize);
      await fs.fsyncDir(path.dirname(path.resolve(dir))).catch(() => undefined);
      opts.log?.(`wal: created ${seg.path}`);
      return new Wal(dir, fs, opts, [seg], fh, headerBuf.length + markerBuf.length, headerBuf.length, crc, metadata, emptyHardState(), -1, lock);
    } catch (e) {
      await lock?.release();
      throw e;
    }
  }

  /**
   * Opens an existing WAL and replays it (see WalOpenResult). A torn tail of the last segment is cut off (and
   * reported through opts.log); any other damage throws WalCorruptionError naming the file and byte offset.
   */
  static async open(dir: string, opts: WalOptions = {}): Promise<WalOpenResult> {
    const fs = opts.fs ?? defaultFileSystem;
    const log = opts.log ?? (() => undefined);
    if ((await listSegments(fs, dir)).length === 0) throw new WalNotFoundError(dir);
    const lock = opts.lock === false ? undefined : await DirLock.acquire(fs, dir);
    try {
      const segments = await listSegments(fs, dir);
      if (segments.length === 0) throw new WalNotFoundError(dir);
      await removeTmpFiles(fs, dir);
      const snap = opts.fromSnapshot;
      let from = 0;
      if (snap) {
        from = -1;
        for (let i = 0; i < segments.length; i++) if (segments[i].index <= snap.index + 1) from = i;
        if (from < 0) {
          throw new WalSnapshotMismatchError(
            `WAL in ${dir} does not reach back to snapshot index ${snap.index}: its oldest segment ${path.basename(segments[0].path)} starts at index ${segments[0].index}`,
          );
        }
      }

      let metadata: Required<WalMetadata> | undefined;
      let hardState = emptyHardState();
      let entries: Entry[] = [];
      let base = snap?.index ?? 0;
      let baseKnown = snap !== undefined;
      let newestMarker: SnapshotMarker | undefined;
      let lastIndex = -1;
      let snapFound = snap === undefined || snap.index === 0;

      const rep = await replaySegments(fs, segments, from, (rec, seg, offset) => {
        switch (rec.type) {
          case RecordType.Metadata:
            if (metadata && (metadata.memberId !== rec.metadata.memberId || metadata.clusterId !== rec.metadata.clusterId)) {
              throw new WalCorruptionError(seg.path, offset, 'metadata record conflicts with an earlier one');
            }
            metadata = rec.metadata;
            return;
          case RecordType.HardState:
            hardState = rec.hardState;
            return;
          case RecordType.Snapshot: {
            const m = rec.snapshot;
            lastIndex = Math.max(lastIndex, m.index);
            if (!newestMarker || m.index >= newestMarker.index) newestMarker = m;
            if (snap) {
              if (m.index === snap.index) {
                if (m.term !== snap.term) {
                  throw new WalSnapshotMismatchError(`WAL snapshot marker at index ${m.index} has term ${m.term}, the snapshot has term ${snap.term}`);
                }
                snapFound = true;
              }
            } else if (m.index >= base) {
              base = m.index;
              baseKnown = true;
              const keep = entries.findIndex((e) => e.index > base);
              entries = keep < 0 ? [] : entries.slice(keep);
            }
            return;
          }
          case RecordType.Entry: {
            const e = rec.entry;
            lastIndex = e.index;
            if (e.index <= base) {
              // Raft truncation: an entry at index i replaces everything from i on.
              entries = [];
              return;
            }
            if (entries.length === 0) {
              entries.push(e);
              return;
            }
            const first = entries[0].index;
            const last = entries[entries.length - 1].index;
            if (e.index === last + 1) entries.push(e);
            else if (e.index <= last) {
              entries.length = Math.max(0, e.index - first);
              entries.push(e);
            } else {
              throw new WalCorruptionError(seg.path, offset, `entry index ${e.index} follows index ${last}: entries are missing`);
            }
            return;
          }
          case RecordType.Crc:
            return;
        }
      }, snap ? snap.index + 1 : 0); // entries the snapshot holds are read (and checked) but not copied

      if (!metadata) throw new WalCorruptionError(segments[from].path, 0, 'no metadata record');
      if (!snapFound) log(`wal: no snapshot marker for index ${snap!.index} in ${dir}; replaying entries after it anyway`);
      if (baseKnown && entries.length > 0 && entries[0].index !== base + 1) {
        throw new WalSnapshotMismatchError(
          `WAL in ${dir} has entries from index ${entries[0].index}, but the snapshot is at index ${base}: entries ${base + 1}..${entries[0].index - 1} are missing`,
        );
      }

      const lastSeg = segments[segments.length - 1];
      if (lastIndex < 0) lastIndex = lastSeg.index - 1;
      const segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
      const fh = await fs.open(lastSeg.path, 'r+');
      try {
        if (rep.torn) {
          log(
            `wal: cut off a torn tail in ${lastSeg.path} at byte offset ${rep.torn.offset} (${rep.torn.reason}); ` +
              `${rep.torn.fileSize - rep.torn.offset} bytes after it discarded`,
          );
          await fh.truncate(rep.tail);
          await fh.truncate(Math.max(segmentSize, rep.tail));
          await fh.datasync();
        } else if ((await fh.stat()).size < segmentSize) {
          await fh.truncate(segmentSize);
          await fh.datasync();
        }
      } catch (e) {
        await fh.close().catch(() => undefined);
        throw e;
      }
      const wal = new Wal(dir, fs, opts, segments, fh, rep.tail, rep.lastHeaderEnd, rep.crc, metadata, hardState, lastIndex, lock);
      const md = { memberId: metadata.memberId, clusterId: metadata.clusterId, data: Buffer.from(metadata.data) };
      return { wal, metadata: md, hardState, entries, snapshot: newestMarker };
    } catch (e) {
      await lock?.release();
      throw e;
    }
  }

  /**
   * Reads every snapshot marker in the WAL (no lock taken, nothing modified) and the last hard state, so the
   * server can pick the newest snapshot file that the WAL knows of (etcd's ValidSnapshotEntries).
   */
  static async readSnapshotMarkers(dir: string, opts: Pick<WalOptions, 'fs'> = {}): Promise<{ markers: SnapshotMarker[]; hardState: HardState }> {
    const fs = opts.fs ?? defaultFileSystem;
    const segments = await listSegments(fs, dir);
    if (segments.length === 0) throw new WalNotFoundError(dir);
    const markers: SnapshotMarker[] = [];
    let hardState = emptyHardState();
    await replaySegments(fs, segments, 0, (rec) => {
      if (rec.type === RecordType.Snapshot) markers.push(rec.snapshot);
      else if (rec.type === RecordType.HardState) hardState = rec.hardState;
    }, Infinity); // every record is checked, but no entry data is copied

    return { markers, hardState };
  }

  /** Appends entries (then the hard state, if given). Resolves once durable (a commit-only change: once written); see the class comment. */
  save(hardState: HardState | undefined, entries: Entry[], opts?: SaveOptions): Promise<void> {
    return this.enqueue({ hardState, entries, syncHere: opts?.syncHere });
  }

  /** Appends a snapshot marker. Resolves once durable. */
  saveSnapshot(marker: SnapshotMarker): Promise<void> {
    return this.enqueue({ entries: [], marker: { index: marker.index, term: marker.term } });
  }

  /** Marks segments all of whose entries are < index as deletable by purge(). */
  releaseLockTo(index: number): void {
    this.releasedTo = Math.max(this.releasedTo, index);
  }

  /**
   * releaseLockTo(index), then deletes the oldest segments all of whose entries are < index while more than
   * `maxWals` segments exist (etcd's --max-wals; 0 = unlimited: nothing is deleted). The current segment is never
   * deleted.
   */
  purge(index: number, maxWals: number): Promise<void> {
    this.releaseLockTo(index);
    const run = async (): Promise<void> => {
      if (maxWals <= 0 || this.closed) return;
      let removed = 0;
      while (this.segments.length > maxWals && this.segments.length > 1 && this.segments[1].index <= this.releasedTo) {
        const seg = this.segments[0];
        await this.fs.unlink(seg.path);
        if (this.segments[0] === seg) this.segments.shift();
        removed++;
        this.log(`wal: purged ${seg.path}`);
      }
      if (removed > 0) await this.fs.fsyncDir(this.dir);
    };
    this.purging = this.purging.then(run, run);
    return this.purging;
  }

  /** Segment file paths, oldest first (diagnostics and tests). */
  segmentPaths(): string[] {
    return this.segments.map((s) => s.path);
  }

  /** Whether the Wal has failed (and why). */
  failure(): WalFailedError | undefined {
    return this.failed;
  }

  /** Flushes what is queued, then closes the file and releases the lock. Later saves reject with WalClosedError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing.catch(() => undefined);
    await this.purging.catch(() => undefined);
    await this.fh.close().catch(() => undefined);
    await this.lock?.release();
  }

  // -------------------------------------------------------------------------------------------------------------

  private enqueue(p: Omit<Pending, 'resolve' | 'reject'>): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(new WalClosedError(this.dir));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ...p, resolve, reject });
      if (!this.flushing) {
        // Start on a microtask so that every save() made in the current synchronous run shares the first batch.
        this.flushing = Promise.resolve().then(() => this.flushLoop());
      }
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        if (this.failed) {
          for (const p of batch) p.reject(this.failed);
          continue;
        }
        try {
          await this.writeBatch(batch);
        } catch (e) {
          this.failed = e instanceof WalFailedError ? e : new WalFailedError(this.dir, e);
          this.log(`wal: ${this.failed.message}`);
          for (const p of batch) p.reject(this.failed);
          continue;
        }
        for (const p of batch) p.resolve();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const records: WalRecord[] = [];
    let hardState: HardState | undefined;
    let lastIndex = this.lastIndex;
    let mustSync = false;
    // on this thread only if every save with entries in the batch asked for it
    let syncHere = false;
    let syncInPool = false;
    let { term, vote } = this.hardState;
    for (const p of batch) {
      if (p.entries.length > 0 || p.marker) {
        mustSync = true;
        if (p.syncHere) syncHere = true;
        else syncInPool = true;
      }
      for (const entry of p.entries) {
        records.push({ type: RecordType.Entry, entry });
        lastIndex = entry.index;
      }
      if (p.hardState) {
        hardState = { term: p.hardState.term, vote: p.hardState.vote, commit: p.hardState.commit };
        records.push({ type: RecordType.HardState, hardState });
        if (hardState.term !== term || hardState.vote !== vote) mustSync = true;
        ({ term, vote } = hardState);
      }
      if (p.marker) {
        records.push({ type: RecordType.Snapshot, snapshot: p.marker });
        lastIndex = Math.max(lastIndex, p.marker.index);
      }
    }
    if (records.length === 0) return;
    let size = 0;
    for (const r of records) size += frameSize(r);
    if (this.tail + size > this.segmentSize && this.tail > this.headerEnd) await this.cut();
    const { buf, crc } = encodeFrames(records, this.crc);
    // A small batch is copied into the page cache on this thread (tens of µs), sparing two thread-pool wake-ups
    // per write; a big one (a follower catching up, huge values) goes through the pool so the event loop keeps going.
    const small = buf.byteLength <= WRITE_NOW_MAX_BYTES;
    if (small) writeFullyNow(this.fh, buf, this.tail);
    else await writeFully(this.fh, buf, this.tail);
    if (mustSync) await this.datasync(small && syncHere && !syncInPool);
    this.tail += size;
    this.crc = crc;
    this.lastIndex = lastIndex;
    if (hardState) this.hardState = hardState;
  }

  private async datasync(here = false): Promise<void> {
    const started = performance.now();
    if (here) this.fh.datasyncNow();
    else await this.fh.datasync();
    this.onSync?.((performance.now() - started) / 1000);
  }

  /** Seals the current segment (everything in it is already durable) and starts the next one. */
  private async cut(): Promise<void> {
    const prev = this.segments[this.segments.length - 1];
    await this.fh.truncate(this.tail);
    await this.datasync();
    await this.fh.close();
    const seg: Segment = { seq: prev.seq + 1, index: this.lastIndex + 1, path: '' };
    seg.path = path.join(this.dir, segmentName(seg.seq, seg.index));
    const header: WalRecord[] = [
      { type: RecordType.Crc, crc: this.crc },
      { type: RecordType.Metadata, metadata: { data: new Uint8Array(0), ...this.metadata } },
    ];
    const { buf: hbuf, crc: hcrc } = encodeFrames(header, this.crc);
    const { buf: sbuf, crc } = encodeFrames([{ type: RecordType.HardState, hardState: this.hardState }], hcrc);
    this.fh = await createSegmentFile(this.fs, seg, Buffer.concat([hbuf, sbuf]), this.segmentSize);
    this.segments.push(seg);
    this.tail = hbuf.length + sbuf.length;
    this.headerEnd = hbuf.length;
    this.crc = crc;
    this.log(`wal: rolled over to ${seg.path}`);
  }
}

async function removeTmpFiles(fs: FileSystem, dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    if (name.endsWith('.wal.tmp')) await fs.unlink(path.join(dir, name)).catch(() => undefined);
  }
}
