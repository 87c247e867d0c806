import * as grpc from '@grpc/grpc-js';
import { Event, Watcher } from '@nestcd/mvcc';
import type { EtcdServer } from '@nestcd/server';
import { eventOut, headerOut, requestSize, toNumber } from './codec';
import type { PbWatchCreateRequest, PbWatchRequest } from './wire';

const FILTER_NOPUT = 0;
const FILTER_NODELETE = 1;

export interface WatchOptions {
  /** how often watchers created with progress_notify hear the current revision (etcd: 10 minutes). */
  progressIntervalMs?: number;
  /** Why the stream's user may not watch [key, rangeEnd) (the auth guard), or undefined; a refusal cancels the watcher as etcd does. */
  watchRefusal?: (call: grpc.ServerDuplexStream<PbWatchRequest, object>, key: Buffer, rangeEnd: Buffer) => string | undefined;
}

interface StreamWatcher {
  id: number;
  watcher?: Watcher;
  progressNotify: boolean;
  fragment: boolean;
  paused: boolean;
}

/**
 * One Watch stream: any number of watchers multiplexed on it. The store pushes events to synced watchers
 * during apply; when the stream's buffer fills we tell the store to stop (it parks the watcher as unsynced)
 * and resume it on 'drain', so a slow client never slows writers.
 */
class WatchSession {
  private readonly watchers = new Map<number, StreamWatcher>();
  private nextId = 0;
  private closed = false;
  private progressTimer?: NodeJS.Timeout;

  constructor(
    private readonly call: grpc.ServerDuplexStream<PbWatchRequest, object>,
    private readonly server: EtcdServer,
    private readonly options: WatchOptions,
  ) {
    call.on('data', (req: PbWatchRequest) => this.onRequest(req));
    call.on('drain', () => this.resumePaused());
    call.on('end', () => this.close(true));
    call.on('cancelled', () => this.close(false));
    call.on('error', () => this.close(false));
    const interval = options.progressIntervalMs ?? 10 * 60 * 1000;
    this.progressTimer = setInterval(() => this.notifyProgress(), interval);
    this.progressTimer.unref();
  }

  private onRequest(req: PbWatchRequest): void {
    if (this.closed) return;
    switch (req.requestUnion) {
      case 'createRequest': return this.create(req.createRequest!);
      case 'cancelRequest': return this.cancel(toNumber(req.cancelRequest!.watchId));
      case 'progressRequest': return this.progressAll();
      default: return;
    }
  }

  private create(cr: PbWatchCreateRequest): void {
    const store = this.server.store;
    const key = cr.key ?? Buffer.alloc(0);
    const rangeEnd = cr.rangeEnd ?? Buffer.alloc(0);
    const rejected = (reason: string): void => {
      this.send({ header: headerOut(this.server.header()), watchId: -1, created: true, canceled: true, cancelReason: reason });
    };

    let id = toNumber(cr.watchId);
    if (id === 0) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      return rejected('mvcc: duplicate watch ID provided on the WatchStream');
    }
    const refusal = this.options.watchRefusal?.(this.call, key, rangeEnd);
    if (refusal !== undefined) return rejected(refusal);
    const isFromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
    if (rangeEnd.length > 0 && !isFromKey && Buffer.compare(key, rangeEnd) >= 0) {
      return rejected('mvcc: watcher range is empty');
    }
    const filters = cr.filters ?? [];
    const entry: StreamWatcher = { id, progressNotify: cr.progressNotify, fragment: cr.fragment, paused: false };
    this.watchers.set(id, entry);
    this.send({ header: headerOut(this.server.header()), watchId: id, created: true });
    entry.watcher = store.watch(
      {
        key,
        rangeEnd,
        startRevision: toNumber(cr.startRevision),
        prevKv: cr.prevKv,
        noPut: filters.includes(FILTER_NOPUT),
        noDelete: filters.includes(FILTER_NODELETE),
      },
      (events, revision) => this.deliver(entry, events, revision),
      (compactRevision) => {
        this.watchers.delete(id);
        // etcd's compaction notice carries no revision in its header.
        this.send({
          header: headerOut(this.server.header(0)),
          watchId: id,
          canceled: true,
          compactRevision,
        });
      },
    );
  }

  /** Returns false when the stream is backed up, which parks the watcher in the store until 'drain'. */
  private deliver(entry: StreamWatcher, events: Event[], revision: number): boolean {
    if (this.closed || !this.watchers.has(entry.id)) return true;
    const header = headerOut(this.server.header(revision));
    const pbEvents = events.map(eventOut);
    let ok = true;
    if (entry.fragment && requestSize(events) > this.server.config.maxRequestBytes) {
      for (const chunk of fragments(pbEvents, this.server.config.maxRequestBytes)) {
        ok = this.send({ header, watchId: entry.id, events: chunk.events, fragment: !chunk.last }) && ok;
      }
    } else {
      ok = this.send({ header, watchId: entry.id, events: pbEvents });
    }
    if (!ok) entry.paused = true;
    return ok;
  }

  private resumePaused(): void {
    for (const entry of this.watchers.values()) {
      if (!entry.paused) continue;
      entry.paused = false;
      entry.watcher?.resume();
    }
  }

  private cancel(id: number): void {
    const entry = this.watchers.get(id);
    if (!entry) return;
    this.watchers.delete(id);
    entry.watcher?.cancel();
    this.send({ header: headerOut(this.server.header()), watchId: id, canceled: true });
  }

  /** etcd answers a progress request once, for the whole stream, with watch_id -1. */
  private progressAll(): void {
    for (const entry of this.watchers.values()) if (entry.watcher && !entry.watcher.synced) return;
    this.send({ header: headerOut(this.server.header()), watchId: -1 });
  }

  private notifyProgress(): void {
    for (const entry of this.watchers.values()) {
      if (entry.progressNotify && entry.watcher?.synced) {
        this.send({ header: headerOut(this.server.header()), watchId: entry.id });
      }
    }
  }

  private send(resp: object): boolean {
    if (this.closed) return true;
    return this.call.write(resp);
  }

  private close(graceful: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (this.progressTimer) clearInterval(this.progressTimer);
    for (const entry of this.watchers.values()) entry.watcher?.cancel();
    this.watchers.clear();
    if (graceful) this.call.end();
  }
}

function* fragments<T>(events: T[], maxBytes: number): Generator<{ events: T[]; last: boolean }> {
  let chunk: T[] = [];
  let size = 0;
  for (let i = 0; i < events.length; i++) {
    const s = requestSize(events[i]);
    if (chunk.length > 0 && size + s > maxBytes) {
      yield { events: chunk, last: false };
      chunk = [];
      size = 0;
    }
    chunk.push(events[i]);
    size += s;
  }
  yield { events: chunk, last: true };
}

export function watchHandlers(server: EtcdServer, options: WatchOptions = {}) {
  return {
    Watch: (call: grpc.ServerDuplexStream<PbWatchRequest, object>) => {
      new WatchSession(call, server, options);
    },
  };
}
