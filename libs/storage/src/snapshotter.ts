import * as path from 'node:path';
import type { Snapshot, SnapshotMetadata } from '@nestcd/raft';
import { AtomicFileWriter, FileSystem, defaultFileSystem, errnoCode, readWholeFile } from './fs';
import { crc32 } from './wal-record';

/**
 * Snapshot files `%016x-%016x.snap` (term, index), little-endian:
 *
 *   8 bytes  magic "NCDSNAP2"
 *   u32      crc32 of everything after this field
 *   u64      index, u64 term
 *   u32      n voters, n x u64;  u32 n learners, n x u64
 *   data     to the end of the file
 *
 * The data runs to the end so that a snapshot can be written as it is encoded, its size unknown until the last
 * piece; the CRC is filled in at the end. Files of the first format ("NCDSNAP1": a u64 data length in front of
 * the data) are still read. Written to `<name>.tmp`, fsynced, renamed, directory fsynced: a crash leaves the old
 * set of snapshots or the new one.
 */
const MAGIC = Buffer.from('NCDSNAP2', 'ascii');
const MAGIC_V1 = Buffer.from('NCDSNAP1', 'ascii');
const CRC_OFFSET = MAGIC.length;
const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const TWO32 = 2 ** 32;

export interface SnapshotFileInfo {
  name: string;
  path: string;
  term: number;
  index: number;
}

export class SnapshotCorruptError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`snapshot ${file} is unusable: ${reason}`);
    this.name = 'SnapshotCorruptError';
  }
}

export function snapshotName(term: number, index: number): string {
  return `${term.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}.snap`;
}

/** Everything in front of the data: magic, a CRC slot (zero), the metadata. */
function encodeHead(metadata: SnapshotMetadata): Buffer {
  const { voters, learners } = metadata.confState;
  const headLen = MAGIC.length + 4 + 16 + 4 + 8 * voters.length + 4 + 8 * learners.length;
  const buf = Buffer.alloc(headLen);
  MAGIC.copy(buf, 0);
  let o = CRC_OFFSET + 4;
  const u64 = (n: number): void => {
    buf.writeUInt32LE(n % TWO32, o);
    buf.writeUInt32LE(Math.floor(n / TWO32), o + 4);
    o += 8;
  };
  u64(metadata.index);
  u64(metadata.term);
  for (const ids of [voters, learners]) {
    buf.writeUInt32LE(ids.length, o);
    o += 4;
    for (const id of ids) {
      buf.writeBigUInt64LE(BigInt.asUintN(64, id), o);
      o += 8;
    }
  }
  return buf;
}

/** The bytes of a snapshot file (what Snapshotter.save writes). */
export function encodeSnapshot(s: Snapshot): Buffer {
  const buf = Buffer.concat([encodeHead(s.metadata), s.data]);
  buf.writeUInt32LE(crc32(buf.subarray(CRC_OFFSET + 4), 0), CRC_OFFSET);
  return buf;
}

/** Bytes checksummed per turn of the event loop when a snapshot is loaded or saved whole (a few ms of crc32). */
const CRC_STEP_BYTES = 8 << 20;

/** crc32 of `bytes` continuing from `crc`, CRC_STEP_BYTES per turn of the event loop. */
async function crcInSteps(bytes: Uint8Array, crc: number): Promise<number> {
  for (let off = 0; off < bytes.byteLength; off += CRC_STEP_BYTES) {
    if (off > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    crc = crc32(bytes.subarray(off, off + CRC_STEP_BYTES), crc);
  }
  return crc;
}

export function decodeSnapshot(buf: Buffer, file = 'snapshot'): Snapshot {
  checkFraming(buf, file);
  if (crc32(buf.subarray(CRC_OFFSET + 4), 0) !== buf.readUInt32LE(CRC_OFFSET)) throw new SnapshotCorruptError(file, 'CRC mismatch');
  return decodeChecked(buf, file);
}

/** decodeSnapshot with the CRC computed a step per turn of the event loop (a member loading one to send it). */
async function decodeSnapshotInSteps(buf: Buffer, file: string): Promise<Snapshot> {
  checkFraming(buf, file);
  if ((await crcInSteps(buf.subarray(CRC_OFFSET + 4), 0)) !== buf.readUInt32LE(CRC_OFFSET)) {
    throw new SnapshotCorruptError(file, 'CRC mismatch');
  }
  return decodeChecked(buf, file);
}

function checkFraming(buf: Buffer, file: string): void {
  if (buf.length < MAGIC.length + 4 + 16 + 4 + 4) throw new SnapshotCorruptError(file, `too short (${buf.length} bytes)`);
  const magic = buf.subarray(0, MAGIC.length);
  if (!magic.equals(MAGIC) && !magic.equals(MAGIC_V1)) throw new SnapshotCorruptError(file, 'bad magic');
}

/** The fields of a file whose magic and CRC have been checked. The data is a view of `buf`, not a copy. */
function decodeChecked(buf: Buffer, file: string): Snapshot {
  const fail = (reason: string): never => {
    throw new SnapshotCorruptError(file, reason);
  };
  let o = CRC_OFFSET + 4;
  const need = (n: number): void => {
    if (o + n > buf.length) fail('truncated');
  };
  const u64 = (): number => {
    need(8);
    const n = buf.readUInt32LE(o) + buf.readUInt32LE(o + 4) * TWO32;
    o += 8;
    return n;
  };
  const index = u64();
  const term = u64();
  const ids = (): bigint[] => {
    need(4);
    const n = buf.readUInt32LE(o);
    o += 4;
    need(8 * n);
    const out: bigint[] = [];
    for (let i = 0; i < n; i++, o += 8) out.push(buf.readBigUInt64LE(o));
    return out;
  };
  const voters = ids();
  const learners = ids();
  if (buf.subarray(0, MAGIC.length).equals(MAGIC_V1)) {
    const len = u64();
    if (o + len !== buf.length) fail(`data length ${len} does not match the file size`);
  }
  const data = new Uint8Array(buf.buffer, buf.byteOffset + o, buf.length - o);
  return { data, metadata: { index, term, confState: { voters, learners } } };
}

/**
 * A snapshot file being written as its data is encoded (Snapshotter.create): write() each piece as it is ready,
 * then commit(); abort() gives it up. Until commit() resolves, no snapshot file of this name is visible.
 */
export class SnapshotFileWriter {
  private crc: number;

  /** @internal */
  constructor(
    private readonly out: AtomicFileWriter,
    head: Buffer,
  ) {
    this.crc = crc32(head.subarray(CRC_OFFSET + 4), 0);
  }

  /** Appends a piece of the data; the caller may reuse `bytes` once this resolves. */
  async write(bytes: Uint8Array): Promise<void> {
    this.crc = crc32(bytes, this.crc);
    await this.out.append(bytes);
  }

  /** Fills in the CRC and makes the file durable under its final name. */
  async commit(): Promise<void> {
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(this.crc, 0);
    try {
      await this.out.patch(CRC_OFFSET, crc);
    } catch (err) {
      await this.out.abort();
      throw err;
    }
    await this.out.commit();
  }

  abort(): Promise<void> {
    return this.out.abort();
  }
}

export class Snapshotter {
  private readonly fs: FileSystem;
  private readonly log: (msg: string) => void;

  constructor(
    readonly dir: string,
    fs?: FileSystem,
    log?: (msg: string) => void,
  ) {
    this.fs = fs ?? defaultFileSystem;
    this.log = log ?? (() => undefined);
  }

  /** Writes the snapshot durably (temp file, fsync, rename, fsync dir). Creates the directory (0700) if needed. */
  async save(snapshot: Snapshot): Promise<void> {
    const out = await this.create(snapshot.metadata);
    try {
      // checksummed a piece at a time, the event loop turning while each is written
      for (let off = 0; off < snapshot.data.byteLength; off += CRC_STEP_BYTES) {
        await out.write(snapshot.data.subarray(off, off + CRC_STEP_BYTES));
      }
    } catch (err) {
      await out.abort();
      throw err;
    }
    await out.commit();
  }

  /**
   * Starts the snapshot file for `metadata`, to be written a piece at a time as it is encoded (see
   * SnapshotFileWriter): no buffer of the whole snapshot is needed. Creates the directory (0700) if needed.
   */
  async create(metadata: SnapshotMetadata): Promise<SnapshotFileWriter> {
    await this.fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, snapshotName(metadata.term, metadata.index));
    const out = await AtomicFileWriter.open(this.fs, file);
    const head = encodeHead(metadata);
    try {
      await out.append(head);
    } catch (err) {
      await out.abort();
      throw err;
    }
    return new SnapshotFileWriter(out, head);
  }

  /** Snapshot files, oldest first (by index, then term). Temp files are ignored. */
  async list(): Promise<SnapshotFileInfo[]> {
    let names: string[];
    try {
      names = await this.fs.readdir(this.dir);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
    const out: SnapshotFileInfo[] = [];
    for (const name of names) {
      const m = SNAP_RE.exec(name);
      if (m) out.push({ name, path: path.join(this.dir, name), term: parseInt(m[1], 16), index: parseInt(m[2], 16) });
    }
    return out.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  /** Reads one snapshot file; throws SnapshotCorruptError if it does not verify or its name disagrees. */
  async load(info: SnapshotFileInfo): Promise<Snapshot> {
    const snap = await decodeSnapshotInSteps(await readWholeFile(this.fs, info.path), info.path);
    if (snap.metadata.index !== info.index || snap.metadata.term !== info.term) {
      throw new SnapshotCorruptError(info.path, `content is for term ${snap.metadata.term} index ${snap.metadata.index}`);
    }
    return snap;
  }

  /** Reads the snapshot file saved for `term` and `index` (see load). */
  loadAt(term: number, index: number): Promise<Snapshot> {
    const name = snapshotName(term, index);
    return this.load({ name, path: path.join(this.dir, name), term, index });
  }

  /**
   * The newest snapshot that verifies (and passes `accept`, e.g. "the WAL has a marker for it"); corrupt files are
   * skipped and reported through the log callback. Undefined if there is none.
   */
  async loadNewest(accept?: (info: SnapshotFileInfo) => boolean): Promise<Snapshot | undefined> {
    const files = (await this.list()).reverse();
    for (const info of files) {
      if (accept && !accept(info)) continue;
      try {
        return await this.load(info);
      } catch (e) {
        if (!(e instanceof SnapshotCorruptError)) throw e;
        this.log(`snap: skipping ${e.message}`);
      }
    }
    return undefined;
  }

  /** Keeps the newest `maxSnapshots` files (0 = unlimited) and removes stray temp files. */
  async purge(maxSnapshots: number): Promise<void> {
    let removed = 0;
    try {
      for (const name of await this.fs.readdir(this.dir)) {
        if (name.endsWith('.snap.tmp')) {
          await this.fs.unlink(path.join(this.dir, name));
          removed++;
        }
      }
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return;
      throw e;
    }
    if (maxSnapshots > 0) {
      const files = await this.list();
      for (const f of files.slice(0, Math.max(0, files.length - maxSnapshots))) {
        await this.fs.unlink(f.path);
        this.log(`snap: purged ${f.path}`);
        removed++;
      }
    }
    if (removed > 0) await this.fs.fsyncDir(this.dir);
  }
}
