import * as path from 'node:path';
import { FileSystem, defaultFileSystem } from './fs';

/**
 * etcd's data-dir layout:
 *   <data-dir>/member/wal   WAL segments (or --wal-dir)
 *   <data-dir>/member/snap  snapshot files
 * Directories are created with mode 0700, like etcd (fileutil.PrivateDirMode).
 */
export const PRIVATE_DIR_MODE = 0o700;

export function memberDir(dataDir: string): string {
  return path.join(dataDir, 'member');
}

export function walDir(dataDir: string, walDirFlag?: string): string {
  return walDirFlag && walDirFlag !== '' ? walDirFlag : path.join(memberDir(dataDir), 'wal');
}

export function snapDir(dataDir: string): string {
  return path.join(memberDir(dataDir), 'snap');
}

export interface DataDirLayout {
  dataDir: string;
  memberDir: string;
  walDir: string;
  snapDir: string;
}

export function layout(dataDir: string, walDirFlag?: string): DataDirLayout {
  return { dataDir, memberDir: memberDir(dataDir), walDir: walDir(dataDir, walDirFlag), snapDir: snapDir(dataDir) };
}

/**
 * Creates the data dir, member dir, snap dir and WAL dir (mode 0700; existing directories are left as they are,
 * like etcd's TouchDirAll) and returns the layout. `log` is told when an existing directory is more open than 0700.
 */
export async function ensureDataDir(
  dataDir: string,
  walDirFlag?: string,
  fs: FileSystem = defaultFileSystem,
  log?: (msg: string) => void,
): Promise<DataDirLayout> {
  const l = layout(dataDir, walDirFlag);
  for (const dir of [l.dataDir, l.memberDir, l.snapDir, l.walDir]) {
    await fs.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const st = await fs.stat(dir);
    if (!st.isDirectory) throw new Error(`${dir} exists and is not a directory`);
    if ((st.mode & 0o077) !== 0) log?.(`storage: ${dir} has permissions ${st.mode.toString(8)}; etcd recommends 700`);
  }
  return l;
}
