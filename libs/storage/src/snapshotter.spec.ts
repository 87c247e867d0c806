import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import type { Snapshot } from '@nestcd/raft';
import { FaultyFileSystem, WRITE_BACK_BYTES } from './fs';
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
