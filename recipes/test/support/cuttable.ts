/**
 * A KvClient wrapper that can be cut off from the store, as a network partition looks from the client: every call
 * fails with UNAVAILABLE and watches go quiet; reconnect() resumes watches from the last delivered revision (or
 * reports compaction), as a real client does after a disconnect.
 */
import { ClientError, ClientErrorCode, KvClient, Watch, WatchHandlers, WatchRequest } from '@nestcd/client';

export interface Cuttable {
  client: KvClient;
  cut(): void;
  reconnect(): void;
  /** stops everything without revoking anything, as a killed process would. */
  kill(): void;
}

export function cuttable(inner: KvClient): Cuttable {
  let cut = false;
  let killed = false;
  const watches = new Set<{ resume(): void; pause(): void }>();
  const fail = () => Promise.reject(new ClientError(ClientErrorCode.UNAVAILABLE, 'connection cut off by the test'));
  const guard = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) => (...a: A): Promise<R> => (cut || killed ? fail() : fn(...a));

  const watch = (req: WatchRequest, handlers: WatchHandlers): Watch => {
    let last = (req.startRevision ?? 0) > 0 ? req.startRevision! - 1 : -1;
    let current: Watch | undefined;
    let cancelled = false;
    const open = (start?: number) => {
      const w: Watch = inner.watch(
        { ...req, startRevision: start },
        {
          onEvents: (b) => {
            if (cut || cancelled || current !== w) return;
            for (const e of b.events) last = Math.max(last, e.kv.modRevision);
            handlers.onEvents(b);
          },
          onProgress: (r) => !cut && handlers.onProgress?.(r),
          onCompacted: (r) => !cut && current === w && handlers.onCompacted?.(r),
          onError: (e) => !cut && current === w && handlers.onError?.(e),
        },
      );
      current = w;
      void w.ready.then(() => {
        // a watch from "now" resumes after the revision it started at
        if (last < 0) last = w.lastRevision;
      }, () => undefined);
    };
    const entry = {
      pause() {
        const w = current;
        current = undefined;
        void w?.cancel().catch(() => undefined);
        handlers.onDisconnected?.(new Error('cut off'));
      },
      resume() {
        if (cancelled) return;
        open(last + 1);
        handlers.onReconnected?.();
      },
    };
    watches.add(entry);
    if (cut || killed) current = undefined;
    else open(req.startRevision);
    return {
      get ready() {
        return current?.ready ?? Promise.resolve();
      },
      get lastRevision() {
        return last;
      },
      cancel: async () => {
        cancelled = true;
        watches.delete(entry);
        await current?.cancel();
        current = undefined;
      },
    };
  };

  const client: KvClient = {
    range: guard((r) => inner.range(r)),
    put: guard((r) => inner.put(r)),
    deleteRange: guard((r) => inner.deleteRange(r)),
    txn: guard((r) => inner.txn(r)),
    compact: guard((r: number, p?: boolean) => inner.compact(r, p)),
    watch,
    leaseGrant: guard((t: number, id?: bigint) => inner.leaseGrant(t, id)),
    leaseRevoke: guard((id: bigint) => inner.leaseRevoke(id)),
    leaseTimeToLive: guard((id: bigint, k?: boolean) => inner.leaseTimeToLive(id, k)),
    leaseLeases: guard(() => inner.leaseLeases()),
    leaseKeepAliveOnce: guard((id: bigint) => inner.leaseKeepAliveOnce(id)),
    leaseKeepAlive: (id, h) => inner.leaseKeepAlive(id, h),
    memberList: guard(() => inner.memberList()),
    status: guard(() => inner.status()),
    close: async () => {
      for (const w of watches) w.pause();
    },
  };
  return {
    client,
    cut() {
      cut = true;
      for (const w of watches) w.pause();
    },
    reconnect() {
      cut = false;
      for (const w of watches) w.resume();
    },
    kill() {
      killed = true;
      for (const w of watches) w.pause();
    },
  };
}
