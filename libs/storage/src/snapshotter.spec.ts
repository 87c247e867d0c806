import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import type { Snapshot } from '@nestcd/raft';
import * as zlib from 'node:zlib';
import { FaultyFileSystem, SimulatedCrashError, WRITE_BACK_BYTES } from './fs';
import { SnapshotCorruptError, Snapshotter, decodeSnapshot, encodeSnapshot, snapshotName } from './snapshotter';
import { rmDir, tmpDir } from './test-helpers';

function snap(index: number, term: number, data = `state@${index}`): Snapshot {
  return {
    data: new TextEncoder().encode(data),
    metadata: { index, term, confState: { voters: [1n, 0xffffffffffffffffn], learners: [3n] } },
  };
}

describe('Snapshotter', () => {
  let dir: string;
  beforeEach(() => {
    dir = path.join(tmpDir(), 'snap');
  });
  afterEach(() => rmDir(path.dirname(dir)));

  it('saves %016x-%016x.snap (term, index) durably and loads it back', async () => {
    const ffs = new FaultyFileSystem();
    const s = new Snapshotter(dir, ffs);
    await s.save(snap(100, 3));
    expect(nodeFs.readdirSync(dir)).toEqual([snapshotName(3, 100)]);
    expect(snapshotName(3, 100)).toBe('0000000000000003-0000000000000064.snap');
    expect(nodeFs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(ffs.stats.fsyncs).toBe(1);
    expect(ffs.stats.renames).toBe(1);
    expect(ffs.stats.dirSyncs).toBe(1);
    const loaded = await s.loadNewest();
    expect(loaded).toEqual(snap(100, 3));
  });

  it('flushes a big snapshot a MiB at a time as it writes it, so the WAL never waits behind all of it', async () => {
    const ffs = new FaultyFileSystem();
    const s = new Snapshotter(dir, ffs);
    const data = Buffer.alloc(Math.floor(3.5 * WRITE_BACK_BYTES));
    for (let i = 0; i < data.length; i += 4) data.writeUInt32BE(i, i);
    await s.save({ data, metadata: { index: 9, term: 2, confState: { voters: [1n], learners: [] } } });
    // a little over 3.5 MiB with the header: three flushes along the way, then the file's fsync
    expect(ffs.stats.datasyncs).toBe(3);
    expect(ffs.stats.fsyncs).toBe(1);
    const loaded = await s.loadNewest();
    expect(Buffer.from(loaded!.data).equals(data)).toBe(true);

    const small = new FaultyFileSystem();
    await new Snapshotter(dir, small).save(snap(10, 2));
    expect(small.stats.datasyncs).toBe(0); // under a MiB: written and fsynced once, as before
    expect(small.stats.fsyncs).toBe(1);
  });

  it('encodes big data and empty conf states', () => {
    const big: Snapshot = { data: new Uint8Array(1 << 20).fill(7), metadata: { index: 2 ** 40, term: 2 ** 33, confState: { voters: [], learners: [] } } };
    const back = decodeSnapshot(encodeSnapshot(big));
    expect(back.metadata).toEqual(big.metadata);
    expect(Buffer.from(back.data).equals(Buffer.from(big.data))).toBe(true);
  });

  it('saves a snapshot bigger than one checksum step (CRC chained over the steps) as the bytes encodeSnapshot makes', async () => {
    const data = Buffer.alloc(20 << 20);
    for (let i = 0; i < data.length; i += 4096) data[i] = i % 251;
    const big: Snapshot = { data, metadata: { index: 77, term: 5, confState: { voters: [1n, 2n], learners: [] } } };
    const s = new Snapshotter(dir);
    await s.save(big);
    expect(nodeFs.readFileSync(path.join(dir, snapshotName(5, 77))).equals(encodeSnapshot(big))).toBe(true);
    expect(Buffer.from((await s.loadNewest())!.data).equals(data)).toBe(true);
  });

  it('writes a snapshot a piece at a time as it is encoded: the same file as save(), visible only once committed', async () => {
    const data = Buffer.alloc(3 * WRITE_BACK_BYTES + 12344);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32BE(i * 2654435761 >>> 0, i);
    const metadata = { index: 500, term: 4, confState: { voters: [1n, 2n, 3n], learners: [9n] } };
    const ffs = new FaultyFileSystem();
    const s = new Snapshotter(dir, ffs);
    const out = await s.create(metadata);
    const piece = Buffer.alloc(100_000);
    for (let off = 0; off < data.length; off += piece.length) {
      // one buffer reused for every piece, as a streamed capture does
      const n = data.copy(piece, 0, off, off + piece.length);
      await out.write(piece.subarray(0, n));
      expect(await s.list()).toEqual([]);
    }
    expect(ffs.stats.datasyncs).toBe(3); // flushed a MiB at a time as it goes
    await out.commit();
    expect(nodeFs.readdirSync(dir)).toEqual([snapshotName(4, 500)]);
    expect(nodeFs.readFileSync(path.join(dir, snapshotName(4, 500))).equals(encodeSnapshot({ data, metadata }))).toBe(true);
    const loaded = await s.loadAt(4, 500);
    expect(loaded.metadata).toEqual(metadata);
    expect(Buffer.from(loaded.data).equals(data)).toBe(true);
  });

  it('an aborted snapshot leaves nothing; a crash in the middle of one leaves only a temp file, which purge removes', async () => {
    const s = new Snapshotter(dir);
    await s.save(snap(10, 1));
    const aborted = await s.create(snap(20, 1).metadata);
    await aborted.write(Buffer.alloc(5000, 1));
    await aborted.abort();
    expect(nodeFs.readdirSync(dir)).toEqual([snapshotName(1, 10)]);

    const ffs = new FaultyFileSystem();
    const crashing = new Snapshotter(dir, ffs);
    const out = await crashing.create(snap(30, 1).metadata);
    await out.write(Buffer.alloc(5000, 2));
    ffs.tearAfterBytes = 100;
    await expect(out.write(Buffer.alloc(5000, 3))).rejects.toBeInstanceOf(SimulatedCrashError);
    await expect(out.commit()).rejects.toBeInstanceOf(SimulatedCrashError);
    // after the "restart": the old snapshot is the newest, the torn temp file is ignored, then purged
    const restarted = new Snapshotter(dir);
    expect((await restarted.loadNewest())!.metadata.index).toBe(10);
    await restarted.purge(0);
    expect(nodeFs.readdirSync(dir)).toEqual([snapshotName(1, 10)]);
  });

  it('reads snapshot files of the first format (a data length in front of the data)', async () => {
    const s = new Snapshotter(dir);
    const data = Buffer.from('state of the first format');
    // magic, crc, index, term, 1 voter, 0 learners, data length, data
    const head = Buffer.alloc(8 + 4 + 16 + 4 + 8 + 4 + 8);
    head.write('NCDSNAP1', 0, 'ascii');
    head.writeUInt32LE(42, 12);
    head.writeUInt32LE(7, 20);
    head.writeUInt32LE(1, 28);
    head.writeBigUInt64LE(5n, 32);
    head.writeUInt32LE(0, 40);
    head.writeUInt32LE(data.length, 44);
    const file = Buffer.concat([head, data]);
    file.writeUInt32LE(zlib.crc32(file.subarray(12)) >>> 0, 8);
    nodeFs.mkdirSync(dir, { recursive: true });
    nodeFs.writeFileSync(path.join(dir, snapshotName(7, 42)), file);
    const loaded = await s.loadNewest();
    expect(loaded!.metadata).toEqual({ index: 42, term: 7, confState: { voters: [5n], learners: [] } });
    expect(Buffer.from(loaded!.data).toString()).toBe('state of the first format');
    // its length field is checked against the file
    nodeFs.writeFileSync(path.join(dir, snapshotName(7, 42)), Buffer.concat([file, Buffer.alloc(1)]));
    await expect(s.loadAt(7, 42)).rejects.toBeInstanceOf(SnapshotCorruptError);
  });

  it('loadNewest picks the highest index, skipping (and reporting) corrupt files', async () => {
    const logs: string[] = [];
    const s = new Snapshotter(dir, undefined, (m) => logs.push(m));
    expect(await s.loadNewest()).toBeUndefined();
    await s.save(snap(10, 1));
    await s.save(snap(20, 2));
    await s.save(snap(30, 2));
    const newest = path.join(dir, snapshotName(2, 30));
    const buf = nodeFs.readFileSync(newest);
    buf[buf.length - 2] ^= 0x10;
    nodeFs.writeFileSync(newest, buf);
    expect((await s.loadNewest())!.metadata.index).toBe(20);
    expect(logs.join('\n')).toMatch(new RegExp(`${snapshotName(2, 30)}.*CRC mismatch`));
    // a truncated file and a file whose content disagrees with its name are skipped too
    nodeFs.writeFileSync(path.join(dir, snapshotName(2, 40)), buf.subarray(0, 10));
    nodeFs.copyFileSync(path.join(dir, snapshotName(1, 10)), path.join(dir, snapshotName(2, 50)));
    expect((await s.loadNewest())!.metadata.index).toBe(20);
    await expect(s.load((await s.list()).find((f) => f.index === 50)!)).rejects.toBeInstanceOf(SnapshotCorruptError);
    // accept filter: only snapshots the WAL knows of
    expect((await s.loadNewest((f) => f.index <= 10))!.metadata.index).toBe(10);
  });

  it('purge keeps the newest maxSnapshots and removes temp files; 0 keeps all', async () => {
    const s = new Snapshotter(dir);
    for (let i = 1; i <= 6; i++) await s.save(snap(i * 10, 1));
    nodeFs.writeFileSync(path.join(dir, `${snapshotName(1, 70)}.tmp`), 'partial');
    await s.purge(0);
    expect((await s.list()).map((f) => f.index)).toEqual([10, 20, 30, 40, 50, 60]);
    expect(nodeFs.readdirSync(dir).some((n) => n.endsWith('.tmp'))).toBe(false);
    await s.purge(2);
    expect((await s.list()).map((f) => f.index)).toEqual([50, 60]);
    expect((await s.loadNewest())!.metadata.index).toBe(60);
  });

  it('a failed fsync rejects the save and leaves no visible snapshot', async () => {
    const ffs = new FaultyFileSystem();
    ffs.failFsync = 'once';
    const s = new Snapshotter(dir, ffs);
    await expect(s.save(snap(5, 1))).rejects.toMatchObject({ code: 'EIO' });
    expect(await s.list()).toEqual([]);
    await s.save(snap(5, 1));
    expect((await s.loadNewest())!.metadata.index).toBe(5);
  });
});
