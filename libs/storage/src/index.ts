/**
 * @nestcd/storage: everything under --data-dir: the write-ahead log, snapshot files, the directory layout.
 * All file access goes through a FileSystem (fs.ts) so tests can count syncs and inject faults.
 */
export type { FileSystem, FileHandle, FileStat, OpenFlags, FaultyStats } from './fs';
export { NodeFileSystem, FaultyFileSystem, SimulatedCrashError, defaultFileSystem } from './fs';
export {
  WalCorruptionError,
  WalFailedError,
  WalClosedError,
  WalExistsError,
  WalNotFoundError,
  WalLockedError,
  WalSnapshotMismatchError,
} from './errors';
export type { WalOptions, WalOpenResult, WalMetadata, SaveOptions, SnapshotMarker } from './wal';
export { Wal, DEFAULT_SEGMENT_SIZE, segmentName, parseSegmentName } from './wal';
export type { SnapshotFileInfo } from './snapshotter';
export { Snapshotter, SnapshotFileWriter, SnapshotCorruptError, snapshotName, encodeSnapshot, decodeSnapshot } from './snapshotter';
export type { DataDirLayout } from './data-dir';
export { memberDir, walDir, snapDir, layout, ensureDataDir, PRIVATE_DIR_MODE } from './data-dir';
export { LOCK_FILE } from './lock';
