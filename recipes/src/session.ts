import { Logger } from '@nestjs/common';
import type { KvClient } from '@nestcd/client';
import { CoordinationError } from './errors';
import { withTimeout } from './util';

export interface SessionOptions {
  /** lease TTL in seconds (etcd's concurrency package defaults to 60; recipes default to 10). */
  ttlSeconds: number;
  /**
   * Fraction of the TTL after the last confirmed renewal's send time at which the session declares itself lost.
   * Below 1 so that a cut-off holder hears of it before the server can expire the lease and grant it to another.
   */
  lossFraction?: number;
}

/**
 * One lease kept alive in the background (every TTL/3) with one lost signal.
 *
 * The lost deadline is measured from when the last successful renewal was *sent*: the server extended the lease
 * no earlier than that, so it cannot expire before sendTime + TTL. Firing at a fraction of that means a client
 * that is cut off (or whose renewals fail) gives up what it holds before anyone else can be granted it.
 */
export class Session {
  private readonly lostController = new AbortController();
  private renewTimer?: NodeJS.Timeout;
  private deadlineTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private lastConfirmedAt = performance.now();
  private failing = false;
  private readonly logger = new Logger('CoordinationSession');

  private constructor(
    private readonly client: KvClient,
    readonly leaseId: bigint,
    readonly ttlSeconds: number,
    private readonly lossFraction: number,
    grantedAt: number,
  ) {
    this.armDeadline(grantedAt);
    this.scheduleRenewal(this.renewEveryMs);
  }

  static async open(client: KvClient, options: SessionOptions): Promise<Session> {
    const sentAt = performance.now();
    const grant = await client.leaseGrant(options.ttlSeconds);
    return new Session(client, grant.id, grant.ttl, options.lossFraction ?? 0.8, sentAt);
  }

  /** Fires once, when the lease is known (or must be assumed) gone, or the session is closed. */
  get lost(): AbortSignal {
    return this.lostController.signal;
  }

  get isLost(): boolean {
    return this.lostController.signal.aborted;
  }

  /** milliseconds since the last confirmed renewal (for health reports). */
  get sinceLastRenewalMs(): number {
    return performance.now() - this.lastConfirmedAt;
  }

  private get renewEveryMs(): number {
    return Math.max(200, (this.ttlSeconds * 1000) / 3);
  }

  private armDeadline(sentAt: number): void {
    clearTimeout(this.deadlineTimer);
    const at = sentAt + this.ttlSeconds * 1000 * this.lossFraction;
    this.deadlineTimer = setTimeout(() => this.markLost('no lease renewal confirmed in time'), Math.max(0, at - performance.now()));
    this.deadlineTimer.unref();
  }

  private scheduleRenewal(ms: number): void {
    if (this.isLost) return;
    this.renewTimer = setTimeout(() => void this.renew(), ms);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.isLost) return;
    const sentAt = performance.now();
    try {
      const ttl = await this.client.leaseKeepAliveOnce(this.leaseId);
      if (this.isLost) return;
      if (ttl <= 0) {
        this.markLost('the lease expired or was revoked');
        return;
      }
      this.lastConfirmedAt = performance.now();
      if (this.failing) this.logger.log(`lease ${this.leaseId.toString(16)} renewed again`);
      this.failing = false;
      this.armDeadline(sentAt);
      this.scheduleRenewal(this.renewEveryMs);
    } catch (err) {
      if (this.isLost) return;
      const code = (err as { code?: unknown }).code;
      // NOT_FOUND: etcd's "requested lease not found": the lease is gone for good.
      if (code === 5) {
        this.markLost('the lease is not found');
        return;
      }
      // one warning per outage, not one per retry
      if (!this.failing) this.logger.warn(`lease ${this.leaseId.toString(16)} renewal failed, retrying: ${(err as Error).message}`);
      this.failing = true;
      this.scheduleRenewal(Math.min(500, this.renewEveryMs));
    }
  }

  private markLost(why: string, reason: 'session-lost' | 'closed' = 'session-lost'): void {
    if (this.isLost) return;
    clearTimeout(this.renewTimer);
    clearTimeout(this.deadlineTimer);
    if (reason === 'session-lost') this.logger.warn(`session lease ${this.leaseId.toString(16)} lost: ${why}`);
    this.lostController.abort(new CoordinationError(reason, `coordination session lost: ${why}`));
  }

  /** Stops renewing and revokes the lease (everything attached to it goes away at once). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.markLost('closed', 'closed');
      try {
        // also after a loss: if the lease still exists, revoking frees what it holds without waiting for the TTL
        await withTimeout(this.client.leaseRevoke(this.leaseId), 3000);
      } catch (err) {
        this.logger.debug(`lease revoke: ${(err as Error).message}`);
      }
    })();
    return this.closing;
  }

  /**
   * Stops renewing without revoking, as if the process had died: the lease expires after its TTL.
   * For tests and for simulating a crash.
   */
  abandon(): void {
    this.markLost('abandoned', 'closed');
  }
}
