/** CoordinationModule in a Nest application: options, lifecycle and the decorators, on the embedded store. */
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { z } from 'zod';
import { KvClient } from '@nestcd/client';
import {
  ConfigChange,
  ConfigWatcher,
  CoordinationHealthIndicator,
  CoordinationModule,
  ElectionService,
  InjectConfig,
  LeaderInfo,
  LeaderOnly,
  LiveConfig,
  LockService,
  OnConfigChange,
  OnLeaderChange,
  parseCoordinationOptions,
  ServiceRegistry,
  WithLock,
} from '@nestcd/recipes';
import { openStore } from '../src/store';

const flagsSchema = z.object({ darkMode: z.boolean(), limit: z.number().int().positive() });
type Flags = z.infer<typeof flagsSchema>;

@Injectable()
class Jobs {
  running = new Map<string, number>();
  overlaps = 0;
  leaders: Array<LeaderInfo | undefined> = [];
  changes: Array<ConfigChange<unknown>> = [];

  constructor(@InjectConfig('flags', flagsSchema) readonly flags: LiveConfig<Flags>) {}

  @WithLock('jobs/:id')
  async run(job: { id: string }): Promise<string> {
    const n = (this.running.get(job.id) ?? 0) + 1;
    this.running.set(job.id, n);
    if (n > 1) this.overlaps++;
    await new Promise((r) => setTimeout(r, 30));
    this.running.set(job.id, n - 1);
    return `ran ${job.id}`;
  }

  @LeaderOnly('nightly')
  nightly(): string {
    return 'report';
  }

  @OnLeaderChange('nightly')
  leaderChanged(leader: LeaderInfo | undefined): void {
    this.leaders.push(leader);
  }

  @OnConfigChange('features/')
  featureChanged(change: ConfigChange<unknown>): void {
    this.changes.push(change);
  }
}

@Module({ providers: [Jobs] })
class JobsModule {}

async function until(cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('CoordinationModule', () => {
  let store: KvClient;

  beforeAll(async () => {
    store = (await openStore({ embedded: {} })).client;
  });
  afterAll(() => store.close());

  it('rejects invalid options with every reason', () => {
    expect(() => parseCoordinationOptions({ session: { ttlSeconds: 0 }, store: { endpoints: [] } })).toThrow(/store.*session\.ttlSeconds|session\.ttlSeconds|store/);
    expect(() => parseCoordinationOptions({ nope: 1 })).toThrow(/invalid CoordinationModule options/);
    expect(parseCoordinationOptions({}).store).toEqual({ embedded: {} });
    expect(parseCoordinationOptions({ store: { endpoints: ['http://127.0.0.1:2379'] } }).session.ttlSeconds).toBe(10);
  });

  it('runs the decorators and lifecycle in an application (forRootAsync, isGlobal)', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        CoordinationModule.forRootAsync({ isGlobal: true, useFactory: async () => ({ store: { client: store }, namespace: 'app1/', session: { ttlSeconds: 5 } }) }),
        JobsModule,
      ],
    }).compile();
    const app = moduleRef;
    await app.init();
    const jobs = app.get(Jobs);
    const config = app.get(ConfigWatcher);
    const elections = app.get(ElectionService);

    // @WithLock: same id serialized, results returned
    const results = await Promise.all([jobs.run({ id: '1' }), jobs.run({ id: '1' }), jobs.run({ id: '2' }), jobs.run({ id: '1' })]);
    expect(results).toEqual(['ran 1', 'ran 1', 'ran 2', 'ran 1']);
    expect(jobs.overlaps).toBe(0);

    // @LeaderOnly: the module campaigns; the method runs once leading
    await until(() => elections.isLeader('nightly'));
    expect(jobs.nightly()).toBe('report');
    await until(() => jobs.leaders.length > 0 && jobs.leaders.at(-1) !== undefined);

    // @InjectConfig: always current, invalid values keep the last good one
    expect(jobs.flags.value).toBeUndefined();
    await config.set('flags', { darkMode: true, limit: 3 });
    await until(() => jobs.flags.value?.limit === 3);
    await config.set('flags', { darkMode: 'yes', limit: -1 });
    await config.set('flags', { darkMode: false, limit: 4 });
    await until(() => jobs.flags.value?.limit === 4);
    expect(jobs.flags.value).toEqual({ darkMode: false, limit: 4 });

    // @OnConfigChange: changes under the prefix, in order
    for (let i = 0; i < 20; i++) await config.set(`features/f${i % 3}`, i);
    await until(() => jobs.changes.length === 20);
    expect(jobs.changes.map((c) => c.value)).toEqual(Array.from({ length: 20 }, (_, i) => i));

    const health = await app.get(CoordinationHealthIndicator).isHealthy();
    expect(health.coordination.status).toBe('up');

    const registry = app.get(ServiceRegistry);
    await registry.register({ service: 'api', id: 'me', address: '127.0.0.1:1' });
    expect((await registry.instances('api')).map((i) => i.id)).toEqual(['me']);
    const locks = app.get(LockService);
    const held = await locks.acquire('held-at-shutdown');
    const leasesBefore = await store.leaseLeases();
    expect(leasesBefore.length).toBeGreaterThan(0);

    await app.close();
    // shutdown released, resigned, deregistered and revoked: nothing of the app's is left in the store
    expect(held.held).toBe(false);
    const left = await store.range({ key: Buffer.from('app1/'), rangeEnd: Buffer.from('app10') });
    expect(left.kvs.map((kv) => kv.key.toString())).toEqual(['app1/config/features/f0', 'app1/config/features/f1', 'app1/config/features/f2', 'app1/config/flags']);
    expect(await store.leaseLeases()).toEqual([]);
  }, 60_000);

  it('forRoot with the default embedded store', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [CoordinationModule.forRoot({ session: { ttlSeconds: 5 } })] }).compile();
    await moduleRef.init();
    const lock = await moduleRef.get(LockService).withLock('x', (l) => l.fencingToken);
    expect(lock).toBeGreaterThan(0);
    await moduleRef.close();
  });
});
