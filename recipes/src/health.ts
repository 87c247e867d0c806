import { Injectable } from '@nestjs/common';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { CoordinationCore } from './core';
import { withTimeout } from './util';

/** For @nestjs/terminus: up while the store answers and the session is live. */
@Injectable()
export class CoordinationHealthIndicator {
  private readonly indicators = new HealthIndicatorService();

  constructor(private readonly core: CoordinationCore) {}

  async isHealthy<K extends string = 'coordination'>(key: K = 'coordination' as K, timeoutMs = 3000): Promise<HealthIndicatorResult<K>> {
    const check = this.indicators.check(key);
    if (!this.core.hasLiveSession) return check.down({ message: 'no live coordination session' });
    const session = this.core.session;
    try {
      const s = await withTimeout(this.core.client.status(), timeoutMs);
      return check.up({ lease: session.leaseId.toString(16), ttlSeconds: session.ttlSeconds, revision: s.header.revision, version: s.version });
    } catch (err) {
      return check.down({ message: `store unreachable: ${(err as Error).message}` });
    }
  }
}
