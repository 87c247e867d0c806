/**
 * A consumer of the recipes' public API, as an application would write it. consumer.spec.ts compiles it with
 * tsc --strict and checks that no expression in it is typed `any`.
 */
import { Injectable, Module } from '@nestjs/common';
import { z } from 'zod';
import {
  ConfigChange,
  ConfigWatcher,
  CoordinationError,
  CoordinationHealthIndicator,
  CoordinationModule,
  ElectionService,
  HeartbeatService,
  InjectConfig,
  LeaderInfo,
  LeaderOnly,
  LiveConfig,
  LockHandle,
  LockService,
  OnConfigChange,
  OnLeaderChange,
  ServiceInstance,
  ServiceRegistry,
  TaskRegistry,
  TaskStatus,
  WithLock,
} from '@nestcd/recipes';

const featureSchema = z.object({ enabled: z.boolean(), percent: z.number().min(0).max(100) });
type Feature = z.infer<typeof featureSchema>;

@Injectable()
export class OrdersService {
  constructor(
    private readonly locks: LockService,
    private readonly elections: ElectionService,
    private readonly registry: ServiceRegistry,
    private readonly config: ConfigWatcher,
    private readonly heartbeat: HeartbeatService,
    private readonly tasks: TaskRegistry,
    private readonly health: CoordinationHealthIndicator,
    @InjectConfig('features/checkout', featureSchema) private readonly checkout: LiveConfig<Feature>,
  ) {}

  async charge(orderId: string, amount: number): Promise<number> {
    const lock: LockHandle = await this.locks.acquire(`orders/${orderId}`, { timeoutMs: 5000 });
    try {
      const token: number = lock.fencingToken;
      const r = await lock.ifOwner([{ put: { key: Buffer.from(`charges/${orderId}`), value: Buffer.from(JSON.stringify({ amount, token })) } }]);
      return r.header.revision;
    } catch (err) {
      if (err instanceof CoordinationError && err.reason === 'not-owner') return -1;
      throw err;
    } finally {
      await lock.release();
    }
  }

  async maybeLock(): Promise<boolean> {
    const h: LockHandle | undefined = await this.locks.tryAcquire('singleton', { kind: 'cas' });
    const counted: number = await this.locks.withLock('counted', (l) => l.fencingToken, { signal: AbortSignal.timeout(1000) });
    await h?.release();
    return counted > 0;
  }

  async lead(): Promise<string> {
    const term = await this.elections.campaign('scheduler', { host: 'a' }, { timeoutMs: 1000 });
    term.signal.addEventListener('abort', () => undefined);
    await term.proclaim({ host: 'b' });
    const who: LeaderInfo | undefined = await this.elections.leader('scheduler');
    await term.resign();
    return who ? String(who.value) : 'nobody';
  }

  async discover(): Promise<string | undefined> {
    await this.registry.register({ service: 'orders', id: 'o1', address: '127.0.0.1:8080', meta: { zone: 'a' } });
    const all: ServiceInstance[] = await this.registry.instances('orders');
    const one: ServiceInstance | undefined = await this.registry.pick('orders', 'sticky');
    if (one) this.registry.noteError('orders', one.id, 1000);
    return all[0]?.address;
  }

  checkoutEnabled(): boolean {
    const f: Feature | undefined = this.checkout.value;
    return f?.enabled ?? false;
  }

  watchFeatures(): void {
    this.config.watch('features/', featureSchema).subscribe((m: ReadonlyMap<string, Feature>) => m.size);
  }

  async progress(): Promise<void> {
    await this.heartbeat.beat('worker-1', { load: 0.5 });
    await this.tasks.report('import-7', { percent: 40, state: 'running', message: 'importing' });
    this.tasks.tasks$().subscribe((ts: TaskStatus[]) => ts.map((t) => t.percent));
  }

  async healthy(): Promise<boolean> {
    const r = await this.health.isHealthy('coordination');
    return r.coordination.status === 'up';
  }

  @WithLock('orders/:id')
  async ship(order: { id: string }): Promise<string> {
    return order.id;
  }

  @LeaderOnly('nightly')
  nightly(): void {}

  @OnLeaderChange('nightly')
  onLeader(leader: LeaderInfo | undefined): void {
    void leader?.fencingToken;
  }

  @OnConfigChange('features/', featureSchema)
  onFeature(change: ConfigChange<Feature>): void {
    void change.value?.percent;
  }
}

@Module({
  imports: [
    CoordinationModule.forRoot({ isGlobal: true, store: { endpoints: ['http://127.0.0.1:2379'] }, namespace: 'orders/', session: { ttlSeconds: 10 } }),
  ],
  providers: [OrdersService],
})
export class OrdersModule {}
