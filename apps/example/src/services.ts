import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { z } from 'zod';
import {
  ConfigChange,
  ElectionService,
  HeartbeatService,
  InjectConfig,
  LeaderInfo,
  LeaderOnly,
  LiveConfig,
  OnConfigChange,
  OnLeaderChange,
  ServiceRegistry,
  TaskRegistry,
  WithLock,
} from '@nestcd/recipes';

export const limitsSchema = z.object({ maxJobs: z.number().int().positive(), greeting: z.string() });
export type Limits = z.infer<typeof limitsSchema>;

/** Jobs run under a per-job lock; their progress is reported; limits come from live config. */
@Injectable()
export class JobsService {
  private readonly logger = new Logger('Jobs');

  constructor(
    @InjectConfig('limits', limitsSchema) private readonly limits: LiveConfig<Limits>,
    private readonly tasks: TaskRegistry,
  ) {}

  @WithLock('jobs/:id')
  async run(job: { id: string }): Promise<string> {
    const max = this.limits.value?.maxJobs ?? 1;
    for (let step = 1; step <= 4; step++) {
      await this.tasks.report(`job-${job.id}`, { percent: step * 25, state: step < 4 ? 'running' : 'succeeded', message: `step ${step} (maxJobs ${max})` });
      await new Promise((r) => setTimeout(r, 100));
    }
    this.logger.log(`job ${job.id} done`);
    return `${this.limits.value?.greeting ?? 'hello'} from job ${job.id}`;
  }

  @OnConfigChange('limits', limitsSchema)
  limitsChanged(change: ConfigChange<unknown>): void {
    this.logger.log(`config ${change.key} is now ${JSON.stringify(change.value)}`);
  }
}

/** One instance in the fleet does the nightly report: whoever leads "nightly-report". */
@Injectable()
export class ReportService {
  private readonly logger = new Logger('Report');

  constructor(private readonly elections: ElectionService) {}

  @LeaderOnly('nightly-report')
  produce(): string {
    this.logger.log('producing the report (this instance leads)');
    return 'report';
  }

  @OnLeaderChange('nightly-report')
  leaderChanged(leader: LeaderInfo | undefined): void {
    this.logger.log(leader ? `nightly-report leader: ${String(leader.value)} (token ${leader.fencingToken})` : 'nightly-report has no leader');
  }
}

/** Registers this instance, beats, and picks peers round-robin. */
@Injectable()
export class FleetService implements OnApplicationBootstrap {
  readonly id = `example-${process.pid}`;

  constructor(
    private readonly registry: ServiceRegistry,
    private readonly heartbeat: HeartbeatService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.registry.register({ service: 'example', id: this.id, address: `127.0.0.1:${process.env.EXAMPLE_PORT ?? 0}`, meta: { pid: process.pid } });
    await this.heartbeat.beat(this.id, { startedAt: new Date().toISOString() });
  }

  peer() {
    return this.registry.pick('example', 'round-robin');
  }
}
