import * as path from 'node:path';
import type { Snapshot } from '@nestcd/raft';
import { FileSystem, defaultFileSystem, errnoCode, readWholeFile, writeFileAtomic } from './fs';
import { crc32 } from './wal-record';

/**
 * Snapshot files `%016x-%016x.snap` (term, index), little-endian:
 *
 *   8 bytes  magic "NCDSNAP1"
 *   u32      crc32 of everything after this field
 *   u64      index, u64 term
 *   u32      n voters, n x u64;  u32 n learners, n x u64
 *   u64      data length, data
 *
 * Written to `<name>.tmp`, fsynced, renamed, directory fsynced: a crash leaves the old set of snapshots or the new one.
 */
const MAGIC = Buffer.from('NCDSNAP1', 'ascii');
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

/** Everything in front of the data: magic, a CRC slot (zero), metadata, the data length. */
function encodeHead(s: Snapshot): Buffer {
  const { voters, learners } = s.metadata.confState;
  const headLen = MAGIC.length + 4 + 16 + 4 + 8 * voters.length + 4 + 8 * learners.length + 8;
  const buf = Buffer.alloc(headLen);
  MAGIC.copy(buf, 0);
  let o = MAGIC.length + 4;
  const u64 = (n: number): void => {
    buf.writeUInt32LE(n % TWO32, o);
    buf.writeUInt32LE(Math.floor(n / TWO32), o + 4);
    o += 8;
  };
  u64(s.metadata.index);
  u64(s.metadata.term);
  for (const ids of [voters, learners]) {
    buf.writeUInt32LE(ids.length, o);
    o += 4;
    for (const id of ids) {
      buf.writeBigUInt64LE(BigInt.asUintN(64, id), o);
      o += 8;
    }
  }
  u64(s.data.byteLength);
  return buf;
}

export function encodeSnapshot(s: Snapshot): Buffer {
  const head = encodeHead(s);
  const buf = Buffer.concat([head, s.data]);
  buf.writeUInt32LE(crc32(buf.subarray(MAGIC.length + 4), 0), MAGIC.length);
  return buf;
}

/** Bytes checksummed per turn of the event loop when a snapshot is saved (a few ms of crc32). */
const CRC_STEP_BYTES = 8 << 20;

/**
 * The same file as encodeSnapshot, as two parts (head, then the data itself, not copied), its CRC computed a
 * step per turn of the event loop: a large snapshot is saved without holding the loop for a copy and a checksum.
 */
async function encodeSnapshotParts(s: Snapshot): Promise<Uint8Array[]> {
  const head = encodeHead(s);
  const crc = await crcInSteps(s.data, crc32(head.subarray(MAGIC.length + 4), 0));
  head.writeUInt32LE(crc, MAGIC.length);
  return [head, s.data];
}

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
  if (crc32(buf.subarray(MAGIC.length + 4), 0) !== buf.readUInt32LE(MAGIC.length)) throw new SnapshotCorruptError(file, 'CRC mismatch');
  return decodeChecked(buf, file);
}

/** decodeSnapshot with the CRC computed a step per turn of the event loop (a member loading one to send it). */
async function decodeSnapshotInSteps(buf: Buffer, file: string): Promise<Snapshot> {
  checkFraming(buf, file);
  if ((await crcInSteps(buf.subarray(MAGIC.length + 4), 0)) !== buf.readUInt32LE(MAGIC.length)) {
    throw new SnapshotCorruptError(file, 'CRC mismatch');
  }
  return decodeChecked(buf, file);
}

function checkFraming(buf: Buffer, file: string): void {
  if (buf.length < MAGIC.length + 4 + 16 + 4 + 4 + 8) throw new SnapshotCorruptError(file, `too short (${buf.length} bytes)`);
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new SnapshotCorruptError(file, 'bad magic');
}

/** The fields of a file whose magic and CRC have been checked. The data is a view of `buf`, not a copy. */
function decodeChecked(buf: Buffer, file: string): Snapshot {
  const fail = (reason: string): never => {
    throw new SnapshotCorruptError(file, reason);
  };
  let o = MAGIC.length + 4;
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
  const len = u64();
  if (o + len !== buf.length) fail(`data length ${len} does not match the file size`);
  const data = new Uint8Array(buf.buffer, buf.byteOffset + o, len);
  return { data, metadata: { index, term, confState: { voters, learners } } };
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
    await this.fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, snapshotName(snapshot.metadata.term, snapshot.metadata.index));
    await writeFileAtomic(this.fs, file, await encodeSnapshotParts(snapshot));
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
