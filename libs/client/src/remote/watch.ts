// All watches of a client multiplexed on one bidi Watch stream. Creates are sent one at a time (etcd answers each
// with the watch ID it assigned, in order). After the stream breaks, every watch is re-created on a new stream from
// the revision after the last one it delivered, and events at or below that revision are dropped, so nothing is
// missed or repeated across reconnects.
import * as grpc from '@grpc/grpc-js';
import { ClientError, ClientErrorCode } from '../errors';
import type { Watch, WatchBatch, WatchHandlers, WatchRequest } from '../types';
import { Codec, decodeHeader, endField, num, type Wire } from './codec';
import { Connection, toClientError, type Endpoint } from './connection';

const FATAL_STREAM_CODES = new Set([
  ClientErrorCode.PERMISSION_DENIED,
  ClientErrorCode.INVALID_ARGUMENT,
  ClientErrorCode.UNIMPLEMENTED,
  ClientErrorCode.FAILED_PRECONDITION,
]);

class WatchState implements Watch {
  serverId: string | undefined;
  /** the first revision not yet delivered (0: not known yet, the watch starts "from now"). */
  nextRevision: number;
  lastRevision: number;
  created = false;
  disconnected = false;
  cancelled = false;
  readonly ready: Promise<void>;
  settleReady!: (err?: Error) => void;

  constructor(
    readonly req: WatchRequest,
    readonly handlers: WatchHandlers,
    private readonly owner: WatchStreams,
  ) {
    this.nextRevision = req.startRevision ?? 0;
    this.lastRevision = Math.max(0, (req.startRevision ?? 0) - 1);
    this.ready = new Promise<void>((resolve, reject) => {
      let settled = false;
      this.settleReady = (err) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
    });
    this.ready.catch(() => undefined); // a caller that never awaits `ready` must not crash the process
  }

  cancel(): Promise<void> {
    this.owner.cancel(this);
    return Promise.resolve();
  }
}

export class WatchStreams {
  private stream: grpc.ClientDuplexStream<Wire, Wire> | undefined;
  private streamEndpoint: Endpoint | undefined;
  private generation = 0;
  private connecting = false;
  private closed = false;
  private readonly watches = new Set<WatchState>();
  private readonly byServerId = new Map<string, WatchState>();
  private pending: WatchState[] = [];
  private creating: WatchState | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly conn: Connection,
    private readonly codec: Codec,
  ) {}

  watch(req: WatchRequest, handlers: WatchHandlers): Watch {
    const ws = new WatchState(req, handlers, this);
    if (this.closed) {
      const err = new ClientError(ClientErrorCode.CANCELLED, 'grpc: the client connection is closing');
      ws.settleReady(err);
      queueMicrotask(() => handlers.onError?.(err));
      return ws;
    }
    this.watches.add(ws);
    this.pending.push(ws);
    this.pump();
    return ws;
  }

  /** Asks the server for a progress notification on every watch of the stream. */
  requestProgress(): void {
    this.stream?.write({ progressRequest: {} });
  }

  cancel(ws: WatchState): void {
    if (ws.cancelled) return;
    ws.cancelled = true;
    this.watches.delete(ws);
    this.pending = this.pending.filter((w) => w !== ws);
    ws.settleReady(new ClientError(ClientErrorCode.CANCELLED, 'watch cancelled'));
    if (ws.serverId !== undefined) {
      // its events still in flight are dropped: the ID no longer maps to a watch
      this.byServerId.delete(ws.serverId);
      this.stream?.write({ cancelRequest: { watchId: ws.serverId } });
    }
    if (this.watches.size === 0) this.dropStream();
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.dropStream();
    const err = new ClientError(ClientErrorCode.CANCELLED, 'grpc: the client connection is closing');
    for (const ws of [...this.watches]) this.finish(ws, err);
  }

  /** Ends the stream on purpose (no watches left, or closing): its events are no longer ours. */
  private dropStream(): void {
    this.generation++;
    const s = this.stream;
    this.stream = undefined;
    this.creating = undefined;
    this.byServerId.clear();
    if (s) {
      s.on('error', () => undefined);
      s.cancel();
    }
    for (const ws of this.watches) {
      ws.serverId = undefined;
      if (!this.pending.includes(ws)) this.pending.push(ws);
    }
  }

  private finish(ws: WatchState, err: Error | undefined, compactRevision?: number): void {
    this.watches.delete(ws);
    this.pending = this.pending.filter((w) => w !== ws);
    if (ws.serverId !== undefined) this.byServerId.delete(ws.serverId);
    if (ws.cancelled) return;
    ws.cancelled = true;
    if (compactRevision !== undefined) {
      ws.settleReady();
      ws.handlers.onCompacted?.(compactRevision);
      if (!ws.handlers.onCompacted) ws.handlers.onError?.(new ClientError(ClientErrorCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'));
    } else if (err) {
      ws.settleReady(err);
      ws.handlers.onError?.(err);
    }
  }

  /** Opens a stream if watches need one, then sends the next create. */
  private pump(): void {
    if (this.closed || this.watches.size === 0) return;
    if (!this.stream) {
      void this.connect();
      return;
    }
    if (this.creating) return;
    const ws = this.pending.shift();
    if (!ws) return;
    this.creating = ws;
    const { key, rangeEnd } = this.codec.ns.range(ws.req.key, ws.req.rangeEnd);
    this.stream.write({
      createRequest: {
        key,
        ...endField(rangeEnd),
        startRevision: String(ws.nextRevision),
        progressNotify: ws.req.progressNotify ?? false,
        filters: (ws.req.filters ?? []).map((f) => (f === 'noput' ? 0 : 1)),
        prevKv: ws.req.prevKv ?? false,
      },
    });
  }

  private async connect(): Promise<void> {
    if (this.connecting || this.stream || this.closed) return;
    this.connecting = true;
    try {
      const deadline = Date.now() + this.conn.dialTimeoutMs * this.conn.endpoints.length;
      const ep = await this.conn.ready(deadline);
      const md = await this.conn.metadata(ep, deadline);
      if (this.closed || this.watches.size === 0) return;
      const gen = ++this.generation;
      const stream = (ep.stubs.Watch.watch as (md: grpc.Metadata) => grpc.ClientDuplexStream<Wire, Wire>)(md);
      this.stream = stream;
      this.streamEndpoint = ep;
      stream.on('data', (res: Wire) => gen === this.generation && this.onResponse(res));
      stream.on('error', (err: Error) => gen === this.generation && this.onBroken(err));
      stream.on('end', () => gen === this.generation && this.onBroken(new ClientError(ClientErrorCode.UNAVAILABLE, 'watch stream closed by the server')));
    } catch (err) {
      this.scheduleReconnect(toClientError(err));
      return;
    } finally {
      this.connecting = false;
    }
    this.pump();
  }

  private scheduleReconnect(err: ClientError): void {
    if (this.closed || this.watches.size === 0 || this.reconnectTimer) return;
    if (FATAL_STREAM_CODES.has(err.code)) {
      for (const ws of [...this.watches]) this.finish(ws, err);
      return;
    }
    this.failures++;
    const delay = Math.min(50 * 2 ** Math.min(this.failures, 5), 1000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.pump();
    }, delay);
  }

  private onBroken(error: Error): void {
    const err = toClientError(error);
    const ep = this.streamEndpoint;
    this.generation++;
    this.stream = undefined;
    if (err.code === ClientErrorCode.UNAUTHENTICATED) this.conn.resetToken();
    this.creating = undefined;
    this.byServerId.clear();
    if (ep && err.code === ClientErrorCode.UNAVAILABLE) this.conn.failover(ep);
    // re-create every live watch, in the order they were first made
    this.pending = [...this.watches];
    for (const ws of this.watches) {
      ws.serverId = undefined;
      if (ws.created && !ws.disconnected) {
        ws.disconnected = true;
        ws.handlers.onDisconnected?.(err);
      }
    }
    this.scheduleReconnect(err);
  }

  private onResponse(res: Wire): void {
    const header = decodeHeader(res.header);
    const watchId = String(res.watchId ?? '0');
    if (res.created) {
      const ws = this.creating;
      this.creating = undefined;
      this.failures = 0;
      if (ws && !ws.cancelled) {
        if (res.canceled) {
          const compact = num(res.compactRevision);
          if (compact > 0) this.finish(ws, undefined, compact);
          else this.finish(ws, new ClientError(ClientErrorCode.INVALID_ARGUMENT, String(res.cancelReason || 'etcdserver: watch creation failed')));
        } else {
          ws.serverId = watchId;
          this.byServerId.set(watchId, ws);
          if (ws.nextRevision === 0) {
            ws.nextRevision = header.revision + 1;
            ws.lastRevision = header.revision;
          }
          ws.created = true;
          ws.settleReady();
          if (ws.disconnected) {
            ws.disconnected = false;
            ws.handlers.onReconnected?.();
          }
        }
      } else if (ws?.cancelled && !res.canceled) {
        this.stream?.write({ cancelRequest: { watchId } });
      }
      this.pump();
      return;
    }
    if (watchId === '-1') {
      // answer to requestProgress(): the whole stream is caught up to header.revision
      for (const ws of this.byServerId.values()) this.progress(ws, header.revision);
      return;
    }
    const ws = this.byServerId.get(watchId);
    if (!ws || ws.cancelled) return;
    if (res.canceled) {
      const compact = num(res.compactRevision);
      if (compact > 0) this.finish(ws, undefined, compact);
      else this.finish(ws, new ClientError(ClientErrorCode.CANCELLED, String(res.cancelReason || 'watch cancelled by the server')));
      return;
    }
    const events = (res.events ?? []).map((e: Wire) => this.codec.event(e)).filter((e: { kv: { modRevision: number } }) => e.kv.modRevision >= ws.nextRevision);
    if (events.length === 0) {
      if ((res.events ?? []).length === 0) this.progress(ws, header.revision);
      return;
    }
    const batch: WatchBatch = { header, events };
    ws.lastRevision = events[events.length - 1].kv.modRevision;
    ws.nextRevision = ws.lastRevision + 1;
    ws.handlers.onEvents(batch);
  }

  private progress(ws: WatchState, revision: number): void {
    if (revision + 1 > ws.nextRevision) ws.nextRevision = revision + 1;
    ws.handlers.onProgress?.(revision);
  }
}
