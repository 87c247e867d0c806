// Lease keep-alives for every lease of a client on one shared LeaseKeepAlive stream. Each lease is renewed every
// TTL/3; a lease counts as lost when the server says so (TTL <= 0) or when no confirmation arrived before the
// point where the lease may have expired (time of the last confirmed request + TTL), so loss is always noticed
// within the TTL, also while the connection is down.
import * as grpc from '@grpc/grpc-js';
import { ClientError, ClientErrorCode } from '../errors';
import type { KeepAlive, KeepAliveHandlers } from '../types';
import { num, type Wire } from './codec';
import { Connection, toClientError, type Endpoint } from './connection';

interface LeaseState {
  id: bigint;
  handles: Set<KeepAliveHandle>;
  /** when the lease may have expired on the server, per the last confirmation. */
  expiresAt: number;
  /** time each not-yet-answered request was sent (the earliest counts for the next confirmation). */
  sentAt: number[];
  ttlMs: number;
  renewTimer?: NodeJS.Timeout;
  expiryTimer?: NodeJS.Timeout;
}

class KeepAliveHandle implements KeepAlive {
  closed = false;
  constructor(
    readonly leaseId: bigint,
    readonly handlers: KeepAliveHandlers,
    private readonly owner: KeepAliveStream,
  ) {}
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.release(this);
  }
}

export class KeepAliveStream {
  private stream: grpc.ClientDuplexStream<Wire, Wire> | undefined;
  private streamEndpoint: Endpoint | undefined;
  private generation = 0;
  private connecting = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private readonly leases = new Map<string, LeaseState>();

  constructor(private readonly conn: Connection) {}

  keepAlive(id: bigint, handlers: KeepAliveHandlers, ttlHintSeconds?: number): KeepAlive {
    const handle = new KeepAliveHandle(id, handlers, this);
    if (this.closed) {
      handle.closed = true;
      queueMicrotask(() => handlers.onLost(new ClientError(ClientErrorCode.CANCELLED, 'grpc: the client connection is closing')));
      return handle;
    }
    const key = id.toString();
    let lease = this.leases.get(key);
    if (!lease) {
      // until the first answer: the granted TTL when this client granted the lease, else a dial and a call's time
      const ttlMs = (ttlHintSeconds ?? 0) * 1000;
      const firstDeadline = ttlMs > 0 ? ttlMs : this.conn.dialTimeoutMs + this.conn.callTimeoutMs;
      lease = { id, handles: new Set(), expiresAt: Date.now() + firstDeadline, sentAt: [], ttlMs };
      this.leases.set(key, lease);
      this.armExpiry(lease);
      this.send(lease);
    }
    lease.handles.add(handle);
    return handle;
  }

  release(handle: KeepAliveHandle): void {
    const lease = this.leases.get(handle.leaseId.toString());
    if (!lease) return;
    lease.handles.delete(handle);
    if (lease.handles.size === 0) this.drop(lease);
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const lease of [...this.leases.values()]) this.drop(lease);
    this.dropStream();
  }

  private drop(lease: LeaseState): void {
    clearTimeout(lease.renewTimer);
    clearTimeout(lease.expiryTimer);
    this.leases.delete(lease.id.toString());
    if (this.leases.size === 0) this.dropStream();
  }

  private lost(lease: LeaseState, err: Error): void {
    const handles = [...lease.handles];
    this.drop(lease);
    for (const h of handles) {
      if (h.closed) continue;
      h.closed = true;
      h.handlers.onLost(err);
    }
  }

  private armExpiry(lease: LeaseState): void {
    clearTimeout(lease.expiryTimer);
    lease.expiryTimer = setTimeout(() => {
      if (this.leases.get(lease.id.toString()) !== lease) return;
      this.lost(lease, new ClientError(ClientErrorCode.DEADLINE_EXCEEDED, `lease ${lease.id.toString(16)} not confirmed within its TTL: it may have expired`));
    }, Math.max(0, lease.expiresAt - Date.now()));
  }

  private send(lease: LeaseState): void {
    clearTimeout(lease.renewTimer);
    lease.renewTimer = undefined;
    if (!this.stream) {
      void this.connect();
      return;
    }
    lease.sentAt.push(Date.now());
    if (lease.sentAt.length > 16) lease.sentAt.shift(); // unanswered requests: keep the recent ones
    this.stream.write({ ID: lease.id.toString() });
    // send again even if this one goes unanswered (lost in a failover): the answer reschedules from its arrival
    this.scheduleRenew(lease);
  }

  private scheduleRenew(lease: LeaseState): void {
    clearTimeout(lease.renewTimer);
    // TTL/3 (before the first answer the TTL may be unknown: then once a second)
    const every = lease.ttlMs > 0 ? Math.max(lease.ttlMs / 3, 100) : 1000;
    lease.renewTimer = setTimeout(() => this.send(lease), every);
  }

  private async connect(): Promise<void> {
    if (this.connecting || this.stream || this.closed) return;
    this.connecting = true;
    try {
      const deadline = Date.now() + this.conn.dialTimeoutMs * this.conn.endpoints.length;
      const ep = await this.conn.ready(deadline);
      const md = await this.conn.metadata(ep, deadline);
      if (this.closed || this.leases.size === 0) return;
      const gen = ++this.generation;
      const stream = (ep.stubs.Lease.leaseKeepAlive as (md: grpc.Metadata) => grpc.ClientDuplexStream<Wire, Wire>)(md);
      this.stream = stream;
      this.streamEndpoint = ep;
      stream.on('data', (res: Wire) => gen === this.generation && this.onResponse(res));
      stream.on('error', (err: Error) => gen === this.generation && this.onBroken(err));
      stream.on('end', () => gen === this.generation && this.onBroken(new ClientError(ClientErrorCode.UNAVAILABLE, 'keepalive stream closed by the server')));
    } catch (err) {
      this.scheduleReconnect(toClientError(err));
      return;
    } finally {
      this.connecting = false;
    }
    for (const lease of this.leases.values()) {
      lease.sentAt = [];
      this.send(lease);
    }
  }

  private dropStream(): void {
    this.generation++;
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      s.on('error', () => undefined);
      s.cancel();
    }
  }

  private onBroken(error: Error): void {
    const err = toClientError(error);
    this.generation++;
    this.stream = undefined;
    if (err.code === ClientErrorCode.UNAUTHENTICATED) this.conn.resetToken();
    if (this.streamEndpoint && err.code === ClientErrorCode.UNAVAILABLE) this.conn.failover(this.streamEndpoint);
    if (err.code === ClientErrorCode.PERMISSION_DENIED || err.code === ClientErrorCode.INVALID_ARGUMENT) {
      for (const lease of [...this.leases.values()]) this.lost(lease, err);
      return;
    }
    this.scheduleReconnect(err);
  }

  private scheduleReconnect(_err: ClientError): void {
    if (this.closed || this.leases.size === 0 || this.reconnectTimer) return;
    this.failures++;
    const delay = Math.min(50 * 2 ** Math.min(this.failures, 5), 1000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
  }

  private onResponse(res: Wire): void {
    this.failures = 0;
    const lease = this.leases.get(String(res.ID ?? '0'));
    if (!lease) return;
    const sentAt = lease.sentAt.shift() ?? Date.now();
    const ttl = num(res.TTL);
    if (ttl <= 0) {
      this.lost(lease, new ClientError(ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found'));
      return;
    }
    lease.ttlMs = ttl * 1000;
    lease.expiresAt = Math.max(lease.expiresAt, sentAt + lease.ttlMs);
    this.armExpiry(lease);
    this.scheduleRenew(lease);
    for (const h of lease.handles) h.handlers.onKeepAlive?.(ttl);
  }
}
