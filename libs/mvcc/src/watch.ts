// Watch types and the watcher handle. The store keeps watchers in a synced set (fed live, inside apply) and an
// unsynced set (fed from the event history by scheduled catch-up passes), like etcd's watchableStore.
import type { Event } from './types';

export interface WatchOptions {
  key: Buffer;
  /** empty/undefined: the single key; "\0": every key >= key; otherwise [key, rangeEnd). */
  rangeEnd?: Buffer;
  /** <= 0 or undefined: from currentRevision + 1. */
  startRevision?: number;
  prevKv?: boolean;
  noPut?: boolean;
  noDelete?: boolean;
}

/**
 * Receives events. `revision` is the event revision for live deliveries (one call per revision) and the store's
 * current revision for catch-up batches (which may span several whole revisions, like etcd's header revision).
 * Return false when the consumer is backed up: the events passed in are taken, nothing more is pushed until
 * `resume()`. Event objects (and their kv objects) are shared: treat them as read-only.
 */
export type WatchSink = (events: Event[], revision: number) => boolean;

export interface Watcher {
  readonly id: number;
  readonly synced: boolean;
  cancel(): void;
  /** the consumer drained: schedule a catch-up pass from where it stopped. */
  resume(): void;
}

/** @internal what a watcher needs from its store. */
export interface WatcherHost {
  cancelWatcher(w: WatcherImpl): void;
  resumeWatcher(w: WatcherImpl): void;
}

/** @internal */
export enum RangeKind {
  Single = 0,
  FromKey = 1,
  Range = 2,
}

/** @internal */
export class WatcherImpl implements Watcher {
  /** @internal */ _synced = false;
  /** @internal */ paused = false;
  /** @internal */ cancelled = false;
  /** @internal the next revision this watcher needs. */
  nextRev = 0;

  constructor(
    readonly id: number,
    /** @internal moves when a restored store adopts the watchers of the one it replaces. */ public host: WatcherHost,
    /** @internal */ readonly ks: string,
    /** @internal */ readonly kind: RangeKind,
    /** @internal */ readonly es: string,
    /** @internal */ readonly prevKv: boolean,
    /** @internal */ readonly noPut: boolean,
    /** @internal */ readonly noDelete: boolean,
    /** @internal */ readonly sink: WatchSink,
    /** @internal */ readonly onCompacted: (compactRevision: number) => void,
  ) {}

  get synced(): boolean {
    return this._synced;
  }

  /** @internal */
  matches(k: string): boolean {
    switch (this.kind) {
      case RangeKind.Single:
        return k === this.ks;
      case RangeKind.FromKey:
        return k >= this.ks;
      default:
        return k >= this.ks && k < this.es;
    }
  }

  cancel(): void {
    this.host.cancelWatcher(this);
  }

  resume(): void {
    this.host.resumeWatcher(this);
  }
}
