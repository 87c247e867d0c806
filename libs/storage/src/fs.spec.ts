import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import { FaultyFileSystem, FileHandle, NodeFileSystem, SimulatedCrashError, readWholeFile, writeFully, writeFullyNow } from './fs';
import { ensureDataDir, layout, memberDir, snapDir, walDir } from './data-dir';
import { rmDir, tmpDir } from './test-helpers';

describe('FileSystem', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(() => rmDir(dir));

  it('NodeFileSystem: write at offset, read, truncate, sync, rename, readdir, unlink, fsyncDir', async () => {
    const fs = new NodeFileSystem();
    const f = path.join(dir, 'a');
    const fh = await fs.open(f, 'wx');
    await writeFully(fh, Buffer.from('hello'), 3);
    writeFullyNow(fh, Buffer.from('HE'), 3);
    expect(fh.writeNow(Buffer.from('xyz'), 1, 2, 8)).toBe(2);
    await fh.truncate(16);
    await fh.datasync();
    fh.datasyncNow();
    await fh.sync();
    expect((await fh.stat()).size).toBe(16);
    await fh.close();
    await expect(fs.open(f, 'wx')).rejects.toMatchObject({ code: 'EEXIST' });
    expect((await readWholeFile(fs, f)).subarray(0, 8)).toEqual(Buffer.from('\0\0\0HEllo'));
    expect((await readWholeFile(fs, f)).subarray(8, 10)).toEqual(Buffer.from('yz'));
    await fs.rename(f, path.join(dir, 'b'));
    await fs.fsyncDir(dir);
    expect(await fs.readdir(dir)).toEqual(['b']);
    await fs.mkdir(path.join(dir, 'x', 'y'), { recursive: true });
    expect((await fs.stat(path.join(dir, 'x', 'y'))).isDirectory).toBe(true);
    await fs.unlink(path.join(dir, 'b'));
    await expect(fs.stat(path.join(dir, 'b'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  // Both ways of writing (through the thread pool, and writeNow on the calling thread) meet the same faults.
  const writers: Array<[string, (fh: FileHandle, buf: Buffer, offset: number, length: number, position: number) => Promise<number>]> = [
    ['write', (fh, buf, offset, length, position) => fh.write(buf, offset, length, position)],
    ['writeNow', async (fh, buf, offset, length, position) => fh.writeNow(buf, offset, length, position)],
  ];

  it.each(writers)('FaultyFileSystem (%s): torn write writes a prefix, then the process is dead', async (_, write) => {
    const ffs = new FaultyFileSystem();
    const f = path.join(dir, 't');
    const fh = await ffs.open(f, 'w');
    ffs.tearAfterBytes = 4;
    await expect(write(fh, Buffer.from('abcdefgh'), 0, 8, 0)).rejects.toBeInstanceOf(SimulatedCrashError);
    await expect(fh.datasync()).rejects.toBeInstanceOf(SimulatedCrashError);
    await expect(ffs.readdir(dir)).rejects.toBeInstanceOf(SimulatedCrashError);
    await fh.close();
    expect(nodeFs.readFileSync(f, 'utf8')).toBe('abcd');
  });

  it.each(writers)('FaultyFileSystem (%s): short writes, EIO on fdatasync, ENOSPC and recovery', async (_, write) => {
    const ffs = new FaultyFileSystem();
    const fh = await ffs.open(path.join(dir, 's'), 'w');
    ffs.shortWrites = true;
    expect(await write(fh, Buffer.from('abcdefgh'), 0, 8, 0)).toBe(4);
    ffs.shortWrites = false;
    ffs.failFsync = 'once';
    await expect(fh.datasync()).rejects.toMatchObject({ code: 'EIO' });
    await fh.datasync();
    ffs.spaceLeft = 3;
    expect(await write(fh, Buffer.from('12345'), 0, 5, 0)).toBe(3);
    await expect(write(fh, Buffer.from('45'), 0, 2, 3)).rejects.toMatchObject({ code: 'ENOSPC' });
    ffs.spaceLeft = Infinity;
    expect(await write(fh, Buffer.from('45'), 0, 2, 3)).toBe(2);
    await fh.close();
    expect(nodeFs.readFileSync(path.join(dir, 's'), 'utf8')).toBe('12345');
    await ffs.flipBit(path.join(dir, 's'), 0, 0);
    expect(nodeFs.readFileSync(path.join(dir, 's'), 'utf8')).toBe('02345');
    expect(ffs.stats.datasyncs).toBe(2);
    expect(ffs.stats.datasyncsCompleted).toBe(1);
  });

  it('FaultyFileSystem: an fdatasync on the calling thread meets the same faults and is counted apart', async () => {
    const ffs = new FaultyFileSystem();
    const fh = await ffs.open(path.join(dir, 'n'), 'w');
    fh.writeNow(Buffer.from('abc'), 0, 3, 0);
    fh.datasyncNow();
    ffs.failFsync = 'once';
    expect(() => fh.datasyncNow()).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'fdatasync' }));
    await fh.datasync();
    expect(ffs.stats).toMatchObject({ datasyncs: 3, datasyncsNow: 2, datasyncsCompleted: 2 });
    // a hook that would hold the sync open cannot; one that returns at once runs first (here: the process dies)
    ffs.beforeDatasync = () => Promise.resolve();
    expect(() => fh.datasyncNow()).toThrow(/beforeDatasync/);
    ffs.beforeDatasync = () => ffs.crash();
    expect(() => fh.datasyncNow()).toThrow(SimulatedCrashError);
    ffs.beforeDatasync = undefined;
    expect(() => fh.datasyncNow()).toThrow(SimulatedCrashError);
    await fh.close();
  });
});

describe('data dir layout', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(() => rmDir(dir));

  it('member/wal and member/snap, --wal-dir elsewhere, created 0700', async () => {
    const dd = path.join(dir, 'data');
    expect(memberDir(dd)).toBe(path.join(dd, 'member'));
    expect(walDir(dd)).toBe(path.join(dd, 'member', 'wal'));
    expect(walDir(dd, '/elsewhere/wal')).toBe('/elsewhere/wal');
    expect(snapDir(dd)).toBe(path.join(dd, 'member', 'snap'));
    const l = await ensureDataDir(dd, path.join(dir, 'wal-dir'));
    expect(l).toEqual(layout(dd, path.join(dir, 'wal-dir')));
    for (const d of [l.dataDir, l.memberDir, l.snapDir, l.walDir]) expect(nodeFs.statSync(d).mode & 0o777).toBe(0o700);
    nodeFs.chmodSync(l.snapDir, 0o755);
    const logs: string[] = [];
    await ensureDataDir(dd, path.join(dir, 'wal-dir'), undefined, (m) => logs.push(m));
    expect(logs.join('\n')).toMatch(/755/);
  });
});
