import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import { emptyHardState } from '@nestcd/raft';
import { FaultyFileSystem, NodeFileSystem } from './fs';
import { WalCorruptionError, WalExistsError, WalFailedError, WalNotFoundError, WalSnapshotMismatchError } from './errors';
import { WRITE_NOW_MAX_BYTES, Wal, parseSegmentName, segmentName } from './wal';
import { HEADER_SIZE, RecordType, scanSegment } from './wal-record';
import { entries, entry, hs, plain, rmDir, tick, tmpDir, walFiles } from './test-helpers';

const META = { memberId: 0xfedcba9876543210n, clusterId: 42n, data: Buffer.from('server-bytes') };

/** Offsets of the records of a segment file, with their types. */
function recordsOf(file: string): Array<{ offset: number; end: number; type: RecordType; index?: number }> {
  const out: Array<{ offset: number; end: number; type: RecordType; index?: number }> = [];
  scanSegment(nodeFs.readFileSync(file), undefined, (r, offset, end) =>
    out.push({ offset, end, type: r.type, index: r.type === RecordType.Entry ? r.entry.index : undefined }),
  );
  return out;
}

describe('Wal', () => {
  let dir: string;
  beforeEach(() => {
    dir = path.join(tmpDir(), 'wal');
  });
  afterEach(() => rmDir(path.dirname(dir)));

  it('round-trips metadata, entries and hard state', async () => {
    const wal = await Wal.create(dir, META, { segmentSize: 1 << 20 });
    expect(nodeFs.statSync(dir).mode & 0o777).toBe(0o700);
    await wal.save(hs(1, 0), entries(1, 3));
    await wal.save(hs(2, 3, 0xffffffffffffffffn), [entry(4, 2, new Uint8Array([0, 1, 2, 255]))]);
    await wal.save(undefined, []);
    await wal.close();

    const r = await Wal.open(dir);
    expect(r.metadata).toEqual(META);
    expect(r.hardState).toEqual(hs(2, 3, 0xffffffffffffffffn));
    expect(plain(r.entries)).toEqual(plain([...entries(1, 3), entry(4, 2, new Uint8Array([0, 1, 2, 255]))]));
    expect(r.snapshot).toEqual({ index: 0, term: 0 });
    await r.wal.save(undefined, [entry(5, 2)]);
    await r.wal.close();
    const r2 = await Wal.open(dir);
    expect(r2.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    await r2.wal.close();
  });

  it('create refuses a directory that already has a WAL; open refuses one without', async () => {
    expect(await Wal.exists(dir)).toBe(false);
    await expect(Wal.open(dir)).rejects.toBeInstanceOf(WalNotFoundError);
    const wal = await Wal.create(dir, META);
    await wal.close();
    expect(await Wal.exists(dir)).toBe(true);
    await expect(Wal.create(dir, META)).rejects.toBeInstanceOf(WalExistsError);
    expect(nodeFs.readdirSync(dir).filter((n) => n.endsWith('.wal'))).toEqual([segmentName(0, 0)]);
  });

  it('preallocates segments (default 64 MiB) and names them %016x-%016x.wal', async () => {
    const wal = await Wal.create(dir, META);
    await wal.close();
    const [f] = walFiles(dir);
    expect(path.basename(f)).toBe('0000000000000000-0000000000000000.wal');
    expect(nodeFs.statSync(f).size).toBe(64 * 1024 * 1024);
    expect(parseSegmentName('000000000000000a-00000000000000ff.wal')).toEqual({ seq: 10, index: 255 });
  });

  describe('group commit', () => {
    it('1000 concurrent saves share a handful of fdatasyncs', async () => {
      const ffs = new FaultyFileSystem();
      const wal = await Wal.create(dir, META, { fs: ffs });
      const before = ffs.stats.datasyncs;
      await Promise.all(Array.from({ length: 1000 }, (_, i) => wal.save(undefined, [entry(i + 1)])));
      const syncs = ffs.stats.datasyncs - before;
      expect(syncs).toBeGreaterThanOrEqual(1);
      expect(syncs).toBeLessThanOrEqual(2);
      await wal.close();
      const r = await Wal.open(dir);
      expect(r.entries).toHaveLength(1000);
      await r.wal.close();
    });

    it('calls made during an in-flight write+fdatasync join the next batch, and resolve only after its fdatasync', async () => {
      const ffs = new FaultyFileSystem();
      const wal = await Wal.create(dir, META, { fs: ffs });
      const gates: Array<() => void> = [];
      ffs.beforeDatasync = () => new Promise<void>((release) => gates.push(release));
      const startSyncs = ffs.stats.datasyncs;
      const resolved: number[] = [];
      const first = wal.save(undefined, [entry(1)]).then(() => resolved.push(1));
      while (gates.length < 1) await tick();
      // Batch 1 is in its fdatasync: these 999 calls must wait for batch 2.
      const rest = Array.from({ length: 999 }, (_, i) => wal.save(hs(1, i), [entry(i + 2)]).then(() => resolved.push(i + 2)));
      for (let i = 0; i < 5; i++) await tick();
      expect(resolved).toEqual([]);
      gates.shift()!();
      await first;
      while (gates.length < 1) await tick();
      for (let i = 0; i < 5; i++) await tick();
      expect(resolved).toEqual([1]); // batch 2 is held in its fdatasync: nothing of it is acknowledged
      gates.shift()!();
      await Promise.all(rest);
      expect(resolved).toHaveLength(1000);
      expect(ffs.stats.datasyncs - startSyncs).toBe(2);
      ffs.beforeDatasync = undefined;
      await wal.close();
    });

    it('reports each fdatasync it makes to onSync with its duration, and nothing for a batch it does not sync', async () => {
      const ffs = new FaultyFileSystem();
      const synced: number[] = [];
      const wal = await Wal.create(dir, META, { fs: ffs, onSync: (s) => synced.push(s) });
      await wal.save(hs(1, 0), [entry(1)]);
      expect(synced).toHaveLength(1);
      await wal.save(hs(1, 1), []); // commit index only: written, not synced, so not reported
      expect(synced).toHaveLength(1);
      ffs.beforeDatasync = () => new Promise((resolve) => setTimeout(resolve, 30));
      await wal.save(hs(1, 1), [entry(2)]);
      expect(synced).toHaveLength(2);
      expect(synced[1]).toBeGreaterThanOrEqual(0.025);
      expect(synced[1]).toBeLessThan(5);
      await wal.close();
    });

    it('a save that only moves the commit index is written without an fdatasync; entries, term and vote are synced', async () => {
      const ffs = new FaultyFileSystem();
      const wal = await Wal.create(dir, META, { fs: ffs });
      await wal.save(hs(1, 0), [entry(1), entry(2)]);
      const syncs = (): number => ffs.stats.datasyncs;
      let before = syncs();
      await wal.save(hs(1, 1), []);
      await wal.save(hs(1, 2), []);
      expect(syncs() - before).toBe(0);
      before = syncs();
      await wal.save(hs(2, 2), []); // a new term is a promise to other members
      expect(syncs() - before).toBe(1);
      before = syncs();
      await wal.save(hs(2, 2, 3n), []); // so is a vote
      expect(syncs() - before).toBe(1);
      before = syncs();
      await wal.save(hs(2, 2, 3n), [entry(3, 2)]);
      expect(syncs() - before).toBe(1);
      await wal.close();
      // the unsynced commit records were still written: a process crash (the page cache survives) keeps them
      const r = await Wal.open(dir);
      expect(r.hardState).toEqual(hs(2, 2, 3n));
      expect(r.entries.map((e) => e.index)).toEqual([1, 2, 3]);
      await r.wal.close();
    });

    it('staggered writers: every save resolves after an fdatasync that started after it was called', async () => {
      const ffs = new FaultyFileSystem();
      const wal = await Wal.create(dir, META, { fs: ffs });
      const start = ffs.stats.datasyncs;
      let next = 1;
      const writer = async (): Promise<void> => {
        for (let k = 0; k < 50; k++) {
          const idx = next++;
          const syncsStartedAtCall = ffs.stats.datasyncs;
          await wal.save(undefined, [entry(idx)]);
          // the batch holding this record started its fdatasync after the call, and that fdatasync completed
          expect(ffs.stats.datasyncsCompleted).toBeGreaterThan(syncsStartedAtCall);
        }
      };
      await Promise.all(Array.from({ length: 20 }, writer));
      const syncs = ffs.stats.datasyncs - start;
      expect(syncs).toBeLessThan(1000 / 4);
      await wal.close();
      const r = await Wal.open(dir);
      expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
      await r.wal.close();
    });
  });

  describe('segments', () => {
    it('rolls over to new segments with a CRC chain across them', async () => {
      const logs: string[] = [];
      const wal = await Wal.create(dir, META, { segmentSize: 4096, log: (m) => logs.push(m) });
      for (let i = 1; i <= 300; i += 10) await wal.save(hs(1, i - 1), entries(i, i + 9, 1, 50));
      await wal.close();
      const files = walFiles(dir);
      expect(files.length).toBeGreaterThan(5);
      expect(logs.filter((l) => l.includes('rolled over'))).toHaveLength(files.length - 1);
      // sequence numbers are contiguous; the name's index is the first entry index of the segment
      files.forEach((f, i) => {
        const p = parseSegmentName(path.basename(f))!;
        expect(p.seq).toBe(i);
        const firstEntry = recordsOf(f).find((r) => r.type === RecordType.Entry);
        if (i > 0 && firstEntry) expect(p.index).toBe(firstEntry.index);
      });
      // sealed segments were trimmed to their content; the last one is preallocated
      expect(nodeFs.statSync(files[0]).size).toBeLessThanOrEqual(4096);
      expect(nodeFs.statSync(files[files.length - 1]).size).toBe(4096);
      const r = await Wal.open(dir, { segmentSize: 4096 });
      expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
      expect(r.hardState).toEqual(hs(1, 290));
      await r.wal.close();
    });

    it('detects a broken chain: a segment swapped in from another WAL with the same shape', async () => {
      const other = path.join(path.dirname(dir), 'other');
      for (const [d, term] of [
        [dir, 1],
        [other, 2],
      ] as const) {
        const wal = await Wal.create(d, META, { segmentSize: 2048 });
        for (let i = 1; i <= 60; i += 5) await wal.save(undefined, entries(i, i + 4, term, 40));
        await wal.close();
      }
      const a = walFiles(dir);
      const b = walFiles(other);
      expect(a.map((f) => path.basename(f))).toEqual(b.map((f) => path.basename(f)));
      nodeFs.copyFileSync(b[2], a[2]); // valid on its own, but not chained to a[1]
      const err = await Wal.open(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WalCorruptionError);
      expect((err as WalCorruptionError).file).toBe(a[2]);
      expect((err as WalCorruptionError).message).toMatch(/chain/);
    });

    it('a batch larger than a segment still fits (the file grows)', async () => {
      const wal = await Wal.create(dir, META, { segmentSize: 1024 });
      await wal.save(undefined, entries(1, 5, 1, 600));
      await wal.save(undefined, entries(6, 6, 1, 10));
      await wal.close();
      const r = await Wal.open(dir, { segmentSize: 1024 });
      expect(r.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
      await r.wal.close();
    });
  });

  describe('raft truncation on replay', () => {
    it('a later entry at index i replaces everything from i on, also across segments', async () => {
      const wal = await Wal.create(dir, META, { segmentSize: 2048 });
      await wal.save(hs(1, 2), entries(1, 40, 1, 30));
      await wal.save(undefined, entries(41, 60, 1, 30));
      await wal.save(hs(2, 2), entries(30, 33, 2, 5)); // truncates 30..60 of term 1
      await wal.save(undefined, entries(34, 35, 2, 5));
      await wal.save(hs(3, 3), entries(35, 35, 3, 5)); // and 35 of term 2
      await wal.close();
      expect(walFiles(dir).length).toBeGreaterThan(1);
      const r = await Wal.open(dir, { segmentSize: 2048 });
      expect(r.entries.map((e) => [e.index, e.term])).toEqual([
        ...Array.from({ length: 29 }, (_, i) => [i + 1, 1]),
        [30, 2],
        [31, 2],
        [32, 2],
        [33, 2],
        [34, 2],
        [35, 3],
      ]);
      expect(r.hardState).toEqual(hs(3, 3));
      await r.wal.close();
    });

    it('a gap in the entries is corruption', async () => {
      const wal = await Wal.create(dir, META);
      await wal.save(undefined, entries(1, 3));
      await wal.save(undefined, entries(5, 6));
      await wal.close();
      const err = await Wal.open(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WalCorruptionError);
      expect((err as Error).message).toMatch(/entry index 5 follows index 3/);
    });
  });

  describe('snapshot markers and purge', () => {
    async function fill(): Promise<Wal> {
      const wal = await Wal.create(dir, META, { segmentSize: 2048 });
      for (let i = 1; i <= 200; i += 10) await wal.save(hs(1, i + 9), entries(i, i + 9, 1, 40));
      await wal.saveSnapshot({ index: 150, term: 1 });
      await wal.save(undefined, entries(201, 205, 1, 40));
      return wal;
    }

    it('open replays from the newest snapshot marker', async () => {
      const wal = await fill();
      await wal.close();
      const r = await Wal.open(dir, { segmentSize: 2048 });
      expect(r.snapshot).toEqual({ index: 150, term: 1 });
      expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 55 }, (_, i) => 151 + i));
      expect(r.hardState).toEqual(hs(1, 200));
      await r.wal.close();
    });

    it('fromSnapshot skips older segments and entries; a wrong term is refused', async () => {
      const wal = await fill();
      await wal.close();
      const r = await Wal.open(dir, { segmentSize: 2048, fromSnapshot: { index: 100, term: 1 } });
      expect(r.entries[0].index).toBe(101);
      expect(r.entries[r.entries.length - 1].index).toBe(205);
      await r.wal.close();
      await expect(Wal.open(dir, { fromSnapshot: { index: 150, term: 7 } })).rejects.toBeInstanceOf(WalSnapshotMismatchError);
    });

    it('purge deletes whole old segments below the index, keeping at most maxWals (0 = unlimited)', async () => {
      const wal = await fill();
      const all = wal.segmentPaths();
      expect(all.length).toBeGreaterThan(6);
      await wal.purge(150, 0);
      expect(walFiles(dir)).toEqual(all);
      await wal.purge(150, 2);
      const left = walFiles(dir);
      expect(left.length).toBeLessThan(all.length);
      expect(left.length).toBeGreaterThanOrEqual(2);
      // every deleted segment held only entries < 150: the first kept segment starts at or below 150
      expect(parseSegmentName(path.basename(left[0]))!.index).toBeLessThanOrEqual(150);
      expect(parseSegmentName(path.basename(left[1]))!.index).toBeGreaterThan(150);
      await wal.save(hs(1, 206), [entry(206, 1)]);
      await wal.close();

      const r = await Wal.open(dir, { segmentSize: 2048, fromSnapshot: { index: 150, term: 1 } });
      expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 56 }, (_, i) => 151 + i));
      expect(r.hardState).toEqual(hs(1, 206));
      expect(r.metadata).toEqual(META);
      await r.wal.purge(1000, 1); // never deletes the current segment
      expect(walFiles(dir)).toHaveLength(1);
      await r.wal.close();
      // a snapshot older than the oldest kept segment cannot be replayed from
      await expect(Wal.open(dir, { fromSnapshot: { index: 10, term: 1 } })).rejects.toBeInstanceOf(WalSnapshotMismatchError);
    });

    it('readSnapshotMarkers lists the markers and the last hard state', async () => {
      const wal = await fill();
      await wal.close();
      const { markers, hardState } = await Wal.readSnapshotMarkers(dir);
      expect(markers).toEqual([
        { index: 0, term: 0 },
        { index: 150, term: 1 },
      ]);
      expect(hardState).toEqual(hs(1, 200));
    });
  });

  describe('corruption', () => {
    async function tenEntries(): Promise<string> {
      const wal = await Wal.create(dir, META, { segmentSize: 1 << 16 });
      for (let i = 1; i <= 10; i++) await wal.save(hs(1, i), [entry(i, 1, `value-${i}`)]);
      await wal.close();
      return walFiles(dir)[0];
    }

    it.each([
      ['length field', 0],
      ['length check field', 5],
      ['crc field', 9],
      ['entry body', HEADER_SIZE + 3],
      ['entry data', HEADER_SIZE + 19],
    ])('a bit flip in an old record (%s) -> WalCorruptionError naming file and offset', async (_what, delta) => {
      const file = await tenEntries();
      const rec = recordsOf(file).find((r) => r.index === 4)!;
      await new FaultyFileSystem().flipBit(file, rec.offset + delta, 3);
      const err = await Wal.open(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WalCorruptionError);
      const ce = err as WalCorruptionError;
      expect(ce.file).toBe(file);
      expect(ce.offset).toBe(rec.offset);
      expect(ce.message).toContain(file);
      expect(ce.message).toContain(`offset ${rec.offset}`);
    });

    it('a bit flip in a sealed segment is corruption even at its end', async () => {
      const wal = await Wal.create(dir, META, { segmentSize: 2048 });
      for (let i = 1; i <= 100; i += 5) await wal.save(undefined, entries(i, i + 4, 1, 40));
      await wal.close();
      const files = walFiles(dir);
      const recs = recordsOf(files[1]);
      const lastRec = recs[recs.length - 1];
      await new FaultyFileSystem().flipBit(files[1], lastRec.end - 1, 0);
      await expect(Wal.open(dir)).rejects.toMatchObject({ name: 'WalCorruptionError', file: files[1], offset: lastRec.offset });
    });

    it('a zeroed block in the middle is corruption, not the end of the log', async () => {
      const file = await tenEntries();
      const rec = recordsOf(file).find((r) => r.index === 5)!;
      const fd = nodeFs.openSync(file, 'r+');
      nodeFs.writeSync(fd, Buffer.alloc(rec.end - rec.offset), 0, rec.end - rec.offset, rec.offset);
      nodeFs.closeSync(fd);
      await expect(Wal.open(dir)).rejects.toMatchObject({ name: 'WalCorruptionError', offset: rec.offset });
    });
  });

  describe('faults', () => {
    it('short writes: everything still lands', async () => {
      const ffs = new FaultyFileSystem();
      ffs.shortWrites = true;
      const wal = await Wal.create(dir, META, { fs: ffs, segmentSize: 4096 });
      await Promise.all(Array.from({ length: 100 }, (_, i) => wal.save(hs(1, i), [entry(i + 1, 1, `x${i}`.repeat(5))])));
      await wal.close();
      expect(ffs.stats.writes).toBeGreaterThan(ffs.stats.datasyncs);
      const r = await Wal.open(dir, { segmentSize: 4096 });
      expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      await r.wal.close();
    });

    it('small batches are written on the calling thread, big ones through the pool; both survive short and torn writes', async () => {
      const ffs = new FaultyFileSystem();
      ffs.shortWrites = true;
      const wal = await Wal.create(dir, META, { fs: ffs });
      await wal.save(hs(1, 1), entries(1, 3));
      expect(ffs.stats.writesNow).toBeGreaterThan(0);
      const before = { ...ffs.stats };
      const big = 'b'.repeat(WRITE_NOW_MAX_BYTES + 1);
      await wal.save(hs(1, 4), [entry(4, 1, big)]);
      expect(ffs.stats.writesNow).toBe(before.writesNow);
      expect(ffs.stats.writes).toBeGreaterThan(before.writes + 1); // short writes: the pool path loops too
      ffs.shortWrites = false;
      ffs.tearAfterBytes = 1000;
      await expect(wal.save(hs(1, 5), [entry(5, 1, big)])).rejects.toBeInstanceOf(WalFailedError);
      await wal.close();
      const r = await Wal.open(dir);
      expect(r.entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
      expect(Buffer.from(r.entries[3].data).toString()).toBe(big);
      await r.wal.close();
    });

    it('a save asking syncHere is fdatasynced on the calling thread, unless its batch is big or shared with one that did not ask', async () => {
      const ffs = new FaultyFileSystem();
      const syncs: number[] = [];
      const wal = await Wal.create(dir, META, { fs: ffs, onSync: (s) => syncs.push(s) });
      const before = { ...ffs.stats };
      await wal.save(hs(1, 1), entries(1, 1), { syncHere: true });
      expect(ffs.stats.datasyncsNow - before.datasyncsNow).toBe(1);
      expect(ffs.stats.datasyncs - before.datasyncs).toBe(1);
      expect(syncs).toHaveLength(1); // still reported to the fsync-duration metric
      // one batch: a save that did not ask keeps the pool's fdatasync for the whole batch
      await Promise.all([wal.save(hs(1, 2), entries(2, 2), { syncHere: true }), wal.save(hs(1, 3), entries(3, 3))]);
      const big = 'b'.repeat(WRITE_NOW_MAX_BYTES + 1);
      await wal.save(hs(1, 4), [entry(4, 1, big)], { syncHere: true });
      expect(ffs.stats.datasyncsNow - before.datasyncsNow).toBe(1);
      expect(ffs.stats.datasyncs - before.datasyncs).toBe(3);
      await wal.save(hs(1, 5), entries(5, 5), { syncHere: true });
      expect(ffs.stats.datasyncsNow - before.datasyncsNow).toBe(2);
      await wal.close();
      const r = await Wal.open(dir);
      expect(r.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
      await r.wal.close();
    });

    it('a failing fdatasync on the calling thread fails the WAL for good, as one in the pool does', async () => {
      const ffs = new FaultyFileSystem();
      const wal = await Wal.create(dir, META, { fs: ffs });
      await wal.save(hs(1, 1), entries(1, 2), { syncHere: true });
      ffs.failFsync = 'once';
      await expect(wal.save(hs(1, 3), entries(3, 3), { syncHere: true })).rejects.toMatchObject({ code: 'EIO' });
      await expect(wal.save(undefined, entries(4, 4), { syncHere: true })).rejects.toBeInstanceOf(WalFailedError);
      expect(wal.failure()).toBeInstanceOf(WalFailedError);
      await wal.close();
      const r = await Wal.open(dir);
      expect(r.entries.slice(0, 2).map((e) => e.index)).toEqual([1, 2]);
      await r.wal.close();
    });

    it('a failing fdatasync fails the WAL for good; acknowledged data recovers', async () => {
      const ffs = new FaultyFileSystem();
      const logs: string[] = [];
      const wal = await Wal.create(dir, META, { fs: ffs, log: (m) => logs.push(m) });
      await wal.save(hs(1, 1), entries(1, 5));
      ffs.failFsync = 'once';
      const p1 = wal.save(hs(1, 6), entries(6, 6));
      const p2 = Promise.resolve().then(() => wal.save(undefined, entries(7, 7))); // queued behind the failing batch
      const e1 = await p1.catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(WalFailedError);
      expect((e1 as WalFailedError).code).toBe('EIO');
      await expect(p2).rejects.toBeInstanceOf(WalFailedError);
      // fsync works again, but the WAL must not pretend: it stays failed
      await expect(wal.save(undefined, entries(7, 7))).rejects.toBeInstanceOf(WalFailedError);
      expect(wal.failure()).toBeInstanceOf(WalFailedError);
      expect(logs.join('\n')).toMatch(/failed/);
      await wal.close();
      const r = await Wal.open(dir);
      expect(r.entries.slice(0, 5).map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
      expect(r.entries.length).toBeLessThanOrEqual(6); // entry 6 may or may not have reached the disk
      await r.wal.close();
    });

    it('ENOSPC: clear error, no corruption, recovers when space returns', async () => {
      const ffs = new FaultyFileSystem();
      const wal = await Wal.create(dir, META, { fs: ffs, segmentSize: 8192 });
      let acked = 0;
      for (let i = 1; i <= 20; i++) {
        await wal.save(hs(1, i), [entry(i, 1, 'x'.repeat(100))]);
        acked = i;
      }
      ffs.spaceLeft = 100; // the next write (a 130-byte entry record + hard state) only partly fits
      const errs: unknown[] = [];
      for (let i = 21; i <= 30; i++) {
        try {
          await wal.save(hs(1, i), [entry(i, 1, 'x'.repeat(100))]);
          acked = i;
        } catch (e) {
          errs.push(e);
        }
      }
      expect(errs.length).toBeGreaterThan(0);
      const e0 = errs[0] as WalFailedError;
      expect(e0).toBeInstanceOf(WalFailedError);
      expect(e0.code).toBe('ENOSPC');
      expect(e0.message).toMatch(/disk is full/);
      await wal.close();

      ffs.spaceLeft = Infinity; // space returns
      const logs: string[] = [];
      const r = await Wal.open(dir, { fs: ffs, segmentSize: 8192, log: (m) => logs.push(m) });
      expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: acked }, (_, i) => i + 1));
      expect(logs.join('\n')).toMatch(/torn tail/);
      for (let i = acked + 1; i <= acked + 100; i++) await r.wal.save(hs(1, i), [entry(i, 1, 'y'.repeat(100))]);
      await r.wal.close();
      const r2 = await Wal.open(dir, { segmentSize: 8192 });
      expect(r2.entries.map((e) => e.index)).toEqual(Array.from({ length: acked + 100 }, (_, i) => i + 1));
      await r2.wal.close();
    });

    it('ENOSPC while creating the next segment leaves the WAL recoverable', async () => {
      const ffs = new FaultyFileSystem();
      const wal = await Wal.create(dir, META, { fs: ffs, segmentSize: 1024 });
      let acked = 0;
      let failed = false;
      for (let i = 1; i <= 40 && !failed; i++) {
        // at most a few bytes of room beyond the current segment
        if (i === 10) ffs.spaceLeft = 30;
        try {
          await wal.save(undefined, [entry(i, 1, 'z'.repeat(60))]);
          acked = i;
        } catch (e) {
          expect(e).toBeInstanceOf(WalFailedError);
          failed = true;
        }
      }
      expect(failed).toBe(true);
      await wal.close();
      ffs.spaceLeft = Infinity;
      const r = await Wal.open(dir, { fs: ffs, segmentSize: 1024 });
      expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: acked }, (_, i) => i + 1));
      await r.wal.save(undefined, [entry(acked + 1)]);
      await r.wal.close();
      expect(nodeFs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    });

    it('torn writes anywhere in a run that rolls over segments: acknowledged data recovers, stray .tmp removed', async () => {
      for (let budget = 0; budget < 1400; budget += 23) {
        const d = path.join(path.dirname(dir), `tear-${budget}`);
        const ffs = new FaultyFileSystem();
        const wal = await Wal.create(d, META, { fs: ffs, segmentSize: 1024 });
        ffs.tearAfterBytes = budget;
        let acked = 0;
        for (let i = 1; i <= 40; i++) {
          try {
            await wal.save(hs(1, i), [entry(i, 1, 'r'.repeat(80))]);
            acked = i;
          } catch (e) {
            expect(e).toBeInstanceOf(WalFailedError);
            break;
          }
        }
        expect(acked).toBeLessThan(40);
        await wal.close();
        const r = await Wal.open(d, { segmentSize: 1024 });
        // exactly the acknowledged prefix, plus at most the torn save if it fully reached the disk before dying
        expect(r.entries.length).toBeGreaterThanOrEqual(acked);
        expect(r.entries.length).toBeLessThanOrEqual(acked + 1);
        expect(r.entries.map((e) => e.index)).toEqual(Array.from({ length: r.entries.length }, (_, i) => i + 1));
        await r.wal.save(undefined, [entry(r.entries.length + 1)]);
        await r.wal.close();
        expect(nodeFs.readdirSync(d).filter((n) => n.endsWith('.tmp'))).toEqual([]);
        const r2 = await Wal.open(d, { lock: false });
        expect(r2.entries.length).toBe(r.entries.length + 1);
        await r2.wal.close();
      }
    });
  });

  it('an empty WAL (just created) reopens with nothing in it', async () => {
    const wal = await Wal.create(dir, { memberId: 1n, clusterId: 2n });
    await wal.close();
    const r = await Wal.open(dir, { fs: new NodeFileSystem() });
    expect(r.entries).toEqual([]);
    expect(r.hardState).toEqual(emptyHardState());
    expect(r.metadata).toEqual({ memberId: 1n, clusterId: 2n, data: Buffer.alloc(0) });
    await r.wal.close();
  });
});
