import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { Subscription } from 'rxjs';
import { z } from 'zod';
import { ConfigWatcher } from './config';
import { CoordinationCore } from './core';
import { LEADER_ONLY, ON_CONFIG_CHANGE, ON_LEADER_CHANGE, OnConfigChangeMeta, boundServices } from './decorators';
import { ElectionService } from './election';
import { LockService } from './lock';
import { sleep } from './util';

type Method = (...args: unknown[]) => unknown;

/**
 * Finds the recipe decorators on every provider and controller: binds @WithLock/@LeaderOnly methods to this
 * module's services, campaigns for @LeaderOnly elections, and calls @OnLeaderChange/@OnConfigChange methods
 * (through the bounded callback queue, one call at a time per method so that changes arrive in order).
 */
@Injectable()
export class CoordinationExplorer implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown, OnModuleDestroy {
  private readonly logger = new Logger('Coordination');
  private readonly subscriptions: Subscription[] = [];
  private readonly stop = new AbortController();
  private readonly campaigns: Promise<void>[] = [];
  private readonly elections = new Set<string>();
  private readonly leaderWatchers: Array<{ election: string; call: (v: unknown) => Promise<void> }> = [];
  private readonly configWatchers: Array<{ meta: OnConfigChangeMeta; call: (v: unknown) => Promise<void> }> = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly core: CoordinationCore,
    private readonly locks: LockService,
    private readonly electionService: ElectionService,
    private readonly config: ConfigWatcher,
  ) {}

  onModuleInit(): void {
    const wrappers = [...this.discovery.getProviders(), ...this.discovery.getControllers()];
    for (const w of wrappers) {
      const instance: unknown = w.instance;
      if (!instance || typeof instance !== 'object' || !w.isDependencyTreeStatic()) continue;
      const proto = Object.getPrototypeOf(instance) as object | null;
      if (!proto) continue;
      let decorated = false;
      for (const name of this.scanner.getAllMethodNames(proto)) {
        const fn = (proto as Record<string, unknown>)[name];
        if (typeof fn !== 'function') continue;
        const method = fn as Method;
        const leaderOnly = Reflect.getMetadata(LEADER_ONLY, method) as string | undefined;
        const onLeader = Reflect.getMetadata(ON_LEADER_CHANGE, method) as string | undefined;
        const onConfig = Reflect.getMetadata(ON_CONFIG_CHANGE, method) as OnConfigChangeMeta | undefined;
        if (Reflect.getMetadataKeys(method).some((k) => typeof k === 'string' && k.startsWith('nestcd:'))) decorated = true;
        if (leaderOnly !== undefined) this.elections.add(leaderOnly);
        if (onLeader !== undefined) this.leaderWatchers.push({ election: onLeader, call: this.serial(instance, method, name) });
        if (onConfig) this.configWatchers.push({ meta: onConfig, call: this.serial(instance, method, name) });
      }
      if (decorated) boundServices.set(instance, { locks: this.locks, elections: this.electionService });
    }
  }

  /** Calls `method` on `instance` one call at a time, each through the shared bounded queue. */
  private serial(instance: object, method: Method, name: string): (arg: unknown) => Promise<void> {
    let last = Promise.resolve();
    return (arg) =>
      (last = last.then(() =>
        this.core.callbacks
          .add(async () => {
            await method.call(instance, arg);
          })
          .catch((err: unknown) => this.logger.error(`${instance.constructor.name}.${name} failed: ${(err as Error).message}`)),
      ));
  }

  onApplicationBootstrap(): void {
    for (const { election, call } of this.leaderWatchers) {
      this.subscriptions.push(this.electionService.observe(election).subscribe((leader) => void call(leader)));
    }
    for (const { meta, call } of this.configWatchers) {
      this.subscriptions.push(
        this.config.changes(meta.prefix, meta.schema ?? z.unknown()).subscribe((changes) => {
          for (const c of changes) void call(c);
        }),
      );
    }
    for (const election of this.elections) this.campaigns.push(this.campaignForever(election));
  }

  private async campaignForever(election: string): Promise<void> {
    while (!this.stop.signal.aborted && !this.core.isShuttingDown) {
      try {
        const term = await this.electionService.campaign(election, this.core.instanceId, { signal: this.stop.signal });
        this.logger.log(`leading ${election} (fencing token ${term.fencingToken})`);
        await new Promise<void>((resolve) => {
          if (term.signal.aborted || this.stop.signal.aborted) resolve();
          term.signal.addEventListener('abort', () => resolve(), { once: true });
          this.stop.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        if (!this.stop.signal.aborted) this.logger.warn(`lost leadership of ${election}`);
      } catch (err) {
        if (this.stop.signal.aborted) return;
        this.logger.warn(`campaign for ${election}: ${(err as Error).message}`);
      }
      await sleep(200, this.stop.signal);
    }
  }

  onModuleDestroy(): void {
    this.core.beginShutdown();
    this.stop.abort();
    for (const s of this.subscriptions) s.unsubscribe();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stop.abort();
    await Promise.allSettled(this.campaigns);
  }
}
