import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { FaultyFileSystem } from './fs';
import { WalLockedError } from './errors';
import { LOCK_FILE } from './lock';
import { Wal } from './wal';
import { entry, rmDir, tmpDir } from './test-helpers';

const META = { memberId: 1n, clusterId: 2n };

describe('WAL directory lock', () => {
  let dir: string;
  beforeEach(() => {
    dir = path.join(tmpDir(), 'wal');
  });
  afterEach(() => rmDir(path.dirname(dir)));

  it('a second open of the same directory is refused while the first is open; close releases it', async () => {
    const wal = await Wal.create(dir, META);
    const lock = nodeFs.readFileSync(path.join(dir, LOCK_FILE), 'utf8');
    expect(lock.split(' ')[0]).toBe(String(process.pid));
    await expect(Wal.open(dir)).rejects.toBeInstanceOf(WalLockedError);
    await expect(Wal.create(dir, META)).rejects.toBeInstanceOf(WalLockedError);
    await wal.close();
    expect(nodeFs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    const r = await Wal.open(dir);
    await expect(Wal.open(dir)).rejects.toThrow(/in use by another process/);
    await r.wal.close();
  });

  it('a lock left by a dead process is reclaimed', async () => {
    const wal = await Wal.create(dir, META);
    await wal.close();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    nodeFs.writeFileSync(path.join(dir, LOCK_FILE), `${dead} ${os.hostname()} feedface\n`);
    const r = await Wal.open(dir);
    expect(nodeFs.readFileSync(path.join(dir, LOCK_FILE), 'utf8').split(' ')[0]).toBe(String(process.pid));
    await r.wal.close();
  });

  it('a lock held by a live process is respected', async () => {
    const wal = await Wal.create(dir, META);
    await wal.close();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      nodeFs.writeFileSync(path.join(dir, LOCK_FILE), `${child.pid} ${os.hostname()} cafe\n`);
      const err = await Wal.open(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WalLockedError);
      expect((err as Error).message).toContain(`pid ${child.pid}`);
      const other = `${child.pid} some-other-host cafe\n`;
      nodeFs.writeFileSync(path.join(dir, LOCK_FILE), other);
      await expect(Wal.open(dir)).rejects.toBeInstanceOf(WalLockedError);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('after a simulated crash, a fresh open in the same process reclaims the lock', async () => {
    const ffs = new FaultyFileSystem();
    const wal = await Wal.create(dir, META, { fs: ffs });
    await wal.save(undefined, [entry(1)]);
    ffs.crash();
    await expect(wal.save(undefined, [entry(2)])).rejects.toThrow(/simulated crash/);
    await wal.close(); // cannot remove the lock file: the "process" is dead
    expect(nodeFs.existsSync(path.join(dir, LOCK_FILE))).toBe(true);
    const r = await Wal.open(dir);
    expect(r.entries.map((e) => e.index)).toEqual([1]);
    await r.wal.close();
  });
});
