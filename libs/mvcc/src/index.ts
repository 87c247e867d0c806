export * from './types';
export { MvccStore, MAX_LEASE_TTL, WATCH_BATCH_MAX_EVENTS, SnapshotCapture } from './store';
export type { MvccOptions, SnapshotRestore, CaptureOptions } from './store';
export { validateTxn } from './validate';
export type { WatchOptions, WatchSink, Watcher } from './watch';
export { decodeCommand, encodeCommand, readCommand, writeCommand } from './command-codec';
export { Reader, Writer } from './codec';
