/** The example service boots on the embedded store and uses every recipe. */
import { Test } from '@nestjs/testing';
import { ConfigWatcher, CoordinationHealthIndicator, ElectionService } from '@nestcd/recipes';
import { AppModule, storeFromEnv } from './app.module';
import { FleetService, JobsService, ReportService } from './services';

describe('apps/example', () => {
  it('chooses the store from the environment', () => {
    expect(storeFromEnv({})).toEqual({ embedded: {} });
    expect(storeFromEnv({ NESTCD_ENDPOINTS: 'http://127.0.0.1:1, http://127.0.0.1:2' })).toEqual({ endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] });
    expect(storeFromEnv({ NESTCD_REDIS: 'redis://127.0.0.1:6379' })).toEqual({ redis: 'redis://127.0.0.1:6379' });
  });

  it('runs jobs under locks, leads the report, registers itself and stays healthy', async () => {
    const app = await Test.createTestingModule({ imports: [AppModule] }).compile();
    await app.init();
    await app.get(ConfigWatcher).set('limits', { maxJobs: 2, greeting: 'hi' });
    const jobs = app.get(JobsService);
    await expect(Promise.all([jobs.run({ id: '1' }), jobs.run({ id: '1' })])).resolves.toEqual(['hi from job 1', 'hi from job 1']);
    const deadline = Date.now() + 10_000;
    while (!app.get(ElectionService).isLeader('nightly-report') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(app.get(ReportService).produce()).toBe('report');
    expect((await app.get(FleetService).peer())?.service).toBe('example');
    expect((await app.get(CoordinationHealthIndicator).isHealthy()).coordination.status).toBe('up');
    await app.close();
  }, 30_000);
});
